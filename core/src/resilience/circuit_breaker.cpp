#include "phasekit/resilience/circuit_breaker.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace phasekit::resilience {

std::string_view state_name(BreakerState state) noexcept {
  switch (state) {
    case BreakerState::closed: return "closed";
    case BreakerState::open: return "open";
    case BreakerState::half_open: return "halfOpen";
  }
  return "closed";
}

std::string_view rejection_name(Rejection reason) noexcept {
  switch (reason) {
    case Rejection::none: return "";
    case Rejection::open: return "open";
    case Rejection::timeout: return "timeout";
    case Rejection::failure: return "failure";
    case Rejection::semaphore: return "semaphore";
  }
  return "";
}

std::string validate(const BreakerOptions& o) {
  if (o.timeout_ms < 0) {
    return fmt::format("timeout={}: expected milliseconds >= 0 (0 or false: no timeout)", o.timeout_ms);
  }
  if (!(o.error_threshold_percentage >= 0 && o.error_threshold_percentage <= 100)) {
    return fmt::format("errorThresholdPercentage={}: expected a number in 0..100", o.error_threshold_percentage);
  }
  if (o.reset_timeout_ms < 1) {
    return fmt::format("resetTimeout={}: expected milliseconds >= 1", o.reset_timeout_ms);
  }
  if (o.rolling_count_buckets < 1) {
    return fmt::format("rollingCountBuckets={}: expected an integer >= 1", o.rolling_count_buckets);
  }
  if (o.rolling_count_timeout_ms < static_cast<std::int64_t>(o.rolling_count_buckets)) {
    return fmt::format("rollingCountTimeout={}: expected milliseconds >= rollingCountBuckets ({}), so that each "
                       "bucket lasts at least 1 ms",
                       o.rolling_count_timeout_ms, o.rolling_count_buckets);
  }
  if (o.capacity < 1) {
    return "capacity=0: expected an integer >= 1";
  }
  return {};
}

struct CircuitBreaker::Call {
  Done done;
  TimerId timer = 0;
  bool settled = false;
};

bool CircuitBreaker::Completion::operator()(Status outcome) const {
  return breaker_ != nullptr && breaker_->settle(call_, std::move(outcome), false);
}

std::shared_ptr<CircuitBreaker> CircuitBreaker::create(std::string name, BreakerOptions options,
                                                       TimerService& timers) {
  if (std::string error = validate(options); !error.empty()) {
    throw std::invalid_argument(error);
  }
  return std::shared_ptr<CircuitBreaker>(new CircuitBreaker(std::move(name), std::move(options), timers));
}

CircuitBreaker::CircuitBreaker(std::string name, BreakerOptions options, TimerService& timers)
    : name_(std::move(name)),
      options_(std::move(options)),
      timers_(timers),
      // opossum: setInterval(rotate, Math.floor(rollingCountTimeout / rollingCountBuckets))
      bucket_ms_(options_.rolling_count_timeout_ms / options_.rolling_count_buckets),
      created_ms_(timers.now_ms()),
      window_(options_.rolling_count_buckets) {}

void CircuitBreaker::rotate_locked(std::int64_t now) const {
  // A bucket boundary at instant T rotates before anything else that happens at T.
  const std::int64_t due = (now - created_ms_) / bucket_ms_;
  const std::int64_t steps = due - rotations_;
  if (steps <= 0) {
    return;
  }
  if (steps >= static_cast<std::int64_t>(window_.size())) {
    std::fill(window_.begin(), window_.end(), BreakerStats{});
  } else {
    window_.pop_back();  // the oldest bucket leaves, a fresh one becomes current
    window_.insert(window_.begin(), BreakerStats{});
    for (std::int64_t i = 1; i < steps; ++i) {
      window_.pop_back();
      window_.insert(window_.begin(), BreakerStats{});
    }
  }
  rotations_ = due;
}

template <class Field>
void CircuitBreaker::count_locked(Field field) {
  ++(window_.front().*field);
  ++(totals_.*field);
}

void CircuitBreaker::call(Action action, Done done) {
  Effects fx;
  std::shared_ptr<Call> call;
  {
    const std::lock_guard lock(mutex_);
    rotate_locked(timers_.now_ms());
    count_locked(&BreakerStats::fires);
    if (state_ != BreakerState::closed && !pending_close_) {
      count_locked(&BreakerStats::rejects);
      fx.completion.emplace(std::move(done),
                            reject_locked(Status(Code::unavailable, fmt::format("circuit breaker {} is open", name_)),
                                          Rejection::open));
    } else {
      pending_close_ = false;  // a halfOpen breaker lets exactly this one call through
      if (in_flight_ >= options_.capacity) {
        count_locked(&BreakerStats::semaphore_rejections);
        CallResult result = fail_locked(
            Status(Code::unavailable, fmt::format("circuit breaker {} is at capacity ({} calls)", name_,
                                                  options_.capacity)),
            Rejection::semaphore, fx);
        fx.completion.emplace(std::move(done), std::move(result));
      } else {
        ++in_flight_;
        call = std::make_shared<Call>();
        call->done = std::move(done);
        if (options_.timeout_ms > 0) {
          call->timer = timers_.schedule(Millis(options_.timeout_ms), [weak = weak_from_this(), call] {
            if (auto self = weak.lock()) {
              self->settle(call, Status(Code::timeout, fmt::format("timed out after {}ms", self->options_.timeout_ms)),
                           true);
            }
          });
        }
      }
    }
  }
  if (call) {
    action(Completion(shared_from_this(), std::move(call)));
  }
  finish(std::move(fx));
}

bool CircuitBreaker::settle(const std::shared_ptr<Call>& call, Status outcome, bool timed_out) {
  Effects fx;
  {
    const std::lock_guard lock(mutex_);
    if (call->settled) {
      return false;
    }
    call->settled = true;
    if (!timed_out) {
      timers_.cancel(call->timer);
    }
    --in_flight_;
    rotate_locked(timers_.now_ms());
    CallResult result;
    if (timed_out) {
      count_locked(&BreakerStats::timeouts);
      result = fail_locked(std::move(outcome), Rejection::timeout, fx);
    } else if (outcome.ok()) {
      count_locked(&BreakerStats::successes);
      if (state_ == BreakerState::half_open) {
        close_locked(fx);
      }
      result.resolved = true;
    } else {
      result = fail_locked(std::move(outcome), Rejection::failure, fx);
    }
    fx.completion.emplace(std::move(call->done), std::move(result));
  }
  finish(std::move(fx));
  return true;
}

CallResult CircuitBreaker::fail_locked(Status error, Rejection reason, Effects& fx) {
  if (options_.error_filter && options_.error_filter(error)) {
    // opossum emits 'success' for a filtered error: it counts as one and closes a halfOpen breaker,
    // but the caller still gets the error, and no fallback runs.
    count_locked(&BreakerStats::successes);
    if (state_ == BreakerState::half_open) {
      close_locked(fx);
    }
    CallResult result;
    result.reason = reason;
    result.filtered = true;
    result.status = std::move(error);
    return result;
  }
  count_locked(&BreakerStats::failures);
  BreakerStats window;
  for (const BreakerStats& b : window_) {
    window.fires += b.fires;
    window.failures += b.failures;
  }
  const bool half_open = state_ == BreakerState::half_open;
  if (window.fires >= options_.volume_threshold || half_open) {
    const double error_rate = static_cast<double>(window.failures) / static_cast<double>(window.fires) * 100.0;
    if (error_rate > options_.error_threshold_percentage || half_open) {
      open_locked(fx);
    }
  }
  return reject_locked(std::move(error), reason);
}

CallResult CircuitBreaker::reject_locked(Status error, Rejection reason) {
  CallResult result;
  result.reason = reason;
  if (options_.fallback) {
    count_locked(&BreakerStats::fallbacks);
    result.fallback = true;
    result.status = options_.fallback(error);
    result.resolved = result.status.ok();
    return result;
  }
  result.status = std::move(error);
  return result;
}

void CircuitBreaker::open_locked(Effects& fx) {
  if (state_ == BreakerState::open) {
    return;
  }
  state_ = BreakerState::open;
  pending_close_ = false;
  fx.transitions.push_back(BreakerState::open);
  reset_timer_ = timers_.schedule(Millis(options_.reset_timeout_ms), [weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) {
      return;
    }
    Effects later;
    {
      const std::lock_guard lock(self->mutex_);
      self->reset_timer_ = 0;
      self->half_open_locked(later);
    }
    self->finish(std::move(later));
  });
}

void CircuitBreaker::half_open_locked(Effects& fx) {
  if (state_ != BreakerState::open) {
    return;
  }
  timers_.cancel(reset_timer_);
  reset_timer_ = 0;
  state_ = BreakerState::half_open;
  pending_close_ = true;
  fx.transitions.push_back(BreakerState::half_open);
}

void CircuitBreaker::probe_now() { transition(&CircuitBreaker::half_open_locked); }

void CircuitBreaker::close_locked(Effects& fx) {
  if (state_ == BreakerState::closed) {
    return;
  }
  timers_.cancel(reset_timer_);
  reset_timer_ = 0;
  state_ = BreakerState::closed;
  pending_close_ = false;
  fx.transitions.push_back(BreakerState::closed);
}

void CircuitBreaker::open() { transition(&CircuitBreaker::open_locked); }

void CircuitBreaker::close() { transition(&CircuitBreaker::close_locked); }

void CircuitBreaker::transition(void (CircuitBreaker::*step)(Effects&)) {
  Effects fx;
  {
    const std::lock_guard lock(mutex_);
    (this->*step)(fx);
  }
  finish(std::move(fx));
}

void CircuitBreaker::finish(Effects fx) {
  if (!fx.transitions.empty()) {
    Listener listener;
    {
      const std::lock_guard lock(mutex_);
      listener = listener_;
    }
    if (listener) {
      for (const BreakerState to : fx.transitions) {
        listener(name_, to);
      }
    }
  }
  if (fx.completion) {
    timers_.schedule(Millis(0), [done = std::move(fx.completion->first), result = std::move(fx.completion->second)] {
      if (done) {
        done(result);
      }
    });
  }
}

void CircuitBreaker::set_listener(Listener listener) {
  const std::lock_guard lock(mutex_);
  listener_ = std::move(listener);
}

BreakerState CircuitBreaker::state() const {
  const std::lock_guard lock(mutex_);
  return state_;
}

BreakerStats CircuitBreaker::stats() const {
  const std::lock_guard lock(mutex_);
  rotate_locked(timers_.now_ms());
  BreakerStats sum;
  for (const BreakerStats& b : window_) {
    sum.fires += b.fires;
    sum.successes += b.successes;
    sum.failures += b.failures;
    sum.rejects += b.rejects;
    sum.timeouts += b.timeouts;
    sum.fallbacks += b.fallbacks;
    sum.semaphore_rejections += b.semaphore_rejections;
  }
  return sum;
}

BreakerStats CircuitBreaker::totals() const {
  const std::lock_guard lock(mutex_);
  return totals_;
}

std::uint64_t CircuitBreaker::in_flight() const {
  const std::lock_guard lock(mutex_);
  return in_flight_;
}

}  // namespace phasekit::resilience
