#include "phasekit/plugin_host/plugin_set.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>

namespace phasekit::plugin_host {

using config::Key;

std::string hpa_config_json(const HpaTarget& t) {
  nlohmann::ordered_json metric = {
      {"type", "External"},
      {"external",
       {{"metric", {{"name", std::string(t.metric)}}},
        {"target", {{"type", "AverageValue"}, {"averageValue", std::to_string(t.average_value)}}}}}};
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["spec"] = {{"minReplicas", t.min_replicas},
               {"maxReplicas", t.max_replicas},
               {"metrics", nlohmann::ordered_json::array({metric})}};
  // The behavior setting (validated at start-up) is spec.behavior; unset, the spec has none and the
  // plugin follows Kubernetes' legacy rules for such a spec.
  if (!t.behavior.empty()) {
    j["spec"]["behavior"] = nlohmann::ordered_json::parse(t.behavior);
  }
  j["tolerance"] = static_cast<double>(t.tolerance_percent) / 100.0;
  return j.dump();
}

std::string plugin_config_json(std::string_view kind, const config::Config& c) {
  if (kind == "autoscaler") {
    // An autoscaling/v2 HPA spec over the orchestrator's own metrics (docs/operations.md).
    return hpa_config_json({"phasekit_sessions", c.integer(Key::autoscaler_target_sessions_per_replica),
                            c.integer(Key::autoscaler_min_replicas), c.integer(Key::autoscaler_max_replicas),
                            c.text(Key::autoscaler_behavior), c.integer(Key::autoscaler_tolerance_percent)});
  }
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const config::PluginKey& k : config::plugin_keys()) {
    if (k.kind != kind) {
      continue;
    }
    const std::string key(k.key);
    switch (config::spec(k.setting).type) {
      case config::Type::integer: j[key] = c.integer(k.setting) * k.scale; break;
      case config::Type::boolean: j[key] = c.boolean(k.setting); break;
      case config::Type::json:
        j[key] = c.text(k.setting).empty() ? nlohmann::ordered_json() : nlohmann::ordered_json::parse(c.text(k.setting));
        break;
      case config::Type::text:
      case config::Type::secret:
      case config::Type::choice:
      case config::Type::plugin: j[key] = c.text(k.setting); break;
    }
  }
  return j.dump();
}

namespace {

template <class T>
InstancePtr<T> load_one(phk_kind kind, const config::Config& config, plugin::HostServices& host,
                        const Loader& loader, std::vector<LoadedPlugin>& loaded, bool runs_backends = true) {
  const std::string_view kind_text = kind_name(kind);
  std::string name = config.plugin(kind_text).name;
  if (kind == PHK_KIND_POOL && !runs_backends) {
    name = "none";
  }
  const Candidate candidate = loader.find(kind, name);
  auto instance = instantiate<T>(candidate, host, plugin_config_json(kind_text, config));
  loaded.push_back({std::string(kind_text), name, candidate.descriptor->version, candidate.path});
  return instance;
}

}  // namespace

PluginSet load_plugins(const config::Config& config, plugin::HostServices& host, const Loader& loader,
                       const BackendsDecision& decide) {
  PluginSet set;
  set.compression = load_one<plugin::CompressionStrategy>(PHK_KIND_COMPRESSION, config, host, loader, set.loaded);
  set.store = load_one<plugin::StoreStrategy>(PHK_KIND_STORE, config, host, loader, set.loaded);
  set.queue = load_one<plugin::QueueStrategy>(PHK_KIND_QUEUE, config, host, loader, set.loaded);
  const bool runs_backends = !decide || decide(set);
  set.pool = load_one<plugin::PoolStrategy>(PHK_KIND_POOL, config, host, loader, set.loaded, runs_backends);
  set.autoscaler = load_one<plugin::AutoscalerStrategy>(PHK_KIND_AUTOSCALER, config, host, loader, set.loaded);
  return set;
}

}  // namespace phasekit::plugin_host
