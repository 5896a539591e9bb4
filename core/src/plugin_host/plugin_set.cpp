#include "plugin_host/plugin_set.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <thread>

namespace phasekit::plugin_host {

using config::Key;

std::string plugin_config_json(std::string_view kind, const config::Config& c) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (kind == "pool") {
    j["min_size"] = c.integer(Key::pool_min_size);
    j["max_size"] = c.integer(Key::pool_max_size);
    j["idle_timeout_ms"] = c.integer(Key::pool_idle_timeout_ms);
    j["acquire_timeout_ms"] = c.integer(Key::pool_acquire_timeout_ms);
    const std::int64_t creates = c.integer(Key::pool_create_concurrency);
    j["create_concurrency"] = creates > 0 ? creates : 2 * std::max(1u, std::thread::hardware_concurrency());
  } else if (kind == "queue") {
    j["concurrency"] = c.integer(Key::worker_concurrency);
    j["job_timeout_ms"] = c.integer(Key::job_timeout_ms);
    j["redis_url"] = c.text(Key::redis_url);
    j["redis_password"] = c.text(Key::redis_password);
    j["shutdown_grace_ms"] = c.integer(Key::shutdown_grace_ms);
    j["max_attempts"] = c.integer(Key::job_max_attempts);
    j["lease_ms"] = c.integer(Key::job_lease_ms);
  } else if (kind == "autoscaler") {
    // An autoscaling/v2 HPA spec over the orchestrator's own metrics (docs/operations.md).
    nlohmann::ordered_json metric = {
        {"type", "External"},
        {"external",
         {{"metric", {{"name", "phasekit_sessions"}}},
          {"target",
           {{"type", "AverageValue"},
            {"averageValue", std::to_string(c.integer(Key::autoscaler_target_sessions_per_replica))}}}}}};
    j["spec"] = {{"minReplicas", c.integer(Key::autoscaler_min_replicas)},
                 {"maxReplicas", c.integer(Key::autoscaler_max_replicas)},
                 {"metrics", nlohmann::ordered_json::array({metric})}};
    // AUTOSCALER_BEHAVIOR (validated at start-up) is spec.behavior; unset, the spec has none and the
    // plugin follows Kubernetes' legacy rules for such a spec.
    if (const std::string& behavior = c.text(Key::autoscaler_behavior); !behavior.empty()) {
      j["spec"]["behavior"] = nlohmann::ordered_json::parse(behavior);
    }
    j["tolerance"] = static_cast<double>(c.integer(Key::autoscaler_tolerance_percent)) / 100.0;
  } else if (kind == "compression") {
    j["format"] = c.text(Key::compression_format);
    j["level"] = c.integer(Key::compression_level);
    j["max_entry_bytes"] = c.integer(Key::compression_max_entry_bytes);
  } else if (kind == "store") {
    j["redis_url"] = c.text(Key::redis_url);
    j["redis_password"] = c.text(Key::redis_password);
    j["session_grace_ms"] = c.integer(Key::session_grace_ms);
    j["ttl_ms"] = c.integer(Key::session_ttl_ms);
    j["store_path"] = c.text(Key::store_path);
    j["audit_retention_ms"] = c.integer(Key::history_retention_days) * 86400000;
    j["postgres_url"] = c.text(Key::postgres_url);
    j["pool_size"] = c.integer(Key::postgres_pool_size);
    j["conversation_max_entries"] = c.integer(Key::history_max_entries);
    j["conversation_max_bytes"] = c.integer(Key::history_max_bytes);
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
