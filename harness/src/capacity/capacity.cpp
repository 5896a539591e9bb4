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

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

json optional_number(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

std::optional<double> read_optional(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return std::nullopt;
  }
  if (!it->is_number()) {
    fail(fmt::format("{}.{}: expected a number or null", where, key));
  }
  return it->get<double>();
}

std::uint64_t read_count(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) {
    return 0;
  }
  if (!it->is_number_integer() || it->get<std::int64_t>() < 0) {
    fail(fmt::format("{}.{}: expected a whole number", where, key));
  }
  return it->get<std::uint64_t>();
}

std::string read_text(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) {
    return "";
  }
  if (!it->is_string()) {
    fail(fmt::format("{}.{}: expected text", where, key));
  }
  return it->get<std::string>();
}

CapacityCheck to_capacity_check(const CheckResult& c) {
  return {c.threshold.text, c.threshold.metric, std::string(op_text(c.threshold.op)), c.threshold.value, c.actual,
          c.ok};
}

}  // namespace

std::string CapacityStep::why() const {
  std::string out;
  const auto add = [&](const std::string& reason) { out += (out.empty() ? "" : "; ") + reason; };
  for (const CapacityCheck& c : checks) {
    if (!c.ok) {
      add(c.actual ? fmt::format("{}: {:.2f} (limit {}{})", c.threshold, *c.actual, c.op, c.limit)
                   : fmt::format("{}: no samples", c.threshold));
    }
  }
  if (dropped) {
    add(fmt::format("the harness dropped {} arrivals (the load was lower than asked)", dropped_arrivals));
  }
  if (!pass && out.empty()) {
    add("stopped before it ended");
  }
  return out;
}

json CapacityResult::to_json() const {
  json j = {{"schema", kCapacitySchema}, {"scenario", scenario}, {"target", target}, {"slo", slo},
            {"rampSeconds", ramp_s},     {"holdSeconds", hold_s}, {"steps", json::array()}};
  for (const CapacityStep& s : steps) {
    json checks = json::array();
    for (const CapacityCheck& c : s.checks) {
      checks.push_back({{"threshold", c.threshold}, {"metric", c.metric}, {"op", c.op}, {"value", c.limit},
                        {"actual", optional_number(c.actual)}, {"ok", c.ok}});
    }
    j["steps"].push_back({{"users", s.users},
                          {"pass", s.pass},
                          {"why", s.why()},
                          {"peakUsers", s.peak_users},
                          {"droppedArrivals", s.dropped_arrivals},
                          {"checks", checks},
                          {"latencyMs",
                           {{"p50", optional_number(s.p50_ms)},
                            {"p95", optional_number(s.p95_ms)},
                            {"p99", optional_number(s.p99_ms)},
                            {"max", optional_number(s.max_ms)}}},
                          {"errorRate", optional_number(s.error_rate)},
                          {"errors", s.errors},
                          {"report", s.report_file},
                          {"summary", s.summary}});
  }
  j["maxUsers"] = max_users;
  if (target_users > 0) {
    j["targetUsers"] = target_users;
    j["targetMet"] = target_met();
    if (phase > 0) {
      j["phase"] = phase;
    }
  }
  return j;
}

CapacityResult CapacityResult::from_json(const json& j) {
  if (!j.is_object() || j.value("schema", std::string()) != kCapacitySchema) {
    fail(fmt::format("not a phasekit-load capacity result (expected \"schema\": \"{}\")", kCapacitySchema));
  }
  CapacityResult r;
  r.scenario = read_text(j, "scenario", "capacity");
  r.target = read_text(j, "target", "capacity");
  r.slo = read_text(j, "slo", "capacity");
  r.ramp_s = read_optional(j, "rampSeconds", "capacity").value_or(0);
  r.hold_s = read_optional(j, "holdSeconds", "capacity").value_or(0);
  r.max_users = read_count(j, "maxUsers", "capacity");
  r.target_users = read_count(j, "targetUsers", "capacity");
  r.phase = static_cast<int>(read_count(j, "phase", "capacity"));
  const json steps = j.value("steps", json::array());
  if (!steps.is_array()) {
    fail("capacity.steps: expected an array");
  }
  for (std::size_t k = 0; k < steps.size(); ++k) {
    const std::string where = fmt::format("capacity.steps[{}]", k);
    const json& sj = steps[k];
    if (!sj.is_object() || !sj.contains("users") || !sj["users"].is_number_unsigned() || !sj.contains("pass") ||
        !sj["pass"].is_boolean()) {
      fail(where + ": expected an object with users (a whole number) and pass (true or false)");
    }
    CapacityStep s;
    s.users = sj["users"].get<std::uint64_t>();
    s.pass = sj["pass"].get<bool>();
    s.peak_users = read_count(sj, "peakUsers", where);
    s.dropped_arrivals = read_count(sj, "droppedArrivals", where);
    s.dropped = s.dropped_arrivals > 0;
    s.report_file = read_text(sj, "report", where);
    s.summary = sj.value("summary", json::object());
    s.error_rate = read_optional(sj, "errorRate", where);
    const json latency = sj.value("latencyMs", json::object());
    if (!latency.is_object()) {
      fail(where + ".latencyMs: expected an object");
    }
    s.p50_ms = read_optional(latency, "p50", where + ".latencyMs");
    s.p95_ms = read_optional(latency, "p95", where + ".latencyMs");
    s.p99_ms = read_optional(latency, "p99", where + ".latencyMs");
    s.max_ms = read_optional(latency, "max", where + ".latencyMs");
    const json errors = sj.value("errors", json::object());
    if (!errors.is_object()) {
      fail(where + ".errors: expected an object");
    }
    for (const auto& [code, n] : errors.items()) {
      if (!n.is_number_unsigned()) {
        fail(fmt::format("{}.errors.{}: expected a whole number", where, code));
      }
      s.errors[code] = n.get<std::uint64_t>();
    }
    const json checks = sj.value("checks", json::array());
    if (!checks.is_array()) {
      fail(where + ".checks: expected an array");
    }
    for (std::size_t c = 0; c < checks.size(); ++c) {
      const std::string at = fmt::format("{}.checks[{}]", where, c);
      if (!checks[c].is_object() || !checks[c].contains("ok") || !checks[c]["ok"].is_boolean()) {
        fail(at + ": expected an object with ok (true or false)");
      }
      s.checks.push_back({read_text(checks[c], "threshold", at), read_text(checks[c], "metric", at),
                          read_text(checks[c], "op", at), read_optional(checks[c], "value", at).value_or(0),
                          read_optional(checks[c], "actual", at), checks[c]["ok"].get<bool>()});
    }
    r.steps.push_back(std::move(s));
  }
  return r;
}

CapacityResult run_capacity(const Scenario& scenario, const CapacityOptions& capacity, RunOptions options,
                            const DriverFactory& make_driver, const CapacityHooks& hooks) {
  CapacityResult result;
  result.scenario = scenario.file;
  result.target = scenario.target.url();
  result.slo = capacity.slo;
  result.target_users = capacity.target_users;
  result.phase = capacity.phase;
  result.ramp_s = capacity.ramp_s;
  result.hold_s = capacity.hold_s;
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
    if (options.live != nullptr) {
      options.live->begin_step(users);
    }
    const Report report = run_scenario(stepped, options, make_driver, hooks.progress);
    CapacityStep step;
    step.users = users;
    if (!capacity.out_dir.empty()) {
      step.report_file = (std::filesystem::path(capacity.out_dir) / fmt::format("step-{}.json", users)).string();
      report.save(step.report_file);
    }
    step.dropped_arrivals = report.total.counter(kArrivalsDropped);
    step.dropped = step.dropped_arrivals > 0;
    step.pass = all_ok(report.checks) && !step.dropped;
    step.peak_users = report.peak_users;
    for (const CheckResult& c : report.checks) {
      step.checks.push_back(to_capacity_check(c));
    }
    const auto latency = [&](const char* stat) {
      return metric_value(report.total, report.duration_s, fmt::format("{}.{}", kResponseTime, stat));
    };
    step.p50_ms = latency("p50");
    step.p95_ms = latency("p95");
    step.p99_ms = latency("p99");
    step.max_ms = latency("max");
    step.error_rate = metric_value(report.total, report.duration_s, kErrorRate);
    step.errors = report.total.errors();
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
  for (const CapacityCheck& c : step.checks) {
    line += fmt::format(" {}{}={}", c.ok ? "" : "!", c.threshold,
                        c.actual ? fmt::format("{:.2f}", *c.actual) : std::string("none"));
  }
  return fmt::format("{:>7} users: {}{}{}\n", step.users, step.pass ? "pass" : "FAIL", line,
                     step.dropped ? " (harness dropped arrivals)" : "");
}

}  // namespace phasekit::load
