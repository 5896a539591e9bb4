#pragma once
// A running load's figures as a scrape sees them. The runner's own thread (never a worker) publishes
// a snapshot about once a second: the runs that ended plus the running one so far. A scrape takes the
// latest snapshot (a pointer copy under a mutex nobody holds for longer) and renders it in the
// Prometheus text exposition format, so scrapes never lock, wait for or slow the workers.
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "metrics.hpp"

namespace phasekit::load {

struct LiveSnapshot {
  MetricSet total;                   // everything measured since the process started (capacity steps add up)
  std::uint64_t users_active = 0;    // users running now
  std::uint64_t runs_completed = 0;  // runs (capacity steps) that ended
  std::uint64_t step_users = 0;      // capacity: the users of the step running now (0: none)
  double run_elapsed_s = 0;          // since the running run started
  std::string phase;                 // of the running run ("" between runs)
  bool running = false;
};

/// What every series of one process carries: which scenario it replays, against which server.
struct ExpositionInfo {
  std::string scenario;
  std::string target;
};

class LiveMetrics {
 public:
  explicit LiveMetrics(ExpositionInfo info);

  // The publisher: one thread at a time (the one that runs run_scenario).
  /// A capacity search's next step: the users it runs with.
  void begin_step(std::uint64_t users);
  void begin_run();
  /// run_total: the intervals of the running run that ended; pending: what was taken from the
  /// workers since.
  void publish(const MetricSet& run_total, const MetricSet& pending, std::uint64_t users_active, double elapsed_s,
               const std::string& phase);
  void end_run(const MetricSet& run_total);

  // Any thread.
  [[nodiscard]] std::shared_ptr<const LiveSnapshot> snapshot() const;
  /// The latest snapshot in the Prometheus text format (0.0.4).
  [[nodiscard]] std::string render() const;

 private:
  void store(LiveSnapshot&& s);

  const ExpositionInfo info_;
  // The publisher's thread only.
  MetricSet completed_;  // of the runs that ended
  std::uint64_t runs_completed_ = 0;
  std::uint64_t step_users_ = 0;
  // Guards current_ alone, held for a pointer copy: a scrape renders outside it.
  mutable std::mutex mutex_;
  std::shared_ptr<const LiveSnapshot> current_;
};

/// The Prometheus text exposition (0.0.4) of a snapshot. Names: counters become
/// phasekit_load_<name>_total (dots as underscores; errors.<code> is phasekit_load_errors_total{code}),
/// histograms phasekit_load_<name>_seconds with le buckets from 100 µs to 60 s (a superset of the
/// orchestrator's), per-channel response times phasekit_load_socketio_channel_response_time_seconds{channel};
/// gauges phasekit_load_vusers_active, _run_elapsed_seconds, _running, _capacity_step_users; and
/// phasekit_load_info{scenario,target} 1, phasekit_load_phase_info{phase} 1.
std::string render_prometheus(const LiveSnapshot& snapshot, const ExpositionInfo& info);

/// The le bounds of every exported histogram, in seconds.
std::span<const double> exposition_buckets_s() noexcept;

}  // namespace phasekit::load
