// phasekit simulate breaker: {"options": {opossum options}, "steps": [call | fire | wait]}.
#include <memory>
#include <ostream>

#include "phasekit/json_fields.hpp"
#include "phasekit/resilience/circuit_breaker.hpp"
#include "phasekit/simulate/simulate.hpp"

namespace phasekit::simulate {
namespace {

using namespace json_fields;  // NOLINT(google-build-using-namespace)
using resilience::BreakerOptions;
using resilience::CircuitBreaker;

constexpr std::int64_t kMaxMs = 10LL * 365 * 24 * 3600 * 1000;  // ten years of virtual time

BreakerOptions parse_options(const Json* j) {
  BreakerOptions o;
  if (j == nullptr) {
    return o;
  }
  const std::string path = "options";
  only_keys(*j, path,
            {"timeout", "errorThresholdPercentage", "resetTimeout", "volumeThreshold", "rollingCountTimeout",
             "rollingCountBuckets", "capacity", "fallback"});
  if (const Json* v = optional(*j, "timeout")) {
    o.timeout_ms = v->is_boolean() && !v->get<bool>() ? 0 : integer(*v, child(path, "timeout"), 1, kMaxMs);
  }
  if (const Json* v = optional(*j, "errorThresholdPercentage")) {
    o.error_threshold_percentage = number(*v, child(path, "errorThresholdPercentage"), 0, 100);
  }
  if (const Json* v = optional(*j, "resetTimeout")) {
    o.reset_timeout_ms = integer(*v, child(path, "resetTimeout"), 1, kMaxMs);
  }
  if (const Json* v = optional(*j, "volumeThreshold")) {
    o.volume_threshold = static_cast<std::uint64_t>(integer(*v, child(path, "volumeThreshold"), 0, INT32_MAX));
  }
  if (const Json* v = optional(*j, "rollingCountTimeout")) {
    o.rolling_count_timeout_ms = integer(*v, child(path, "rollingCountTimeout"), 1, kMaxMs);
  }
  if (const Json* v = optional(*j, "rollingCountBuckets")) {
    o.rolling_count_buckets = static_cast<std::uint32_t>(integer(*v, child(path, "rollingCountBuckets"), 1, 10000));
  }
  if (const Json* v = optional(*j, "capacity")) {
    o.capacity = static_cast<std::uint64_t>(integer(*v, child(path, "capacity"), 1, INT32_MAX));
  }
  if (const Json* v = optional(*j, "fallback"); v != nullptr && boolean(*v, child(path, "fallback"))) {
    o.fallback = [](const Status&) { return Status(); };
  }
  if (std::string error = resilience::validate(o); !error.empty()) {
    throw FieldError(path, error);
  }
  // The simulator's errorFilter excuses exactly the outcome "ignored_failure".
  o.error_filter = [](const Status& s) { return s.code() == Code::not_found; };
  return o;
}

Status outcome_status(const std::string& outcome) {
  if (outcome == "success") {
    return {};
  }
  if (outcome == "failure") {
    return {Code::internal, "failure"};
  }
  return {Code::not_found, "ignored failure"};
}

nlohmann::ordered_json stats_json(const resilience::BreakerStats& s) {
  return {{"fires", s.fires},         {"successes", s.successes},
          {"failures", s.failures},   {"rejects", s.rejects},
          {"timeouts", s.timeouts},   {"fallbacks", s.fallbacks},
          {"semaphoreRejections", s.semaphore_rejections}};
}

struct Step {
  std::string op;
  std::string id;
  std::string outcome;
  std::int64_t ms = 0;
};

Step parse_step(const Json& j, const std::string& path, std::size_t index) {
  object(j, path);
  Step s;
  s.op = one_of(required(j, path, "op"), child(path, "op"), {"call", "fire", "wait"});
  if (s.op == "wait") {
    only_keys(j, path, {"op", "ms"});
    s.ms = integer(required(j, path, "ms"), child(path, "ms"), 0, kMaxMs);
    return s;
  }
  only_keys(j, path, {"op", "id", "outcome", "delay_ms"});
  s.id = optional(j, "id") != nullptr ? text(j["id"], child(path, "id")) : "step" + std::to_string(index);
  s.outcome = one_of(required(j, path, "outcome"), child(path, "outcome"), {"success", "failure", "ignored_failure"});
  if (const Json* d = optional(j, "delay_ms")) {
    s.ms = integer(*d, child(path, "delay_ms"), 0, kMaxMs);
  }
  return s;
}

}  // namespace

void run_breaker(const Json& scenario, std::ostream& out) {
  std::vector<Step> steps;
  BreakerOptions options;
  try {
    only_keys(scenario, "", {"options", "steps"});
    options = parse_options(optional(scenario, "options"));
    const Json& list = array(required(scenario, "", "steps"), "steps");
    for (std::size_t i = 0; i < list.size(); ++i) {
      steps.push_back(parse_step(list[i], item("steps", i), i));
    }
  } catch (const FieldError& e) {
    throw SimulateError(e.what());
  }

  resilience::VirtualTimers timers;
  const auto breaker = CircuitBreaker::create("simulated", std::move(options), timers);
  nlohmann::ordered_json settled = nlohmann::ordered_json::array();
  for (const Step& step : steps) {
    settled = nlohmann::ordered_json::array();
    if (step.op == "wait") {
      timers.advance(resilience::Millis(step.ms));
    } else {
      auto done = std::make_shared<bool>(false);  // the completion may come in a later step
      const Status outcome = outcome_status(step.outcome);
      breaker->call(
          [&timers, outcome, delay = step.ms](const CircuitBreaker::Completion& complete) {
            timers.schedule(resilience::Millis(delay), [complete, outcome] { complete(outcome); });
          },
          [&settled, done, id = step.id, &timers](const resilience::CallResult& r) {
            nlohmann::ordered_json entry{{"id", id}, {"t_ms", timers.now_ms()},
                                         {"result", r.resolved ? "resolved" : "rejected"}};
            if (r.reason != resilience::Rejection::none) {
              entry["reason"] = resilience::rejection_name(r.reason);
            }
            if (r.filtered) {
              entry["filtered"] = true;
            }
            if (r.fallback) {
              entry["fallback"] = true;
            }
            settled.push_back(std::move(entry));
            *done = true;
          });
      timers.run_due();
      // `call` awaits its own result (which may be a timeout before delay_ms); `fire` does not.
      while (step.op == "call" && !*done) {
        const auto next = timers.next_due();
        if (!next) {
          break;
        }
        timers.advance(resilience::Millis(*next - timers.now_ms()));
      }
    }
    nlohmann::ordered_json line{{"t_ms", timers.now_ms()},
                                {"op", step.op},
                                {"state", resilience::state_name(breaker->state())},
                                {"stats", stats_json(breaker->stats())},
                                {"settled", settled}};
    out << line.dump() << '\n';
  }
}

}  // namespace phasekit::simulate
