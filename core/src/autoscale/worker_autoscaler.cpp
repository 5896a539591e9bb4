#include "autoscale/worker_autoscaler.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "plugin_host/loader.hpp"

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
  nlohmann::ordered_json metric = {
      {"type", "External"},
      {"external",
       {{"metric", {{"name", "phasekit_jobs"}}}, {"target", {{"type", "AverageValue"}, {"averageValue", "1"}}}}}};
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["spec"] = {{"minReplicas", worker_floor(c)},
               {"maxReplicas", c.integer(Key::autoscaler_max_worker_concurrency)},
               {"metrics", nlohmann::ordered_json::array({metric})}};
  if (const std::string& behavior = c.text(Key::autoscaler_worker_behavior); !behavior.empty()) {
    j["spec"]["behavior"] = nlohmann::ordered_json::parse(behavior);  // validated at start-up
  }
  j["tolerance"] = static_cast<double>(c.integer(Key::autoscaler_tolerance_percent)) / 100.0;
  return j.dump();
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
