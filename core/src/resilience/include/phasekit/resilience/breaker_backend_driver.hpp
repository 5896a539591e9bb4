#pragma once
// A BackendDriver that sends every call of the driver it wraps through a circuit breaker, so pools and
// sessions get backends exactly as before while a failing backend host is cut off quickly:
// create/reset/check fail fast with UNAVAILABLE while the breaker is open, and a call that outlives
// the breaker's timeout fails with TIMEOUT (a backend created too late is destroyed, never leaked).
// destroy() is passed straight through: refusing to clean up would leak processes.
#include <memory>

#include "phasekit/plugin/backend.hpp"
#include "phasekit/resilience/circuit_breaker.hpp"

namespace phasekit::resilience {

class BreakerBackendDriver final : public plugin::BackendDriver {
 public:
  /// `inner` outlives this object. Completions arrive on the breaker's timer service.
  BreakerBackendDriver(plugin::BackendDriver& inner, std::shared_ptr<CircuitBreaker> breaker);

  [[nodiscard]] std::string_view name() const noexcept override { return inner_.name(); }
  void create(std::function<void(Status, plugin::BackendPtr)> done) noexcept override;
  void reset(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept override;
  void check(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept override;
  void destroy(plugin::BackendPtr backend, std::function<void()> done) noexcept override;

 private:
  plugin::BackendDriver& inner_;
  std::shared_ptr<CircuitBreaker> breaker_;
};

}  // namespace phasekit::resilience
