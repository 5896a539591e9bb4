// autoscaler=none: recommends what there is.
#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"

namespace phasekit::builtin {
namespace {

class NoAutoscaler final : public plugin::AutoscalerStrategy {
 public:
  plugin::ScaleDecision evaluate(const plugin::ScaleInput& in) noexcept override {
    plugin::ScaleDecision d;
    d.desired_replicas = in.current_replicas;
    d.metric_replicas = in.current_replicas;
    d.limited_by = "scalingDisabled";
    d.reason = "autoscaler=none keeps the current replica count";
    return d;
  }
};

struct Factory {
  static std::unique_ptr<plugin::AutoscalerStrategy> create(plugin::HostServices&, std::string_view json) {
    PluginOptions options(json);
    options.ignore("spec");  // the hpa plugin's settings, passed to every autoscaler
    options.ignore("tolerance");
    options.finish();
    return std::make_unique<NoAutoscaler>();
  }
};

}  // namespace

PHASEKIT_BUILTIN_PLUGIN(autoscaler_none_entry, PHK_KIND_AUTOSCALER, "none", "1.0.0",
                        "keeps the current replica count", Factory)
}  // namespace phasekit::builtin
