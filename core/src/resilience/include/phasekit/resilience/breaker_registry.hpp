#pragma once
// The process's named circuit breakers ("backend", and later "redis", "docker"): one per external
// dependency, all on the same options unless a caller gives its own. Clients ask for theirs by name
// (get() creates it on first use); /api/circuit-breakers and /metrics read them all from here.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "phasekit/plugin/metrics.hpp"
#include "phasekit/resilience/circuit_breaker.hpp"

namespace phasekit::resilience {

class BreakerRegistry {
 public:
  /// `timers` outlives the registry and every breaker it hands out.
  BreakerRegistry(TimerService& timers, BreakerOptions defaults);

  /// The breaker called `name`, created with the default options on first use.
  std::shared_ptr<CircuitBreaker> get(const std::string& name);
  /// The breaker called `name`, created with these options (throws std::invalid_argument when it
  /// already exists or the options are invalid).
  std::shared_ptr<CircuitBreaker> create(const std::string& name, BreakerOptions options);
  /// Called on every state change of every breaker (e.g. to log it).
  void set_listener(CircuitBreaker::Listener listener);

  /// {"backend": {"state": "closed", "stats": {...opossum stats of the rolling window}, "options": {...}}, …}
  [[nodiscard]] std::string to_json() const;
  /// Updates phasekit_circuit_breaker_state{breaker,state} (1 for the current state) and
  /// phasekit_circuit_breaker_events_total{breaker,event}. Call before rendering /metrics.
  void export_metrics(Metrics& metrics);

 private:
  TimerService& timers_;
  const BreakerOptions defaults_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<CircuitBreaker>> breakers_;
  std::map<std::string, BreakerStats> exported_;  // totals already added to the counters
  CircuitBreaker::Listener listener_;
};

}  // namespace phasekit::resilience
