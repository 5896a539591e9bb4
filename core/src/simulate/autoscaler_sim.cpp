// phasekit simulate autoscaler: {"spec": autoscaling/v2 spec, "tolerance": 0.1, "evaluations": [...]}
// through the real autoscaler=hpa plugin, loaded from the plugin path like the orchestrator loads it.
// AUTOSCALER_BEHAVIOR, when set, is the spec's behavior (a spec that has one already is refused), so
// a setting can be tried on a timeline before it is deployed. An evaluation without currentReplicas
// takes the previous one's desiredReplicas, as the orchestrator's AutoscaleLoop feeds the plugin.
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <ostream>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/json_fields.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "phasekit/simulate/simulate.hpp"

namespace phasekit::simulate {
namespace {

using namespace json_fields;  // NOLINT(google-build-using-namespace)
using plugin::PodPhase;

plugin::MilliValues quantities(const Json* j, const std::string& path) {
  plugin::MilliValues out;
  if (j == nullptr) {
    return out;
  }
  for (const auto& [key, value] : object(*j, path).items()) {
    out[key] = quantity(value, child(path, key));
  }
  return out;
}

PodPhase parse_phase(const Json& j, const std::string& path) {
  const std::string v = one_of(j, path, {"Pending", "Running", "Succeeded", "Failed", "Unknown"});
  if (v == "Pending") {
    return PodPhase::pending;
  }
  if (v == "Running") {
    return PodPhase::running;
  }
  if (v == "Succeeded") {
    return PodPhase::succeeded;
  }
  if (v == "Failed") {
    return PodPhase::failed;
  }
  return PodPhase::unknown;
}

bool flag(const Json& j, const std::string& path, const char* key, bool fallback) {
  const Json* v = optional(j, key);
  return v == nullptr ? fallback : boolean(*v, child(path, key));
}

plugin::ScalePod parse_pod(const Json& j, const std::string& path) {
  object(j, path);
  only_keys(j, path, {"name", "phase", "ready", "deleting", "cpuInitializing", "requests", "usage", "containers"});
  plugin::ScalePod pod;
  pod.name = text(required(j, path, "name"), child(path, "name"));
  if (const Json* p = optional(j, "phase")) {
    pod.phase = parse_phase(*p, child(path, "phase"));
  }
  pod.ready = flag(j, path, "ready", true);
  pod.deleting = flag(j, path, "deleting", false);
  pod.cpu_initializing = flag(j, path, "cpuInitializing", false);
  pod.requests = quantities(optional(j, "requests"), child(path, "requests"));
  pod.usage = quantities(optional(j, "usage"), child(path, "usage"));
  if (const Json* cs = optional(j, "containers")) {
    const std::string cpath = child(path, "containers");
    array(*cs, cpath);
    for (std::size_t i = 0; i < cs->size(); ++i) {
      const std::string ipath = item(cpath, i);
      const Json& c = object((*cs)[i], ipath);
      only_keys(c, ipath, {"name", "requests", "usage"});
      pod.containers.push_back({text(required(c, ipath, "name"), child(ipath, "name")),
                                quantities(optional(c, "requests"), child(ipath, "requests")),
                                quantities(optional(c, "usage"), child(ipath, "usage"))});
    }
  }
  return pod;
}

/// One evaluation of the file. currentReplicas and statusReplicas are filled in at run time when the
/// file leaves them out (the previous desiredReplicas; currentReplicas).
struct Evaluation {
  plugin::ScaleInput in;
  bool follows_previous = false;  // no currentReplicas: the previous evaluation's desiredReplicas
  bool status_is_current = true;  // no statusReplicas: currentReplicas
};

Evaluation parse_evaluation(const Json& j, const std::string& path, const Evaluation* previous) {
  object(j, path);
  only_keys(j, path, {"t", "currentReplicas", "statusReplicas", "pods", "objectMetrics", "externalMetrics"});
  Evaluation e;
  plugin::ScaleInput& in = e.in;
  const double t = number(required(j, path, "t"), child(path, "t"), 0, 1e9);
  in.now_ms = std::llround(t * 1000);
  if (previous != nullptr && in.now_ms < previous->in.now_ms) {
    throw FieldError(child(path, "t"), "must not be earlier than the previous evaluation's t");
  }
  if (const Json* c = optional(j, "currentReplicas")) {
    in.current_replicas = static_cast<std::int32_t>(integer(*c, child(path, "currentReplicas"), 0, INT32_MAX));
  } else if (previous == nullptr) {
    throw FieldError(child(path, "currentReplicas"), "required in the first evaluation (later ones default to the "
                                                     "previous desiredReplicas)");
  } else {
    e.follows_previous = true;
  }
  if (const Json* s = optional(j, "statusReplicas")) {
    in.status_replicas = static_cast<std::int32_t>(integer(*s, child(path, "statusReplicas"), 0, INT32_MAX));
    e.status_is_current = false;
  }
  if (const Json* pods = optional(j, "pods")) {
    const std::string ppath = child(path, "pods");
    array(*pods, ppath);
    for (std::size_t i = 0; i < pods->size(); ++i) {
      in.pods.push_back(parse_pod((*pods)[i], item(ppath, i)));
    }
  }
  in.object_metrics = quantities(optional(j, "objectMetrics"), child(path, "objectMetrics"));
  if (const Json* ext = optional(j, "externalMetrics")) {
    const std::string epath = child(path, "externalMetrics");
    for (const auto& [name, value] : object(*ext, epath).items()) {
      std::vector<std::int64_t>& series = in.external_metrics[name];
      if (value.is_array()) {
        for (std::size_t i = 0; i < value.size(); ++i) {
          series.push_back(quantity(value[i], item(child(epath, name), i)));
        }
      } else {
        series.push_back(quantity(value, child(epath, name)));
      }
    }
  }
  return e;
}

std::string milli_text(std::int64_t milli) {
  return milli % 1000 == 0 ? std::to_string(milli / 1000) : std::to_string(milli) + "m";
}

}  // namespace

void run_autoscaler(const Json& scenario, const AutoscalerOptions& options, std::ostream& out) {
  std::vector<Evaluation> evaluations;
  nlohmann::json config;
  try {
    only_keys(scenario, "", {"spec", "tolerance", "evaluations"});
    config["spec"] = required(scenario, "", "spec");
    if (!options.behavior.empty()) {
      if (config["spec"].is_object() && optional(config["spec"], "behavior") != nullptr) {
        throw FieldError("spec.behavior", "given here and in AUTOSCALER_BEHAVIOR (from " + options.behavior_origin +
                                              "); expected only one of them");
      }
      if (config["spec"].is_object()) {
        config["spec"]["behavior"] = Json::parse(options.behavior);  // validated with the configuration
      }
    }
    if (const Json* t = optional(scenario, "tolerance")) {
      config["tolerance"] = number(*t, "tolerance", 0, 1);
    }
    const Json& list = array(required(scenario, "", "evaluations"), "evaluations");
    for (std::size_t i = 0; i < list.size(); ++i) {
      evaluations.push_back(
          parse_evaluation(list[i], item("evaluations", i), evaluations.empty() ? nullptr : &evaluations.back()));
    }
  } catch (const FieldError& e) {
    throw SimulateError(e.what());
  }

  observe::LogSink logs(STDERR_FILENO, LogLevel::warn);
  observe::MetricsRegistry metrics;
  plugin_host::SystemClock clock;
  plugin_host::BasicHost host(logs, metrics, clock, boost::asio::any_io_executor());
  const plugin_host::Loader loader(plugin_host::Loader::search_path_from(options.plugin_path));
  plugin_host::InstancePtr<plugin::AutoscalerStrategy> hpa;
  try {
    hpa = plugin_host::instantiate<plugin::AutoscalerStrategy>(loader.find(PHK_KIND_AUTOSCALER, "hpa"), host,
                                                               config.dump());
  } catch (const plugin_host::LoadError& e) {
    // A spec the plugin refuses is bad input (exit 2), named by its field; a plugin that cannot be
    // found or loaded is reported as it is.
    const std::string_view message = e.what();
    constexpr std::string_view kRefused = "refused its configuration: ";
    if (const auto at = message.find(kRefused); e.stage() == plugin_host::Stage::create_failed && at != message.npos) {
      throw SimulateError(std::string(message.substr(at + kRefused.size())));
    }
    throw;
  }

  std::int32_t previous_desired = 0;
  for (Evaluation& e : evaluations) {
    plugin::ScaleInput& in = e.in;
    if (e.follows_previous) {
      in.current_replicas = previous_desired;
    }
    if (e.status_is_current) {
      in.status_replicas = in.current_replicas;
    }
    const plugin::ScaleDecision d = hpa->evaluate(in);
    previous_desired = d.desired_replicas;
    nlohmann::ordered_json proposals = nlohmann::ordered_json::array();
    for (const plugin::MetricProposal& p : d.proposals) {
      nlohmann::ordered_json entry{{"metric", p.metric}};
      if (!p.error.empty()) {
        entry["error"] = p.error;
      } else {
        entry["replicas"] = p.replicas;
        if (p.metric.find("utilization") != std::string::npos) {
          entry["currentUtilization"] = p.current;
        } else {
          entry["currentValue"] = milli_text(p.current);
        }
        entry["rule"] = p.rule;
      }
      proposals.push_back(std::move(entry));
    }
    nlohmann::ordered_json line{{"t", static_cast<double>(in.now_ms) / 1000.0},
                                {"currentReplicas", in.current_replicas},
                                {"desiredReplicas", d.desired_replicas},
                                {"metricReplicas", d.metric_replicas},
                                {"proposals", proposals},
                                {"limitedBy", d.limited_by.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(d.limited_by)},
                                {"reason", d.reason}};
    out << line.dump() << '\n';
  }
}

nlohmann::json read_document(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw SimulateError(path + ": cannot be read");
  }
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json doc = nlohmann::json::parse(text.str(), nullptr, false);
  if (doc.is_discarded()) {
    throw SimulateError(path + ": not valid JSON");
  }
  if (!doc.is_object()) {
    throw SimulateError(path + ": expected a JSON object");
  }
  return doc;
}

}  // namespace phasekit::simulate
