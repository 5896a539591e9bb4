#pragma once
// The capacity search: steps of more and more concurrent users, each ramped up and then held while
// every user repeats its flow, until a step misses the SLO; the answer is the most users that met
// it. Each step is a run of the runner, on connections of the driver main hands in.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
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
};

struct CapacityStep {
  std::uint64_t users = 0;
  bool pass = false;
  bool dropped = false;  // the harness dropped arrivals: the load was lower than asked
  std::uint64_t peak_users = 0;
  std::vector<CheckResult> checks;
  std::string report_file;  // "" when not written
  nlohmann::json summary;   // of the step's report
};

struct CapacityResult {
  std::string scenario;  // the file
  std::string target;
  std::string slo;
  std::vector<CapacityStep> steps;  // up to the first that failed
  std::uint64_t max_users = 0;      // of the last step that passed (0: none did)
  std::uint64_t target_users = 0;   // 0: no target

  [[nodiscard]] bool target_met() const { return max_users >= target_users; }
  [[nodiscard]] nlohmann::json to_json() const;
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

}  // namespace phasekit::load
