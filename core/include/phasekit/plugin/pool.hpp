#pragma once
// kind = pool: hands out backends to sessions. `none` makes a cold backend per acquire; `warm`
// keeps pre-warmed ones (plugins/pool_warm).
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "phasekit/plugin/backend.hpp"
#include "phasekit/status.hpp"

namespace phasekit::plugin {

struct AcquireRequest {
  std::string user_id;
  std::string session_id;
};

enum class AcquireSource : std::uint8_t { warm, cold, waited };

struct Lease {
  BackendPtr backend;
  AcquireSource source = AcquireSource::cold;
};

struct PoolStats {
  std::uint64_t idle = 0;
  std::uint64_t active = 0;
  std::uint64_t total = 0;  // idle + active + being created
  std::uint64_t min_size = 0;
  std::uint64_t max_size = 0;
  std::uint64_t acquired_warm = 0;
  std::uint64_t acquired_cold = 0;
  std::uint64_t acquired_after_wait = 0;
  std::uint64_t waits = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t evictions = 0;
  std::uint64_t created = 0;
  std::uint64_t destroyed = 0;
  std::uint64_t failures = 0;
};

class PoolStrategy {
 public:
  using AcquireHandler = std::function<void(Status, Lease)>;
  virtual ~PoolStrategy() = default;
  /// Completes (posted) with a live backend, or UNAVAILABLE/TIMEOUT/INTERNAL and no backend.
  virtual void acquire(AcquireRequest request, AcquireHandler done) noexcept = 0;
  /// Gives a leased backend back. reusable=false: it misbehaved, destroy it.
  virtual void release(BackendPtr backend, bool reusable) noexcept = 0;
  [[nodiscard]] virtual PoolStats stats() const noexcept = 0;
  /// A new number of idle backends to keep warm (the autoscaler's recommendation), clamped to the
  /// pool's maximum; the pool grows or reaps towards it in the background. Pools that keep none
  /// ignore it.
  virtual void resize(std::uint64_t min_size) noexcept = 0;
  /// Stops handing out backends, destroys idle ones, completes when none is left that it owns.
  virtual void async_shutdown(std::function<void()> done) noexcept = 0;
};

}  // namespace phasekit::plugin
