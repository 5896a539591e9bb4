#include "capacity/capacity.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "report.hpp"

namespace phasekit::load {

using nlohmann::json;

CapacityTarget read_capacity_target(const std::string& file, int phase) {
  std::ifstream in(file);
  const json targets = json::parse(in, nullptr, false);
  const std::string key = fmt::format("phase{}", phase);
  if (targets.is_discarded() || !targets.is_object()) {
    throw std::runtime_error(fmt::format("{}: cannot read it as JSON", file));
  }
  if (!targets.contains(key) || !targets[key].is_object() || !targets[key].contains("slo") ||
      !targets[key]["slo"].is_string() || !targets[key].contains("users") || !targets[key]["users"].is_number_unsigned()) {
    throw std::runtime_error(
        fmt::format("{}: needs {}.slo (text) and {}.users (a whole number); --phase is 1, 2 or 3", file, key, key));
  }
  return {targets[key]["slo"].get<std::string>(), targets[key]["users"].get<std::uint64_t>()};
}

json CapacityResult::to_json() const {
  json j = {{"scenario", scenario}, {"target", target}, {"slo", slo}, {"steps", json::array()}};
  for (const CapacityStep& s : steps) {
    json checks = json::array();
    for (const CheckResult& c : s.checks) {
      checks.push_back({{"threshold", c.threshold.text}, {"actual", c.actual ? json(*c.actual) : json()}, {"ok", c.ok}});
    }
    j["steps"].push_back({{"users", s.users}, {"pass", s.pass}, {"peakUsers", s.peak_users}, {"checks", checks},
                          {"report", s.report_file}, {"summary", s.summary}});
  }
  j["maxUsers"] = max_users;
  if (target_users > 0) {
    j["targetUsers"] = target_users;
    j["targetMet"] = target_met();
  }
  return j;
}

CapacityResult run_capacity(const Scenario& scenario, const CapacityOptions& capacity, RunOptions options,
                            const DriverFactory& make_driver, const CapacityHooks& hooks) {
  CapacityResult result;
  result.scenario = scenario.file;
  result.target = scenario.target.url();
  result.slo = capacity.slo;
  result.target_users = capacity.target_users;
  options.repeat_until_s = capacity.ramp_s + capacity.hold_s;
  for (const std::uint64_t users : capacity.steps) {
    if (options.interrupted != nullptr && *options.interrupted != 0) {
      break;
    }
    Scenario stepped = scenario;
    stepped.thresholds = capacity.thresholds;
    stepped.phases = {Phase{fmt::format("ramp to {} users", users), capacity.ramp_s, 0, std::nullopt, users, false,
                            std::nullopt},
                      Phase{fmt::format("hold {} users", users), capacity.hold_s, 0, std::nullopt, std::nullopt, true,
                            std::nullopt}};
    if (hooks.step_started) {
      hooks.step_started(users);
    }
    const Report report = run_scenario(stepped, options, make_driver, hooks.progress);
    CapacityStep step;
    step.users = users;
    if (!capacity.out_dir.empty()) {
      step.report_file = (std::filesystem::path(capacity.out_dir) / fmt::format("step-{}.json", users)).string();
      report.save(step.report_file);
    }
    step.dropped = report.total.counter(kArrivalsDropped) > 0;
    step.pass = all_ok(report.checks) && !step.dropped;
    step.peak_users = report.peak_users;
    step.checks = report.checks;
    step.summary = report.to_json()["summary"];
    result.steps.push_back(std::move(step));
    if (hooks.step_done) {
      hooks.step_done(result.steps.back());
    }
    if (!result.steps.back().pass) {
      break;
    }
    result.max_users = users;
  }
  return result;
}

std::string render_capacity_step(const CapacityStep& step) {
  std::string line;
  for (const CheckResult& c : step.checks) {
    line += fmt::format(" {}{}={}", c.ok ? "" : "!", c.threshold.text,
                        c.actual ? fmt::format("{:.2f}", *c.actual) : std::string("none"));
  }
  return fmt::format("{:>7} users: {}{}{}\n", step.users, step.pass ? "pass" : "FAIL", line,
                     step.dropped ? " (harness dropped arrivals)" : "");
}

}  // namespace phasekit::load
