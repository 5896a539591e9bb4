#pragma once
// TimerService on real time: steady_timers on an Asio executor (the orchestrator's io_context).
#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <mutex>
#include <unordered_map>

#include "phasekit/resilience/timers.hpp"

namespace phasekit::resilience {

class AsioTimers final : public TimerService {
 public:
  explicit AsioTimers(boost::asio::any_io_executor executor);
  ~AsioTimers() override;
  AsioTimers(const AsioTimers&) = delete;
  AsioTimers& operator=(const AsioTimers&) = delete;

  [[nodiscard]] std::int64_t now_ms() const noexcept override;
  TimerId schedule(Millis delay, std::function<void()> fn) override;
  void cancel(TimerId id) noexcept override;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with pending handlers, which may outlive this object
};

}  // namespace phasekit::resilience
