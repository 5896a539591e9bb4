#include "phasekit/resilience/breaker_registry.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <stdexcept>

namespace phasekit::resilience {

BreakerRegistry::BreakerRegistry(TimerService& timers, BreakerOptions defaults)
    : timers_(timers), defaults_(std::move(defaults)) {
  if (std::string error = validate(defaults_); !error.empty()) {
    throw std::invalid_argument(error);
  }
}

std::shared_ptr<CircuitBreaker> BreakerRegistry::get(const std::string& name) {
  {
    const std::lock_guard lock(mutex_);
    if (const auto it = breakers_.find(name); it != breakers_.end()) {
      return it->second;
    }
  }
  try {
    return create(name, defaults_);
  } catch (const std::invalid_argument&) {
    const std::lock_guard lock(mutex_);  // created by another thread in between
    return breakers_.at(name);
  }
}

std::shared_ptr<CircuitBreaker> BreakerRegistry::create(const std::string& name, BreakerOptions options) {
  auto breaker = CircuitBreaker::create(name, std::move(options), timers_);
  const std::lock_guard lock(mutex_);
  if (!breakers_.emplace(name, breaker).second) {
    throw std::invalid_argument("circuit breaker \"" + name + "\" exists already");
  }
  if (listener_) {
    breaker->set_listener(listener_);
  }
  return breaker;
}

void BreakerRegistry::set_listener(CircuitBreaker::Listener listener) {
  const std::lock_guard lock(mutex_);
  listener_ = std::move(listener);
  for (auto& [name, breaker] : breakers_) {
    breaker->set_listener(listener_);
  }
}

std::string BreakerRegistry::to_json() const {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  const std::lock_guard lock(mutex_);
  for (const auto& [name, breaker] : breakers_) {
    const BreakerStats s = breaker->stats();
    const BreakerOptions& o = breaker->options();
    out[name] = {
        {"state", state_name(breaker->state())},
        {"stats",
         {{"fires", s.fires}, {"successes", s.successes}, {"failures", s.failures}, {"rejects", s.rejects},
          {"timeouts", s.timeouts}, {"fallbacks", s.fallbacks}, {"semaphoreRejections", s.semaphore_rejections}}},
        {"inFlight", breaker->in_flight()},
        {"options",
         {{"timeout", o.timeout_ms == 0 ? nlohmann::ordered_json(false) : nlohmann::ordered_json(o.timeout_ms)},
          {"errorThresholdPercentage", o.error_threshold_percentage},
          {"resetTimeout", o.reset_timeout_ms},
          {"volumeThreshold", o.volume_threshold},
          {"rollingCountTimeout", o.rolling_count_timeout_ms},
          {"rollingCountBuckets", o.rolling_count_buckets}}}};
  }
  return out.dump();
}

void BreakerRegistry::export_metrics(Metrics& metrics) {
  static constexpr std::array<BreakerState, 3> kStates{BreakerState::closed, BreakerState::open,
                                                       BreakerState::half_open};
  static constexpr std::array<std::pair<const char*, std::uint64_t BreakerStats::*>, 7> kEvents{{
      {"fire", &BreakerStats::fires},
      {"success", &BreakerStats::successes},
      {"failure", &BreakerStats::failures},
      {"reject", &BreakerStats::rejects},
      {"timeout", &BreakerStats::timeouts},
      {"fallback", &BreakerStats::fallbacks},
      {"semaphore_rejection", &BreakerStats::semaphore_rejections},
  }};
  const std::lock_guard lock(mutex_);
  for (const auto& [name, breaker] : breakers_) {
    const BreakerState now = breaker->state();
    for (const BreakerState s : kStates) {
      const std::array<Label, 2> labels{{{"breaker", name}, {"state", state_name(s)}}};
      metrics.gauge("phasekit_circuit_breaker_state", "1 for the state each circuit breaker is in, else 0.", labels)
          .set(s == now ? 1.0 : 0.0);
    }
    const BreakerStats totals = breaker->totals();
    BreakerStats& done = exported_[name];
    for (const auto& [event, field] : kEvents) {
      const std::array<Label, 2> labels{{{"breaker", name}, {"event", event}}};
      metrics
          .counter("phasekit_circuit_breaker_events_total",
                   "Circuit breaker events (opossum's stats, cumulative): fire, success, failure, reject, timeout, "
                   "fallback, semaphore_rejection.",
                   labels)
          .inc(static_cast<double>(totals.*field - done.*field));
    }
    done = totals;
  }
}

}  // namespace phasekit::resilience
