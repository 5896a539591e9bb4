#include "phasekit/app/inflight_limiter.hpp"

namespace phasekit::app {

bool InflightLimiter::try_acquire(const std::string& user) {
  const std::lock_guard lock(mutex_);
  std::uint32_t& n = counts_[user];
  if (n >= limit_) {
    return false;
  }
  ++n;
  return true;
}

void InflightLimiter::release(const std::string& user) {
  const std::lock_guard lock(mutex_);
  const auto it = counts_.find(user);
  if (it == counts_.end()) {
    return;
  }
  if (--it->second == 0) {
    counts_.erase(it);  // no entry for idle users: the map stays as small as the active set
  }
}

std::uint32_t InflightLimiter::in_flight(const std::string& user) const {
  const std::lock_guard lock(mutex_);
  const auto it = counts_.find(user);
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace phasekit::app
