// autoscaler=hpa: the Kubernetes HPA algorithm. Config: {"spec": <autoscaling/v2 HPA spec>, "tolerance": 0.1}.
#include "hpa_autoscaler.hpp"
#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"

namespace {

struct Factory {
  static std::unique_ptr<phasekit::plugin::AutoscalerStrategy> create(phasekit::plugin::HostServices&,
                                                                     std::string_view config) {
    phasekit::PluginOptions options(config);
    const double tolerance = options.number("tolerance", 0.1, 0.0, 1.0);
    const phasekit::json_fields::Json& spec = options.required("spec");
    options.finish();
    return std::make_unique<phasekit::hpa::HpaAutoscaler>(phasekit::hpa::parse_spec(spec, tolerance));
  }
};

}  // namespace

PHASEKIT_PLUGIN(PHK_KIND_AUTOSCALER, "hpa", "1.0.0",
                "Kubernetes HPA algorithm (autoscaling/v2: tolerance, stabilization, behavior policies)", Factory)
