#pragma once
// What the autoscaler's recommendation sizes, and how (docs/operations.md "Autoscaler"):
//
//   orchestrator  replicas = backends the process should hold for its sessions
//                 warm pool idle target = clamp(max(0, desired − backends in use), POOL_MIN_SIZE, POOL_MAX_SIZE)
//                 → PoolStrategy::resize
//   worker        replicas = job slots
//                 concurrency = clamp(desired, min(WORKER_CONCURRENCY, max), AUTOSCALER_MAX_WORKER_CONCURRENCY)
//                 → QueueStrategy::set_concurrency
//
// The pure functions hold the arithmetic; the sizers apply it after every evaluation
// (AutoscaleLoop::on_evaluation), call the strategy only when the result changes, log
// `autoscaler.applied` with from/to, and export what they applied as a gauge.
#include <cstdint>
#include <mutex>

#include "phasekit/config/config.hpp"
#include "phasekit/plugin/log.hpp"
#include "phasekit/plugin/metrics.hpp"
#include "phasekit/plugin/pool.hpp"
#include "phasekit/plugin/queue.hpp"

namespace phasekit::autoscale {

/// Idle backends the warm pool should keep: the recommended backends minus those sessions hold now
/// (never negative), never below the operator's floor `pool_min_size`, never above `pool_max_size`
/// (the max wins should the floor exceed it).
[[nodiscard]] std::uint64_t pool_target_idle(std::int64_t desired_replicas, std::uint64_t backends_in_use,
                                             std::uint64_t pool_min_size, std::uint64_t pool_max_size) noexcept;

/// Jobs a worker takes at once: the recommendation, at least `floor` (WORKER_CONCURRENCY) and 1, at
/// most `max` (AUTOSCALER_MAX_WORKER_CONCURRENCY, which also caps the floor).
[[nodiscard]] unsigned worker_concurrency_for(std::int64_t desired_replicas, std::uint64_t floor,
                                              std::uint64_t max) noexcept;

/// Orchestrator: sizes the warm pool by the recommendation. Only meaningful for pools that keep
/// backends (pool=none ignores resize); the orchestrator wires it for those only.
class PoolSizer {
 public:
  /// Bounds from POOL_MIN_SIZE and POOL_MAX_SIZE; the pool starts with POOL_MIN_SIZE idle.
  PoolSizer(plugin::PoolStrategy& pool, const config::Config& config, Metrics& metrics, Logger& log);
  PoolSizer(plugin::PoolStrategy& pool, std::uint64_t pool_min_size, std::uint64_t pool_max_size, Metrics& metrics,
            Logger& log);

  /// Recomputes the idle target from the recommendation and the backends leased now (the pool's
  /// stats().active); resizes the pool when the target changed.
  void apply(std::int32_t desired_replicas);
  [[nodiscard]] std::uint64_t target() const;

 private:
  plugin::PoolStrategy& pool_;
  const std::uint64_t min_;
  const std::uint64_t max_;
  Gauge& gauge_;
  Logger& log_;
  mutable std::mutex mutex_;
  std::uint64_t applied_;
};

/// Worker: sizes how many jobs the queue hands this process at once.
class ConcurrencySizer {
 public:
  /// `initial` is what consume() was given (WORKER_CONCURRENCY); the floor is the same value.
  ConcurrencySizer(plugin::QueueStrategy& queue, std::uint64_t initial, std::uint64_t max, Metrics& metrics,
                   Logger& log);

  void apply(std::int32_t desired_replicas);
  [[nodiscard]] unsigned concurrency() const;

 private:
  plugin::QueueStrategy& queue_;
  const std::uint64_t floor_;
  const std::uint64_t max_;
  Gauge& gauge_;
  Logger& log_;
  mutable std::mutex mutex_;
  unsigned applied_;
};

}  // namespace phasekit::autoscale
