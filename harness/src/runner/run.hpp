#pragma once
// The runner: virtual users started by the open-model schedule, many per thread on one io_context
// per thread, measured from their intended start times. They speak to the server through a Driver
// (driver/driver.hpp), which main takes from client/.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "driver/driver.hpp"
#include "live_metrics.hpp"
#include "report.hpp"
#include "scenario.hpp"

namespace phasekit::load {

struct RunOptions {
  unsigned threads = 0;          // 0: one per core
  double progress_s = 0;         // interval length of the report and of the progress lines
                                 // (0: auto_interval_s of the run's length, report.hpp)
  double late_ms = 100;          // a user starting later than this after its intended time is late
  double max_duration_s = 0;     // 0: the scenario's phases; else no arrival after this
  double drain_s = -1;           // after the last arrival, users still running are stopped after this
                                 // (< 0: the connect timeout plus the scenario's flow_bound_s())
  double connect_timeout_s = 10;
  std::vector<std::string> source_addresses;  // local addresses to spread connections over ("auto": 8 for loopback)
  bool auto_source_addresses = true;
  bool allow_remote = false;     // load only loopback targets unless told otherwise
  std::string ca_file;           // --ca: instead of config.tls.ca
  bool insecure = false;         // --insecure, or with config.tls.insecure
  bool cookies = true;           // --no-cookies turns each user's cookie jar off
  bool quiet = false;
  std::uint64_t seed = 0;        // 0: random
  // Each user repeats its flow until this time (0: runs the flow once): capacity steps, --repeat-until.
  double repeat_until_s = 0;
  // --keep-going: a user whose flow fails (an unmet check, a refused ack, a response that did not
  // come) counts the error and runs its next flow on the same connection instead of leaving (k6's
  // way; Artillery's is to leave). Its connection ending still ends it. With repeat_until_s.
  bool keep_going = false;
  // --event-log: every packet of every user, one JSON line each (driver/event_log.hpp).
  EventLog* event_log = nullptr;
  // Counted up from a signal handler. The first: arrivals stop, users end the flow they are in (no
  // next one) within the drain period, and the report is written; the second: running users are
  // closed at once.
  const volatile int* interrupted = nullptr;
  // When set, the run's figures so far are published to it about once a second (for --metrics-port).
  LiveMetrics* live = nullptr;
};

using ProgressFn = std::function<void(const Interval&, double interval_s)>;

/// Runs the scenario to its end on the connections of the driver that make_driver makes for it,
/// and returns the report (checks evaluated). Throws std::runtime_error for what stops a run before
/// it starts (from make_driver: the target does not resolve, is not loopback without allow_remote).
Report run_scenario(const Scenario& scenario, const RunOptions& options, const DriverFactory& make_driver,
                    const ProgressFn& progress);

}  // namespace phasekit::load
