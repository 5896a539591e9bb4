#include "phasekit/resilience/breaker_backend_driver.hpp"

namespace phasekit::resilience {
namespace {

/// Runs `invoke(callback)` through the breaker; done gets OK, the call's error, or the breaker's.
template <class Invoke>
void guard_status(CircuitBreaker& breaker, Invoke invoke, std::function<void(Status)> done) {
  breaker.call(
      [invoke = std::move(invoke)](const CircuitBreaker::Completion& complete) mutable {
        invoke([complete](Status status) { complete(std::move(status)); });
      },
      [done = std::move(done)](const CallResult& r) { done(r.resolved ? Status() : r.status); });
}

}  // namespace

BreakerBackendDriver::BreakerBackendDriver(plugin::BackendDriver& inner, std::shared_ptr<CircuitBreaker> breaker)
    : inner_(inner), breaker_(std::move(breaker)) {}

void BreakerBackendDriver::create(std::function<void(Status, plugin::BackendPtr)> done) noexcept {
  auto made = std::make_shared<plugin::BackendPtr>();
  breaker_->call(
      [this, made](const CircuitBreaker::Completion& complete) {
        inner_.create([this, made, complete](Status status, plugin::BackendPtr backend) {
          *made = backend;
          if (!complete(std::move(status)) && backend) {
            made->reset();
            inner_.destroy(std::move(backend), [] {});  // arrived after the timeout: nobody wants it
          }
        });
      },
      [made, done = std::move(done)](const CallResult& r) {
        if (r.resolved) {
          done(Status(), std::move(*made));
        } else {
          done(r.status, nullptr);
        }
      });
}

void BreakerBackendDriver::reset(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept {
  guard_status(*breaker_, [this, backend](std::function<void(Status)> cb) { inner_.reset(backend, std::move(cb)); },
               std::move(done));
}

void BreakerBackendDriver::check(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept {
  guard_status(*breaker_, [this, backend](std::function<void(Status)> cb) { inner_.check(backend, std::move(cb)); },
               std::move(done));
}

void BreakerBackendDriver::destroy(plugin::BackendPtr backend, std::function<void()> done) noexcept {
  inner_.destroy(std::move(backend), std::move(done));
}

}  // namespace phasekit::resilience
