#pragma once
// At most N requests in flight per user, across all the user's connections. try_acquire answers
// at once (TOO_MANY_REQUESTS is the caller's to send); nothing waits.
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace phasekit::app {

class InflightLimiter {
 public:
  explicit InflightLimiter(std::uint32_t limit) : limit_(limit) {}
  bool try_acquire(const std::string& user);
  void release(const std::string& user);
  [[nodiscard]] std::uint32_t in_flight(const std::string& user) const;
  [[nodiscard]] std::uint32_t limit() const noexcept { return limit_; }

 private:
  const std::uint32_t limit_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::uint32_t> counts_;
};

}  // namespace phasekit::app
