#pragma once
// phasekit-worker with ENABLE_AUTOSCALER=true: the autoscaler plugin, given a spec over the worker's
// own jobs, evaluated every AUTOSCALER_INTERVAL_MS, its recommendation applied to the queue's
// concurrency (sizers.hpp) and exported as phasekit_autoscaler_desired_replicas.
//
// The replicas are job slots. The one metric is the External metric phasekit_jobs (jobs in flight
// plus jobs queued) with an AverageValue target of 1 job per slot, so the proposal is
// ceil(in flight + queued); minReplicas is WORKER_CONCURRENCY, maxReplicas
// AUTOSCALER_MAX_WORKER_CONCURRENCY (which also caps the floor), behavior AUTOSCALER_WORKER_BEHAVIOR
// (unset: none, Kubernetes' legacy rules).
#include <memory>
#include <optional>
#include <string>

#include "phasekit/autoscale/autoscale_loop.hpp"
#include "phasekit/autoscale/sizers.hpp"
#include "phasekit/config/config.hpp"
#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "phasekit/resilience/timers.hpp"

namespace phasekit::autoscale {

/// The JSON the worker's autoscaler plugin receives: {"spec": {...}, "tolerance": ...}, as
/// plugin_config_json builds the orchestrator's.
std::string worker_autoscaler_config_json(const config::Config& config);

class WorkerAutoscaler {
 public:
  /// Loads a second instance of the configured autoscaler plugin with the worker's spec (the one in
  /// the PluginSet carries the orchestrator's). Throws plugin_host::LoadError when it cannot.
  WorkerAutoscaler(const config::Config& config, plugin::HostServices& host, plugin::QueueStrategy& queue,
                   resilience::TimerService& timers, Metrics& metrics, Logger& log);
  /// The same with a strategy the caller owns (tests: the hpa algorithm on virtual time).
  WorkerAutoscaler(const config::Config& config, plugin::AutoscalerStrategy& strategy, plugin::QueueStrategy& queue,
                   resilience::TimerService& timers, Metrics& metrics, Logger& log);
  ~WorkerAutoscaler();
  WorkerAutoscaler(const WorkerAutoscaler&) = delete;
  WorkerAutoscaler& operator=(const WorkerAutoscaler&) = delete;

  void start();
  /// No evaluation starts after this returns (call it before the queue shuts down).
  void stop();
  [[nodiscard]] unsigned concurrency() const { return sizer_.concurrency(); }
  [[nodiscard]] std::int32_t desired() const noexcept { return loop_->desired(); }

 private:
  void init(const config::Config& config, plugin::AutoscalerStrategy& strategy, plugin::QueueStrategy& queue,
            resilience::TimerService& timers, Metrics& metrics);

  plugin_host::InstancePtr<plugin::AutoscalerStrategy> owned_;
  ConcurrencySizer sizer_;
  std::optional<AutoscaleLoop> loop_;
};

}  // namespace phasekit::autoscale
