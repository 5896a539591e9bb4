#include "phasekit/autoscale/sizers.hpp"

#include <algorithm>
#include <limits>

namespace phasekit::autoscale {

using config::Key;

std::uint64_t pool_target_idle(std::int64_t desired_replicas, std::uint64_t backends_in_use,
                               std::uint64_t pool_min_size, std::uint64_t pool_max_size) noexcept {
  const std::uint64_t desired = desired_replicas > 0 ? static_cast<std::uint64_t>(desired_replicas) : 0;
  const std::uint64_t spare = desired > backends_in_use ? desired - backends_in_use : 0;
  return std::min(std::max(spare, pool_min_size), pool_max_size);
}

unsigned worker_concurrency_for(std::int64_t desired_replicas, std::uint64_t floor, std::uint64_t max) noexcept {
  const std::uint64_t cap = std::clamp<std::uint64_t>(max, 1, std::numeric_limits<unsigned>::max());
  const std::uint64_t low = std::max<std::uint64_t>(floor, 1);
  const std::uint64_t desired = desired_replicas > 0 ? static_cast<std::uint64_t>(desired_replicas) : 0;
  return static_cast<unsigned>(std::min(std::max(desired, low), cap));
}

PoolSizer::PoolSizer(plugin::PoolStrategy& pool, const config::Config& config, Metrics& metrics, Logger& log)
    : PoolSizer(pool, static_cast<std::uint64_t>(config.integer(Key::pool_min_size)),
                static_cast<std::uint64_t>(config.integer(Key::pool_max_size)), metrics, log) {}

PoolSizer::PoolSizer(plugin::PoolStrategy& pool, std::uint64_t pool_min_size, std::uint64_t pool_max_size,
                     Metrics& metrics, Logger& log)
    : pool_(pool),
      min_(pool_min_size),
      max_(pool_max_size),
      gauge_(metrics.gauge("phasekit_pool_target_idle",
                           "Idle backends the warm pool is asked to keep: POOL_MIN_SIZE, then max(0, autoscaler "
                           "desired replicas - backends in use) within POOL_MIN_SIZE..POOL_MAX_SIZE.")),
      log_(log),
      applied_(std::min(pool_min_size, pool_max_size)) {
  gauge_.set(static_cast<double>(applied_));
}

void PoolSizer::apply(std::int32_t desired_replicas) {
  const std::uint64_t in_use = pool_.stats().active;
  const std::uint64_t target = pool_target_idle(desired_replicas, in_use, min_, max_);
  std::uint64_t from = 0;
  {
    const std::lock_guard lock(mutex_);
    if (target == applied_) {
      return;
    }
    from = std::exchange(applied_, target);
  }
  gauge_.set(static_cast<double>(target));
  log_.info("autoscaler.applied", {{"knob", "pool_target_idle"},
                                   {"from", from},
                                   {"to", target},
                                   {"desired_replicas", desired_replicas},
                                   {"backends_in_use", in_use}});
  pool_.resize(target);
}

std::uint64_t PoolSizer::target() const {
  const std::lock_guard lock(mutex_);
  return applied_;
}

ConcurrencySizer::ConcurrencySizer(plugin::QueueStrategy& queue, std::uint64_t initial, std::uint64_t max,
                                   Metrics& metrics, Logger& log)
    : queue_(queue),
      floor_(initial),
      max_(max),
      gauge_(metrics.gauge("phasekit_worker_concurrency",
                           "Jobs this worker takes at once: WORKER_CONCURRENCY, then the autoscaler's desired "
                           "replicas within WORKER_CONCURRENCY..AUTOSCALER_MAX_WORKER_CONCURRENCY.")),
      log_(log),
      applied_(static_cast<unsigned>(std::clamp<std::uint64_t>(initial, 1, std::numeric_limits<unsigned>::max()))) {
  gauge_.set(applied_);
}

void ConcurrencySizer::apply(std::int32_t desired_replicas) {
  const unsigned target = worker_concurrency_for(desired_replicas, floor_, max_);
  unsigned from = 0;
  {
    const std::lock_guard lock(mutex_);
    if (target == applied_) {
      return;
    }
    from = std::exchange(applied_, target);
  }
  gauge_.set(target);
  log_.info("autoscaler.applied", {{"knob", "worker_concurrency"},
                                   {"from", from},
                                   {"to", target},
                                   {"desired_replicas", desired_replicas}});
  queue_.set_concurrency(target);
}

unsigned ConcurrencySizer::concurrency() const {
  const std::lock_guard lock(mutex_);
  return applied_;
}

}  // namespace phasekit::autoscale
