#pragma once
// One instance of each plugin kind, chosen by the configuration, held so that each is destroyed by
// the library that made it and no library is unloaded under a live instance.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "phasekit/config/config.hpp"
#include "phasekit/plugin/autoscaler.hpp"
#include "phasekit/plugin/compression.hpp"
#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin/pool.hpp"
#include "phasekit/plugin/queue.hpp"
#include "phasekit/plugin/store.hpp"
#include "phasekit/plugin_host/loader.hpp"

namespace phasekit::plugin_host {

template <class T>
struct InstanceDeleter {
  void (*destroy)(void*) = nullptr;
  std::shared_ptr<Library> library;  // keeps the code of destroy (and of T's vtable) mapped
  void operator()(T* p) const noexcept {
    if (p != nullptr && destroy != nullptr) {
      destroy(p);
    }
  }
};

template <class T>
using InstancePtr = std::unique_ptr<T, InstanceDeleter<T>>;

template <class T>
InstancePtr<T> instantiate(const Candidate& candidate, plugin::HostServices& host, std::string_view config_json) {
  void* raw = create_instance(candidate, &host, config_json);
  return InstancePtr<T>(static_cast<T*>(raw), InstanceDeleter<T>{candidate.descriptor->destroy, candidate.library});
}

struct LoadedPlugin {
  std::string kind;
  std::string name;
  std::string version;
  std::string path;  // "(built-in)" or the .so
};

struct PluginSet {
  InstancePtr<plugin::CompressionStrategy> compression;
  InstancePtr<plugin::StoreStrategy> store;
  InstancePtr<plugin::QueueStrategy> queue;
  InstancePtr<plugin::PoolStrategy> pool;
  InstancePtr<plugin::AutoscalerStrategy> autoscaler;
  std::vector<LoadedPlugin> loaded;
};

/// The JSON object a plugin of this kind receives: its own settings only, under the keys
/// config::plugin_keys() gives them.
std::string plugin_config_json(std::string_view kind, const config::Config& config);

/// What an autoscaler plugin is given: an autoscaling/v2 HPA spec with one External metric of this
/// process and its AverageValue target, the replica range and the behavior (a JSON object's text; empty:
/// none), and the tolerance.
struct HpaTarget {
  std::string_view metric;
  std::int64_t average_value = 1;
  std::int64_t min_replicas = 1;
  std::int64_t max_replicas = 1;
  std::string_view behavior;
  std::int64_t tolerance_percent = 10;
};
std::string hpa_config_json(const HpaTarget& target);

/// Says, with the queue loaded (and the compression and store before it), whether this process runs
/// backends, and makes them ready (their driver) if it does; throws to refuse the combination.
using BackendsDecision = std::function<bool(const PluginSet&)>;

/// Loads every kind the configuration names, the queue before the pool. Throws LoadError on the first
/// that fails. When `runs_backends` says no (an orchestrator whose queue is remote: workers run its
/// jobs) the pool is `none` whatever the configuration says: the same settings configure the
/// workers' pools. Without a decision, the process runs backends.
PluginSet load_plugins(const config::Config& config, plugin::HostServices& host, const Loader& loader,
                       const BackendsDecision& runs_backends = {});

}  // namespace phasekit::plugin_host
