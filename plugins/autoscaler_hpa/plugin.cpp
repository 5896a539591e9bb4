// autoscaler=hpa: the Kubernetes HPA algorithm. Config: {"spec": <autoscaling/v2 HPA spec>, "tolerance": 0.1}.
#include "hpa_autoscaler.hpp"
#include "phasekit/json_fields.hpp"
#include "phasekit/plugin/export.hpp"

namespace {

struct Factory {
  static std::unique_ptr<phasekit::plugin::AutoscalerStrategy> create(phasekit::plugin::HostServices&,
                                                                     std::string_view config) {
    namespace jf = phasekit::json_fields;
    const jf::Json doc = jf::Json::parse(config.empty() ? std::string_view("{}") : config, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
      throw std::invalid_argument("config is not a JSON object");
    }
    jf::only_keys(doc, "", {"spec", "tolerance"});
    const jf::Json* t = jf::optional(doc, "tolerance");
    const double tolerance = t == nullptr ? 0.1 : jf::number(*t, "tolerance", 0.0, 1.0);
    return std::make_unique<phasekit::hpa::HpaAutoscaler>(
        phasekit::hpa::parse_spec(jf::required(doc, "", "spec"), tolerance));
  }
};

}  // namespace

PHASEKIT_PLUGIN(PHK_KIND_AUTOSCALER, "hpa", "1.0.0",
                "Kubernetes HPA algorithm (autoscaling/v2: tolerance, stabilization, behavior policies)", Factory)
