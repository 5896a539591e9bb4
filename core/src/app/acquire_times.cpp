#include "phasekit/app/acquire_times.hpp"

#include <string_view>

#include "phasekit/observe/metrics_registry.hpp"

namespace phasekit::app {

AcquireTimes::AcquireTimes(Metrics& metrics) {
  constexpr std::string_view kName = "phasekit_backend_acquire_seconds";
  constexpr std::string_view kHelp =
      "Time to get a backend from the pool for a session (orchestrator) or a job (worker), by source: warm "
      "(idle), cold (made for it), waited (freed by another session), failed.";
  static constexpr std::array<std::string_view, 4> kSources{"warm", "cold", "waited", "failed"};
  static_assert(static_cast<std::size_t>(plugin::AcquireSource::warm) == 0 &&
                static_cast<std::size_t>(plugin::AcquireSource::cold) == 1 &&
                static_cast<std::size_t>(plugin::AcquireSource::waited) == 2);
  for (std::size_t i = 0; i < kSources.size(); ++i) {
    const std::array<Label, 1> label{{{"source", kSources[i]}}};
    by_source_[i] = &metrics.histogram(kName, kHelp, observe::MetricsRegistry::event_buckets(), label);
  }
}

void AcquireTimes::observe(const Status& status, const plugin::Lease& lease,
                           std::chrono::steady_clock::time_point started) const {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  by_source_[status.ok() ? static_cast<std::size_t>(lease.source) : 3]->observe(seconds);
}

}  // namespace phasekit::app
