#pragma once
// Time for the resilience code (circuit breakers): a clock plus one-shot timers behind an interface,
// so the same breaker runs on real time in the orchestrator (AsioTimers) and on virtual time in tests
// and in `phasekit simulate breaker` (VirtualTimers), where nothing ever sleeps.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

namespace phasekit::resilience {

using Millis = std::chrono::milliseconds;
using TimerId = std::uint64_t;

class TimerService {
 public:
  virtual ~TimerService() = default;
  /// Milliseconds since an arbitrary, fixed origin; never goes backwards.
  [[nodiscard]] virtual std::int64_t now_ms() const noexcept = 0;
  /// Runs fn once, `delay` from now, unless cancelled first. fn never runs inside schedule().
  virtual TimerId schedule(Millis delay, std::function<void()> fn) = 0;
  /// Cancelling a timer that already ran (or an unknown id) does nothing.
  virtual void cancel(TimerId id) noexcept = 0;
};

/// Virtual time: advance() moves the clock and runs every timer that falls due, in time order
/// (timers due at the same instant run in the order they were scheduled).
class VirtualTimers final : public TimerService {
 public:
  [[nodiscard]] std::int64_t now_ms() const noexcept override;
  TimerId schedule(Millis delay, std::function<void()> fn) override;
  void cancel(TimerId id) noexcept override;

  /// Runs the timers due now (including ones those schedule with zero delay).
  void run_due();
  /// Moves the clock forward by `by`, stopping at each due timer to run it.
  void advance(Millis by);
  [[nodiscard]] std::size_t pending() const;
  /// When the earliest pending timer is due, if any.
  [[nodiscard]] std::optional<std::int64_t> next_due() const;

 private:
  bool run_one_due_at_or_before(std::int64_t limit);

  mutable std::mutex mutex_;
  std::int64_t now_ = 0;
  TimerId next_id_ = 1;
  std::map<std::pair<std::int64_t, TimerId>, std::function<void()>> queue_;  // (due, id) -> fn
  std::map<TimerId, std::int64_t> due_of_;
};

}  // namespace phasekit::resilience
