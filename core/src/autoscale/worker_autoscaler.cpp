#include "phasekit/autoscale/worker_autoscaler.hpp"

#include <algorithm>

#include "phasekit/plugin_host/loader.hpp"

namespace phasekit::autoscale {

using config::Key;

namespace {

std::uint64_t worker_floor(const config::Config& c) {
  return std::min(c.integer(Key::worker_concurrency), c.integer(Key::autoscaler_max_worker_concurrency));
}

plugin_host::InstancePtr<plugin::AutoscalerStrategy> load_worker_strategy(const config::Config& config,
                                                                         plugin::HostServices& host) {
  const plugin_host::Loader loader(plugin_host::Loader::search_path_from(config.text(Key::plugin_path)));
  const plugin_host::Candidate candidate = loader.find(PHK_KIND_AUTOSCALER, config.plugin("autoscaler").name);
  return plugin_host::instantiate<plugin::AutoscalerStrategy>(candidate, host, worker_autoscaler_config_json(config));
}

}  // namespace

std::string worker_autoscaler_config_json(const config::Config& c) {
  return plugin_host::hpa_config_json({"phasekit_jobs", 1, static_cast<std::int64_t>(worker_floor(c)),
                                       c.integer(Key::autoscaler_max_worker_concurrency),
                                       c.text(Key::autoscaler_worker_behavior),
                                       c.integer(Key::autoscaler_tolerance_percent)});
}

WorkerAutoscaler::WorkerAutoscaler(const config::Config& config, plugin::HostServices& host,
                                   plugin::QueueStrategy& queue, resilience::TimerService& timers, Metrics& metrics,
                                   Logger& log)
    : owned_(load_worker_strategy(config, host)),
      sizer_(queue, static_cast<std::uint64_t>(config.integer(Key::worker_concurrency)),
             static_cast<std::uint64_t>(config.integer(Key::autoscaler_max_worker_concurrency)), metrics, log) {
  init(config, *owned_, queue, timers, metrics);
}

WorkerAutoscaler::WorkerAutoscaler(const config::Config& config, plugin::AutoscalerStrategy& strategy,
                                   plugin::QueueStrategy& queue, resilience::TimerService& timers, Metrics& metrics,
                                   Logger& log)
    : sizer_(queue, static_cast<std::uint64_t>(config.integer(Key::worker_concurrency)),
             static_cast<std::uint64_t>(config.integer(Key::autoscaler_max_worker_concurrency)), metrics, log) {
  init(config, strategy, queue, timers, metrics);
}

void WorkerAutoscaler::init(const config::Config& config, plugin::AutoscalerStrategy& strategy,
                            plugin::QueueStrategy& queue, resilience::TimerService& timers, Metrics& metrics) {
  const auto initial = static_cast<std::int32_t>(worker_floor(config));
  loop_.emplace(
      strategy, timers, metrics,
      [&queue, this] {
        const plugin::QueueStats s = queue.stats();
        Observation seen;
        seen.jobs_in_flight = static_cast<std::int64_t>(s.in_flight);
        seen.jobs_queued = static_cast<std::int64_t>(s.depth);
        seen.backends = sizer_.concurrency();
        return seen;
      },
      std::chrono::milliseconds(config.integer(Key::autoscaler_interval_ms)), initial);
  loop_->on_evaluation([this](const plugin::ScaleDecision& d) { sizer_.apply(d.desired_replicas); });
}

WorkerAutoscaler::~WorkerAutoscaler() { stop(); }

void WorkerAutoscaler::start() { loop_->start(); }

void WorkerAutoscaler::stop() { loop_->stop(); }

}  // namespace phasekit::autoscale
