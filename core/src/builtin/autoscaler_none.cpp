// autoscaler=none: recommends what there is (clamped to the bounds it was given).
#include <algorithm>

#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"

namespace phasekit::builtin {
namespace {

class NoAutoscaler final : public plugin::AutoscalerStrategy {
 public:
  plugin::ScaleDecision evaluate(const plugin::ScaleInput& in) noexcept override {
    plugin::ScaleDecision d;
    d.desired_replicas = in.current_replicas;
    d.reason = "disabled";
    if (d.desired_replicas < in.min_replicas) {
      d.desired_replicas = in.min_replicas;
      d.reason = "min";
    } else if (d.desired_replicas > in.max_replicas && in.max_replicas >= in.min_replicas) {
      d.desired_replicas = in.max_replicas;
      d.reason = "max";
    }
    return d;
  }
};

struct Factory {
  static std::unique_ptr<plugin::AutoscalerStrategy> create(plugin::HostServices&, std::string_view json) {
    PluginOptions(json).finish();
    return std::make_unique<NoAutoscaler>();
  }
};

}  // namespace

PHASEKIT_BUILTIN_PLUGIN(autoscaler_none_entry, PHK_KIND_AUTOSCALER, "none", "1.0.0",
                        "keeps the current replica count (within min and max)", Factory)
}  // namespace phasekit::builtin
