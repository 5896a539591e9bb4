#pragma once
// The capacity search: steps of more and more concurrent users, each ramped up and then held while
// every user repeats its flow, until a step misses the SLO; the answer is the most users that met
// it. Each step is a run of the runner, on connections of the driver main hands in.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "driver/driver.hpp"
#include "runner/run.hpp"
#include "scenario.hpp"
#include "thresholds.hpp"

namespace phasekit::load {

/// One phase's SLO and user target in a targets file (scenarios/targets.json).
struct CapacityTarget {
  std::string slo;
  std::uint64_t users = 0;
};

/// Reads phase<N> of a targets file. Throws std::runtime_error naming the file and what it needs.
CapacityTarget read_capacity_target(const std::string& file, int phase);

struct CapacityOptions {
  std::string slo;                    // as written: 'p95<200ms,errors<1%'
  std::vector<Threshold> thresholds;  // the SLO parsed: what every step is checked against
  std::vector<std::uint64_t> steps;   // the users of each step, tried in this order
  double ramp_s = 10;                 // a step's users arrive over this
  double hold_s = 20;                 // then every user keeps repeating its flow for this long
  std::string out_dir;                // where each step's JSON report goes (step-<users>.json), if set
  std::uint64_t target_users = 0;     // the phase target to meet (0: none)
  int phase = 0;                      // the targets file's phase it came from (0: none)
};

inline constexpr std::string_view kCapacitySchema = "phasekit-load/capacity@1";

/// One check of a step as the result keeps it: the threshold as written, its metric, the limit and
/// what was measured.
struct CapacityCheck {
  std::string threshold;  // "p95<200ms"
  std::string metric;     // "socketio.response_time.p95"
  std::string op;         // "<"
  double limit = 0;       // in the metric's unit (ms, percent, per second, count)
  std::optional<double> actual;
  bool ok = false;
};

struct CapacityStep {
  std::uint64_t users = 0;
  bool pass = false;
  bool dropped = false;  // the harness dropped arrivals: the load was lower than asked
  std::uint64_t dropped_arrivals = 0;
  std::uint64_t peak_users = 0;
  std::vector<CapacityCheck> checks;
  // socketio.response_time over the whole step (ms); nullopt: no samples.
  std::optional<double> p50_ms, p95_ms, p99_ms, max_ms;
  std::optional<double> error_rate;     // percent of the users that started
  std::map<std::string, std::uint64_t> errors;  // by code
  std::string report_file;  // "" when not written
  nlohmann::json summary;   // of the step's report

  /// Why a step failed, for a person ("p95<200ms: 412.00 (limit 200)", "the harness dropped 3
  /// arrivals"); "" when it passed.
  [[nodiscard]] std::string why() const;
};

struct CapacityResult {
  std::string scenario;  // the file
  std::string target;
  std::string slo;
  double ramp_s = 0;
  double hold_s = 0;
  std::vector<CapacityStep> steps;  // up to the first that failed
  std::uint64_t max_users = 0;      // of the last step that passed (0: none did)
  std::uint64_t target_users = 0;   // 0: no target
  int phase = 0;                    // of the targets file, when target_users came from one

  [[nodiscard]] bool target_met() const { return max_users >= target_users; }
  [[nodiscard]] nlohmann::json to_json() const;
  /// Throws std::invalid_argument naming the path of what is wrong.
  static CapacityResult from_json(const nlohmann::json& j);
};

/// What the caller sees of a search while it runs.
struct CapacityHooks {
  std::function<void(std::uint64_t users)> step_started;
  ProgressFn progress;  // the intervals of the running step
  std::function<void(const CapacityStep&)> step_done;
};

/// Runs the steps in order until one fails or options.interrupted is set, each with a driver from
/// make_driver. Throws what run_scenario throws.
CapacityResult run_capacity(const Scenario& scenario, const CapacityOptions& capacity, RunOptions options,
                            const DriverFactory& make_driver, const CapacityHooks& hooks);

/// "    200 users: pass p95<200ms=12.34 !errors<1%=3.00" and a newline: one step for a person.
std::string render_capacity_step(const CapacityStep& step);

/// A self-contained HTML page of a capacity search: latency percentiles and the error rate against
/// the users of each step with the SLO's limits drawn across, and the verdict of every step.
std::string render_capacity_html(const CapacityResult& result);

}  // namespace phasekit::load
