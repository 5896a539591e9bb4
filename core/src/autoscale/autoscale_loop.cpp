#include "phasekit/autoscale/autoscale_loop.hpp"

namespace phasekit::autoscale {

AutoscaleLoop::AutoscaleLoop(plugin::AutoscalerStrategy& strategy, resilience::TimerService& timers,
                             Metrics& metrics, Observe observe, resilience::Millis interval,
                             std::int32_t initial_replicas)
    : strategy_(strategy),
      timers_(timers),
      desired_gauge_(metrics.gauge("phasekit_autoscaler_desired_replicas",
                                   "Replicas (backends) the autoscaler recommends, after stabilization, policies "
                                   "and min/max.")),
      metric_gauge_(metrics.gauge("phasekit_autoscaler_metric_replicas",
                                  "The highest per-metric proposal of the last evaluation, before stabilization.")),
      observe_(std::move(observe)),
      interval_(interval),
      desired_(initial_replicas) {
  desired_gauge_.set(initial_replicas);
}

void AutoscaleLoop::start() {
  {
    const std::lock_guard lock(mutex_);
    running_ = true;
  }
  arm();
}

void AutoscaleLoop::arm() {
  const std::lock_guard lock(mutex_);
  if (running_) {
    timer_ = timers_.schedule(interval_, [this] {
      evaluate();
      arm();
    });
  }
}

void AutoscaleLoop::stop() {
  const std::lock_guard lock(mutex_);
  running_ = false;
  timers_.cancel(timer_);
}

void AutoscaleLoop::on_change(OnChange fn) {
  const std::lock_guard lock(mutex_);
  on_change_ = std::move(fn);
}

void AutoscaleLoop::on_evaluation(OnEvaluation fn) {
  const std::lock_guard lock(mutex_);
  on_evaluation_ = std::move(fn);
}

plugin::ScaleDecision AutoscaleLoop::evaluate() {
  const Observation seen = observe_();
  plugin::ScaleInput in;
  in.now_ms = timers_.now_ms();
  in.current_replicas = desired_.load();
  in.status_replicas = static_cast<std::int32_t>(std::min<std::int64_t>(seen.backends, INT32_MAX));
  in.external_metrics["phasekit_sessions"] = {seen.sessions * 1000};
  in.external_metrics["phasekit_jobs_in_flight"] = {seen.jobs_in_flight * 1000};
  in.external_metrics["phasekit_jobs"] = {seen.jobs_in_flight * 1000, seen.jobs_queued * 1000};
  const plugin::ScaleDecision d = strategy_.evaluate(in);
  const std::int32_t before = desired_.exchange(d.desired_replicas);
  desired_gauge_.set(d.desired_replicas);
  metric_gauge_.set(d.metric_replicas);
  OnChange notify;
  OnEvaluation evaluated;
  {
    const std::lock_guard lock(mutex_);
    notify = on_change_;
    evaluated = on_evaluation_;
  }
  if (notify && before != d.desired_replicas) {
    notify(d);
  }
  if (evaluated) {
    evaluated(d);
  }
  return d;
}

}  // namespace phasekit::autoscale
