#pragma once
// A circuit breaker with the semantics of the Node library opossum 10 (lib/circuit.js, lib/status.js),
// under opossum's option and stat names:
//
//  * closed: calls run. A failure (an error the errorFilter does not excuse, a timeout, or a
//    semaphore rejection) opens the breaker when the rolling window holds at least volumeThreshold
//    fires and failures / fires * 100 > errorThresholdPercentage.
//  * open: calls are rejected at once ("open"), and resetTimeout after opening it turns halfOpen.
//  * halfOpen: the first call runs as a probe; calls made while it runs are rejected. A success
//    (or an error the errorFilter excuses) closes it; a failure opens it again, volume or not.
//  * stats are the sum of a rolling window of rollingCountBuckets buckets covering
//    rollingCountTimeout ms; `fires` counts every call, rejected ones included.
//
// Time comes from a TimerService (virtual in tests and `phasekit simulate breaker`). Completions are
// never invoked inside call(): they are scheduled on the timer service with zero delay.
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "phasekit/status.hpp"
#include "phasekit/resilience/timers.hpp"

namespace phasekit::resilience {

enum class BreakerState : std::uint8_t { closed, open, half_open };
/// "closed", "open", "halfOpen" (opossum's names).
std::string_view state_name(BreakerState state) noexcept;

struct BreakerOptions {
  std::int64_t timeout_ms = 3000;  // 0: calls never time out (opossum `timeout: false`)
  double error_threshold_percentage = 50;
  std::int64_t reset_timeout_ms = 30000;
  std::uint64_t volume_threshold = 10;
  std::int64_t rolling_count_timeout_ms = 10000;
  std::uint32_t rolling_count_buckets = 10;
  std::uint64_t capacity = std::numeric_limits<std::uint64_t>::max();  // calls in flight at once
  /// opossum errorFilter: true means "this error does not count": it is recorded as a success (and
  /// closes a halfOpen breaker) but still handed to the caller, without fallback.
  std::function<bool(const Status&)> error_filter;
  /// opossum fallback: answers a call that was rejected or failed; its Status becomes the result.
  std::function<Status(const Status& error)> fallback;
};

/// Empty when fine, else "<option>=<value>: <what is allowed>".
std::string validate(const BreakerOptions& options);

struct BreakerStats {
  std::uint64_t fires = 0;
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;
  std::uint64_t rejects = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t fallbacks = 0;
  std::uint64_t semaphore_rejections = 0;
  friend bool operator==(const BreakerStats&, const BreakerStats&) = default;
};

/// Why a call did not succeed.
enum class Rejection : std::uint8_t { none, open, timeout, failure, semaphore };
/// "open", "timeout", "failure", "semaphore" ("" for none).
std::string_view rejection_name(Rejection reason) noexcept;

struct CallResult {
  bool resolved = false;  // the action succeeded, or a fallback answered
  Rejection reason = Rejection::none;
  bool filtered = false;  // a failure the errorFilter excused (counted as a success)
  bool fallback = false;  // the fallback produced this result
  Status status;          // the action's error, the fallback's answer, or ours (UNAVAILABLE, TIMEOUT)
};

class CircuitBreaker : public std::enable_shared_from_this<CircuitBreaker> {
  struct Call;

 public:
  /// Handed to the action; call it once with the outcome. Returns false when the breaker no longer
  /// waits for this call (it timed out, or was already settled): the action then cleans up whatever
  /// it produced. Safe from any thread.
  class Completion {
   public:
    bool operator()(Status outcome) const;

   private:
    friend class CircuitBreaker;
    Completion(std::shared_ptr<CircuitBreaker> breaker, std::shared_ptr<Call> call)
        : breaker_(std::move(breaker)), call_(std::move(call)) {}
    std::shared_ptr<CircuitBreaker> breaker_;
    std::shared_ptr<Call> call_;
  };
  using Action = std::function<void(Completion)>;
  using Done = std::function<void(const CallResult&)>;
  using Listener = std::function<void(const std::string& name, BreakerState to)>;

  /// Throws std::invalid_argument when validate(options) is not empty. `timers` outlives the breaker.
  static std::shared_ptr<CircuitBreaker> create(std::string name, BreakerOptions options, TimerService& timers);

  /// opossum fire(): runs the action unless the breaker rejects the call; done gets the result.
  void call(Action action, Done done);

  /// opossum open() / close(): force a state (a forced open still turns halfOpen after resetTimeout).
  void open();
  void close();
  /// Open: turns halfOpen now, as the reset timeout would (the dependency was seen to answer).
  /// Any other state: nothing.
  void probe_now();
  /// Called (outside the breaker's lock) on every state change.
  void set_listener(Listener listener);

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const BreakerOptions& options() const noexcept { return options_; }
  [[nodiscard]] BreakerState state() const;
  /// The rolling window: what opossum's `stats` reports and what the open decision reads.
  [[nodiscard]] BreakerStats stats() const;
  /// Every event since creation (monotonic; for Prometheus counters).
  [[nodiscard]] BreakerStats totals() const;
  [[nodiscard]] std::uint64_t in_flight() const;

 private:
  struct Effects {
    std::vector<BreakerState> transitions;
    std::optional<std::pair<Done, CallResult>> completion;
  };

  CircuitBreaker(std::string name, BreakerOptions options, TimerService& timers);
  void rotate_locked(std::int64_t now) const;
  template <class Field>
  void count_locked(Field field);
  void open_locked(Effects& fx);
  void close_locked(Effects& fx);
  void half_open_locked(Effects& fx);
  /// Runs one of the *_locked steps under the mutex, then tells the listener (open, close, probe_now).
  void transition(void (CircuitBreaker::*step)(Effects&));
  /// opossum handleError(): errorFilter, failure accounting, open decision, fallback.
  CallResult fail_locked(Status error, Rejection reason, Effects& fx);
  CallResult reject_locked(Status error, Rejection reason);
  bool settle(const std::shared_ptr<Call>& call, Status outcome, bool timed_out);
  void finish(Effects fx);

  const std::string name_;
  const BreakerOptions options_;
  TimerService& timers_;
  const std::int64_t bucket_ms_;
  const std::int64_t created_ms_;

  mutable std::mutex mutex_;
  BreakerState state_ = BreakerState::closed;
  bool pending_close_ = false;  // halfOpen and the probe has not started yet
  TimerId reset_timer_ = 0;
  std::uint64_t in_flight_ = 0;
  mutable std::vector<BreakerStats> window_;  // window_[0] is the current bucket
  mutable std::int64_t rotations_ = 0;  // bucket intervals elapsed since creation, as applied
  BreakerStats totals_;
  Listener listener_;
};

}  // namespace phasekit::resilience
