#pragma once
// phasekit_backend_acquire_seconds{source}: how long a session (orchestrator) or a job (worker) waited
// for the pool's answer, by where the backend came from (warm, cold, waited) or failed.
#include <array>
#include <chrono>

#include "phasekit/plugin/metrics.hpp"
#include "phasekit/plugin/pool.hpp"
#include "phasekit/status.hpp"

namespace phasekit::app {

class AcquireTimes {
 public:
  explicit AcquireTimes(Metrics& metrics);
  /// Observes the time since `started` under the lease's source, or "failed" when `status` is not OK.
  void observe(const Status& status, const plugin::Lease& lease, std::chrono::steady_clock::time_point started) const;

 private:
  std::array<Histogram*, 4> by_source_{};  // AcquireSource order, then failed
};

}  // namespace phasekit::app
