#pragma once
// What phasekit-orchestrator and phasekit-worker set up alike from their configuration: the JSON log
// sink, the io_context and its threads, the backend driver behind the "backend" circuit breaker, the
// breaker registry, metrics, the plugin host and the plugins.
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "phasekit/backend/process_backend.hpp"
#include "phasekit/config/config.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "phasekit/resilience/asio_timers.hpp"
#include "phasekit/resilience/breaker_backend_driver.hpp"
#include "phasekit/resilience/breaker_registry.hpp"

namespace phasekit::runtime {

constexpr int kExitUsage = 2;
constexpr int kExitPlugin = 3;

class Runtime {
 public:
  /// `component` names the binary's own log lines ("orchestrator", "worker").
  Runtime(const config::Config& config, std::string_view component);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// What the process is: an orchestrator runs its jobs' backends unless its queue is remote (workers
  /// take its jobs); a worker runs backends and needs a remote queue.
  enum class Role { orchestrator, worker };
  /// Loads the plugins, and makes the backend driver before the pool if the role and the queue say
  /// this process runs tools. 0, or the exit code after a logged error (kExitUsage: the backend
  /// cannot work here, or a worker's queue is not remote; kExitPlugin: a plugin did not load).
  int start(Role role);
  /// Runs the io_context on threads() threads until it is stopped.
  void run();

  [[nodiscard]] const config::Config& config() const noexcept { return config_; }
  [[nodiscard]] Logger& log() noexcept { return log_; }
  [[nodiscard]] observe::LogSink& logs() noexcept { return logs_; }
  [[nodiscard]] boost::asio::io_context& ioc() noexcept { return ioc_; }
  [[nodiscard]] unsigned threads() const noexcept { return threads_; }
  [[nodiscard]] const backend::ProcessOptions& process() const noexcept { return process_; }
  [[nodiscard]] bool docker() const noexcept { return docker_; }
  /// Whether this process runs tools (after start).
  [[nodiscard]] bool runs_backends() const noexcept { return driver_ != nullptr; }
  /// "process", "docker", or "none" when the process runs no backends.
  [[nodiscard]] std::string_view backend_name() const noexcept { return driver_ ? driver_->name() : "none"; }
  [[nodiscard]] resilience::AsioTimers& timers() noexcept { return timers_; }
  [[nodiscard]] resilience::BreakerRegistry& breakers() noexcept { return breakers_; }
  [[nodiscard]] observe::MetricsRegistry& metrics() noexcept { return metrics_; }
  [[nodiscard]] plugin::HostServices& host() noexcept { return *host_; }
  [[nodiscard]] plugin_host::PluginSet& plugins() noexcept { return plugins_; }
  /// The process driver when BACKEND=process (nullptr otherwise), for /stats/pool's limits.
  [[nodiscard]] const backend::ProcessDriver* process_driver() const noexcept { return process_driver_; }
  /// "namespaces", "none", "container": for the start-up log line.
  [[nodiscard]] std::string sandbox() const;
  /// What each backend runs under and what enforces each limit, as /stats/pool shows it.
  [[nodiscard]] nlohmann::json backend_limits() const;
  /// "queue=redis,store=redis,…".
  [[nodiscard]] std::string plugin_list() const;

 private:
  void run_handlers();
  /// The driver this process's pool makes backends with; throws BackendsRefused.
  void make_backends();

  const config::Config& config_;
  observe::LogSink logs_;
  Logger& log_;
  unsigned threads_;
  // Before the io_context: what its pending handlers hold at the end (a connection's gauge) is
  // released when it goes, and the registry must still be there then.
  observe::MetricsRegistry metrics_;
  boost::asio::io_context ioc_;
  backend::ProcessOptions process_;
  bool docker_ = false;
  std::unique_ptr<plugin::BackendDriver> driver_;
  const backend::ProcessDriver* process_driver_ = nullptr;
  resilience::AsioTimers timers_;
  resilience::BreakerRegistry breakers_;
  std::unique_ptr<resilience::BreakerBackendDriver> guarded_;
  plugin_host::SystemClock clock_;
  std::unique_ptr<plugin_host::BasicHost> host_;
  plugin_host::PluginSet plugins_;
};

/// What the binaries do alike with their command line and environment: --help prints `usage` and the
/// settings, --print-config the effective table, a bad setting or argument one line on stderr. Returns
/// the configuration when the process goes on; otherwise nothing, with `exit_code` set (0 or
/// kExitUsage).
std::optional<config::Config> configure(int argc, char** argv, std::string_view program, std::string_view usage,
                                        int& exit_code);

/// Waits (polling every 20 ms) until pred() or the deadline, then calls done.
void wait_then(boost::asio::io_context& ioc, std::function<bool()> pred, std::chrono::steady_clock::time_point until,
               std::function<void()> done);

/// Names this process in session records: the host name (the pod's, under Kubernetes) and the pid.
std::string instance_name();

}  // namespace phasekit::runtime
