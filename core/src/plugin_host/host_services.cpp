#include "phasekit/plugin_host/host_services.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

namespace phasekit::plugin_host {

void RegistryGuard::call(std::function<void(Settle)> action, std::function<void(Status)> done) noexcept {
  if (!breaker_) {
    // Unguarded: settle() always finds the call waiting; done is posted like the breaker's would be.
    action([executor = executor_, done = std::move(done)](Status status) {
      boost::asio::post(executor, [done, status = std::move(status)]() mutable { done(std::move(status)); });
      return true;
    });
    return;
  }
  breaker_->call(
      [action = std::move(action)](const resilience::CircuitBreaker::Completion& complete) {
        action([complete](Status status) { return complete(std::move(status)); });
      },
      [done = std::move(done), name = breaker_->name()](const resilience::CallResult& r) {
        if (r.resolved) {
          done(r.fallback ? r.status : Status());
        } else if (r.reason == resilience::Rejection::open) {
          done(Status(Code::unavailable, fmt::format("circuit breaker {} is open", name)));
        } else if (r.reason == resilience::Rejection::semaphore) {
          done(Status(Code::unavailable, fmt::format("circuit breaker {} is at capacity", name)));
        } else {
          done(r.status);
        }
      });
}

std::string_view RegistryGuard::state() const noexcept {
  return breaker_ ? resilience::state_name(breaker_->state()) : std::string_view("none");
}

void RegistryGuard::recovered() noexcept {
  if (breaker_) {
    breaker_->probe_now();
  }
}

plugin::Guard& BasicHost::breaker(std::string_view dependency) {
  const std::lock_guard lock(guards_mutex_);
  if (const auto it = guards_.find(dependency); it != guards_.end()) {
    return *it->second;
  }
  auto breaker = breakers_ != nullptr ? breakers_->get(std::string(dependency)) : nullptr;
  auto guard = std::make_unique<RegistryGuard>(std::move(breaker), executor_);
  plugin::Guard& out = *guard;
  guards_.emplace(std::string(dependency), std::move(guard));
  return out;
}

}  // namespace phasekit::plugin_host
