#pragma once
// Runs the autoscaler plugin every interval on what the process observes and keeps its latest
// recommendation: phasekit_autoscaler_desired_replicas in /metrics (for a real HPA on external
// metrics) and desired() / on_change() for whatever sizes itself by it (the warm pool, worker
// concurrency). In the orchestrator the autoscaled "replicas" are the backends the pool holds, in
// phasekit-worker its job slots: currentReplicas is the previous recommendation (the HPA's
// scale.spec.replicas), statusReplicas the backends (or slots) that exist. What turns a recommendation
// into a pool size or a concurrency is in sizers.hpp; docs/operations.md "Autoscaler" has the formulas.
#include <atomic>
#include <functional>
#include <mutex>

#include "phasekit/plugin/autoscaler.hpp"
#include "phasekit/plugin/metrics.hpp"
#include "phasekit/resilience/timers.hpp"

namespace phasekit::autoscale {

/// What the process sees now. Each becomes an External metric of the evaluation (milli-values):
/// phasekit_sessions, phasekit_jobs_in_flight, and phasekit_jobs with two series, jobs in flight and
/// jobs queued, summed as Kubernetes sums the series an External metric's selector matches.
struct Observation {
  std::int64_t sessions = 0;
  std::int64_t jobs_in_flight = 0;
  std::int64_t backends = 0;     // statusReplicas: backends (orchestrator) or job slots (worker)
  std::int64_t jobs_queued = 0;  // the queue's depth: taken by no one yet
};

class AutoscaleLoop {
 public:
  using Observe = std::function<Observation()>;
  using OnChange = std::function<void(const plugin::ScaleDecision&)>;
  using OnEvaluation = std::function<void(const plugin::ScaleDecision&)>;

  /// Everything passed outlives the loop; stop() before destroying it.
  AutoscaleLoop(plugin::AutoscalerStrategy& strategy, resilience::TimerService& timers, Metrics& metrics,
                Observe observe, resilience::Millis interval, std::int32_t initial_replicas);

  void start();
  void stop();
  /// One evaluation now (the timer calls this).
  plugin::ScaleDecision evaluate();
  [[nodiscard]] std::int32_t desired() const noexcept { return desired_.load(); }
  /// Called after each evaluation whose recommendation differs from the previous one.
  void on_change(OnChange fn);
  /// Called after every evaluation, changed or not (after on_change): for sizers whose result also
  /// depends on what the process holds now, such as the warm pool's idle target.
  void on_evaluation(OnEvaluation fn);

 private:
  void arm();

  plugin::AutoscalerStrategy& strategy_;
  resilience::TimerService& timers_;
  Gauge& desired_gauge_;
  Gauge& metric_gauge_;
  Observe observe_;
  const resilience::Millis interval_;
  std::atomic<std::int32_t> desired_;
  std::mutex mutex_;  // one evaluation at a time; guards timer_, running_, on_change_, on_evaluation_
  resilience::TimerId timer_ = 0;
  bool running_ = false;
  OnChange on_change_;
  OnEvaluation on_evaluation_;
};

}  // namespace phasekit::autoscale
