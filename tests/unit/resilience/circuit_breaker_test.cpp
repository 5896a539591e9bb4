// Circuit breaker sequences, each derived from opossum 10's lib/circuit.js and lib/status.js (the rule
// pinned is named in the comment above each test). Virtual time: nothing sleeps.
#include "phasekit/resilience/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <optional>

// Options are written as designated initializers ({.volume_threshold = 1}); the members left out keep
// their defaults on purpose. GCC 12 warns about that anyway.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace phasekit::resilience {

void PrintTo(const BreakerStats& s, std::ostream* os) {
  *os << "{fires " << s.fires << ", successes " << s.successes << ", failures " << s.failures << ", rejects "
      << s.rejects << ", timeouts " << s.timeouts << ", fallbacks " << s.fallbacks << ", semaphoreRejections "
      << s.semaphore_rejections << "}";
}

namespace {

enum class Outcome { success, failure, ignored, never };

class BreakerTest : public ::testing::Test {
 protected:
  void make(BreakerOptions options) {
    options.error_filter = [](const Status& s) { return s.code() == Code::not_found; };
    breaker_ = CircuitBreaker::create("test", std::move(options), timers_);
  }

  /// Starts a call whose action settles with `outcome` after `delay_ms` (0: inline, inside the action).
  void fire(Outcome outcome, int delay_ms = 0) {
    breaker_->call(
        [this, outcome, delay_ms](CircuitBreaker::Completion done) {
          ++runs_;
          if (outcome == Outcome::never) {
            return;
          }
          auto settle = [this, outcome, done] {
            const Status s = outcome == Outcome::success  ? Status()
                             : outcome == Outcome::failure ? Status(Code::internal, "boom")
                                                           : Status(Code::not_found, "no such thing");
            late_accepted_.push_back(done(s));
          };
          if (delay_ms == 0) {
            settle();
          } else {
            timers_.schedule(Millis(delay_ms), settle);
          }
        },
        [this](const CallResult& r) { results_.push_back(r); });
  }

  /// fire() and wait until it settles (opossum: `await breaker.fire()`).
  void call(Outcome outcome, int delay_ms = 0) {
    fire(outcome, delay_ms);
    timers_.advance(Millis(delay_ms));
    timers_.run_due();
  }
  void calls(int n, Outcome outcome) {
    for (int i = 0; i < n; ++i) {
      call(outcome);
    }
  }
  void wait(int ms) { timers_.advance(Millis(ms)); }

  static BreakerStats stats(std::uint64_t fires, std::uint64_t successes, std::uint64_t failures,
                            std::uint64_t rejects = 0, std::uint64_t timeouts = 0, std::uint64_t fallbacks = 0,
                            std::uint64_t semaphore = 0) {
    return BreakerStats{fires, successes, failures, rejects, timeouts, fallbacks, semaphore};
  }

  VirtualTimers timers_;
  std::shared_ptr<CircuitBreaker> breaker_;
  std::vector<CallResult> results_;
  std::vector<bool> late_accepted_;
  int runs_ = 0;
};


// Defaults of the origin service (issue 7): timeout 3000, errorThresholdPercentage 50,
// resetTimeout 30000, volumeThreshold 10; opossum's own rolling window 10000 ms / 10 buckets.
TEST_F(BreakerTest, DefaultsAreTheOriginServiceValues) {
  const BreakerOptions o;
  EXPECT_EQ(o.timeout_ms, 3000);
  EXPECT_EQ(o.error_threshold_percentage, 50);
  EXPECT_EQ(o.reset_timeout_ms, 30000);
  EXPECT_EQ(o.volume_threshold, 10u);
  EXPECT_EQ(o.rolling_count_timeout_ms, 10000);
  EXPECT_EQ(o.rolling_count_buckets, 10u);
}

// fire(): 'fire' then 'success' increment fires and successes; the result resolves.
TEST_F(BreakerTest, SuccessesCountFiresAndSuccesses) {
  make({});
  calls(3, Outcome::success);
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  EXPECT_EQ(breaker_->stats(), stats(3, 3, 0));
  ASSERT_EQ(results_.size(), 3u);
  EXPECT_TRUE(results_[2].resolved);
}

// fail(): `if (stats.fires < volumeThreshold && !halfOpen) return;` — 9 failures of 9 fires stay closed.
TEST_F(BreakerTest, BelowVolumeThresholdNeverOpens) {
  make({});
  calls(9, Outcome::failure);
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  EXPECT_EQ(breaker_->stats(), stats(9, 0, 9));
  EXPECT_EQ(results_.back().reason, Rejection::failure);
}

// The 10th failure reaches volumeThreshold with a 100% error rate > 50: open.
TEST_F(BreakerTest, OpensWhenVolumeReachedAndRateAboveThreshold) {
  make({});
  calls(10, Outcome::failure);
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  EXPECT_EQ(breaker_->stats(), stats(10, 0, 10));
}

// `errorRate > errorThresholdPercentage` is strict: exactly 50% keeps it closed, 60% opens it.
TEST_F(BreakerTest, ErrorRateEqualToThresholdDoesNotOpen) {
  make({.volume_threshold = 4});
  calls(2, Outcome::success);
  calls(2, Outcome::failure);
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  EXPECT_EQ(breaker_->stats(), stats(4, 2, 2));
  call(Outcome::failure);  // 3 / 5 = 60%
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  EXPECT_EQ(breaker_->stats(), stats(5, 2, 3));
}

// Successes only: the error rate never rises, whatever the volume.
TEST_F(BreakerTest, SuccessesNeverOpen) {
  make({.volume_threshold = 1});
  calls(25, Outcome::success);
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  EXPECT_EQ(breaker_->stats(), stats(25, 25, 0));
}

// Open: `!closed && !pendingClose` → 'reject' (EOPENBREAKER); the action does not run, and the
// rejected call still counts as a fire.
TEST_F(BreakerTest, OpenRejectsWithoutRunningTheAction) {
  make({.volume_threshold = 1});
  call(Outcome::failure);
  ASSERT_EQ(breaker_->state(), BreakerState::open);
  const int runs = runs_;
  calls(3, Outcome::success);
  EXPECT_EQ(runs_, runs);
  EXPECT_EQ(breaker_->stats(), stats(4, 0, 1, 3));
  EXPECT_FALSE(results_.back().resolved);
  EXPECT_EQ(results_.back().reason, Rejection::open);
  EXPECT_EQ(results_.back().status.code(), Code::unavailable);
}

// 'open' starts the resetTimeout timer; when it fires the breaker is halfOpen (pendingClose).
TEST_F(BreakerTest, ResetTimeoutTurnsOpenIntoHalfOpenExactlyOnTime) {
  make({.reset_timeout_ms = 1000, .volume_threshold = 1});
  call(Outcome::failure);
  wait(999);
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  wait(1);
  EXPECT_EQ(breaker_->state(), BreakerState::half_open);
}

// halfOpen: the probe runs; its 'success' closes the breaker.
TEST_F(BreakerTest, HalfOpenProbeSuccessCloses) {
  make({.reset_timeout_ms = 1000, .volume_threshold = 1});
  call(Outcome::failure);
  wait(1000);
  call(Outcome::success);
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  EXPECT_EQ(breaker_->stats(), stats(2, 1, 1));
}

// fail() in halfOpen opens again whatever the volume (`|| circuit.halfOpen`), and a new resetTimeout
// starts from that moment.
TEST_F(BreakerTest, HalfOpenProbeFailureReopensAndRestartsTheResetTimer) {
  make({.reset_timeout_ms = 1000, .volume_threshold = 100});
  breaker_->open();
  wait(1000);
  ASSERT_EQ(breaker_->state(), BreakerState::half_open);
  wait(500);
  call(Outcome::failure);  // volume 1 of 100, but halfOpen
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  wait(999);
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  wait(1);
  EXPECT_EQ(breaker_->state(), BreakerState::half_open);
  EXPECT_EQ(breaker_->stats(), stats(1, 0, 1));
}

// halfOpen lets one call through (pendingClose becomes false); others are rejected until it settles.
TEST_F(BreakerTest, HalfOpenRejectsCallsWhileTheProbeRuns) {
  make({.reset_timeout_ms = 1000, .volume_threshold = 1});
  call(Outcome::failure);
  wait(1000);
  fire(Outcome::success, 200);  // the probe
  call(Outcome::success);
  call(Outcome::success);
  EXPECT_EQ(breaker_->state(), BreakerState::half_open);
  EXPECT_EQ(results_.back().reason, Rejection::open);
  wait(200);
  timers_.run_due();
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  EXPECT_EQ(breaker_->stats(), stats(4, 1, 1, 2));
}

// The timeout timer emits 'timeout' and then handleError → 'failure': both counters move; the
// action's late answer is ignored (`if (!timeoutError)`), which Completion reports as false.
TEST_F(BreakerTest, TimeoutCountsTimeoutAndFailureAndIgnoresTheLateAnswer) {
  make({.timeout_ms = 100});
  fire(Outcome::success, 150);
  wait(100);
  timers_.run_due();
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_EQ(results_[0].reason, Rejection::timeout);
  EXPECT_EQ(results_[0].status.code(), Code::timeout);
  wait(50);
  ASSERT_EQ(late_accepted_.size(), 1u);
  EXPECT_FALSE(late_accepted_[0]);
  EXPECT_EQ(results_.size(), 1u);
  EXPECT_EQ(breaker_->stats(), stats(1, 0, 1, 0, 1));
  EXPECT_EQ(breaker_->in_flight(), 0u);
}

// A call answering one millisecond before the timeout is a success, and the timer is cancelled.
TEST_F(BreakerTest, AnswerJustBeforeTheTimeoutIsASuccess) {
  make({.timeout_ms = 100});
  call(Outcome::success, 99);
  wait(1000);
  EXPECT_EQ(breaker_->stats(), stats(1, 1, 0));
  EXPECT_EQ(timers_.pending(), 0u);
}

// `timeout: false` (here 0): no timer, a slow call is never a timeout.
TEST_F(BreakerTest, ZeroTimeoutDisablesTimeouts) {
  make({.timeout_ms = 0});
  call(Outcome::success, 3600000);
  EXPECT_EQ(breaker_->totals(), stats(1, 1, 0));  // the window forgot it long ago
}

// Enough timeouts open the breaker like any failure.
TEST_F(BreakerTest, TimeoutsOpenTheBreaker) {
  make({.timeout_ms = 10, .volume_threshold = 3});
  for (int i = 0; i < 3; ++i) {
    fire(Outcome::never);
    wait(10);
    timers_.run_due();
  }
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  EXPECT_EQ(breaker_->stats(), stats(3, 0, 3, 0, 3));
}

// handleError(): an error the errorFilter excuses emits 'success' (counted as one), the caller still
// gets the error, and the breaker does not open however many there are.
TEST_F(BreakerTest, FilteredErrorsCountAsSuccessesAndStillRejectTheCaller) {
  make({.volume_threshold = 1});
  calls(5, Outcome::ignored);
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  EXPECT_EQ(breaker_->stats(), stats(5, 5, 0));
  EXPECT_FALSE(results_.back().resolved);
  EXPECT_TRUE(results_.back().filtered);
  EXPECT_EQ(results_.back().status.code(), Code::not_found);
}

// The 'success' listener closes a halfOpen breaker — also for a filtered error.
TEST_F(BreakerTest, FilteredErrorAsHalfOpenProbeCloses) {
  make({.reset_timeout_ms = 1000, .volume_threshold = 1});
  call(Outcome::failure);
  wait(1000);
  call(Outcome::ignored);
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  EXPECT_EQ(breaker_->stats(), stats(2, 1, 1));
}

// capacity: when `semaphore.test()` fails, 'semaphoreLocked' and then handleError → a failure too.
TEST_F(BreakerTest, CapacityRejectsWithSemaphoreAndCountsAFailure) {
  make({.capacity = 2});
  fire(Outcome::success, 100);
  fire(Outcome::success, 100);
  call(Outcome::success);
  EXPECT_EQ(results_.back().reason, Rejection::semaphore);
  wait(100);
  timers_.run_due();
  EXPECT_EQ(breaker_->stats(), stats(3, 2, 1, 0, 0, 0, 1));
  call(Outcome::success);  // a slot is free again
  EXPECT_EQ(breaker_->stats(), stats(4, 3, 1, 0, 0, 0, 1));
}

// Semaphore rejections are failures, so they can open the breaker.
TEST_F(BreakerTest, SemaphoreRejectionsCanOpenTheBreaker) {
  make({.volume_threshold = 3, .capacity = 1});
  fire(Outcome::never);
  call(Outcome::success);
  call(Outcome::success);
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  EXPECT_EQ(breaker_->stats(), stats(3, 0, 2, 0, 0, 0, 2));
}

// status.js: buckets rotate every floor(rollingCountTimeout / rollingCountBuckets) ms; a bucket leaves
// the window after rollingCountBuckets rotations, so old failures stop counting.
TEST_F(BreakerTest, RollingWindowForgetsFailuresAfterRollingCountTimeout) {
  make({.volume_threshold = 5, .rolling_count_timeout_ms = 1000, .rolling_count_buckets = 10});
  calls(4, Outcome::failure);  // t = 0, bucket 0
  wait(999);
  EXPECT_EQ(breaker_->stats(), stats(4, 0, 4));
  wait(1);  // t = 1000: the bucket of t = 0 has left
  EXPECT_EQ(breaker_->stats(), stats(0, 0, 0));
  call(Outcome::failure);  // 1 fire in the window: below volume
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  EXPECT_EQ(breaker_->totals(), stats(5, 0, 5));
}

// Failures spread over buckets all count while inside the window: 4 at t=0, 1 at t=950 → volume 5
// reached with 100% errors.
TEST_F(BreakerTest, FailuresInDifferentBucketsOfTheWindowAddUp) {
  make({.volume_threshold = 5, .rolling_count_timeout_ms = 1000, .rolling_count_buckets = 10});
  calls(4, Outcome::failure);
  wait(950);
  call(Outcome::failure);
  EXPECT_EQ(breaker_->state(), BreakerState::open);
}

// Bucket length is floor(1000 / 3) = 333 ms: events at t=0 leave at t=999 (3 rotations), not t=1000.
TEST_F(BreakerTest, BucketLengthIsTheFlooredQuotient) {
  make({.rolling_count_timeout_ms = 1000, .rolling_count_buckets = 3});
  call(Outcome::success);
  wait(998);
  EXPECT_EQ(breaker_->stats().fires, 1u);
  wait(1);
  EXPECT_EQ(breaker_->stats().fires, 0u);
}

// fallback(): a rejected or failed call is answered by the fallback, counted in `fallbacks`.
TEST_F(BreakerTest, FallbackAnswersFailuresAndRejections) {
  BreakerOptions o{.volume_threshold = 1};
  o.fallback = [](const Status&) { return Status(); };
  make(std::move(o));
  call(Outcome::failure);  // opens
  call(Outcome::success);  // rejected, answered by the fallback
  EXPECT_EQ(breaker_->stats(), stats(2, 0, 1, 1, 0, 2));
  EXPECT_TRUE(results_[0].resolved);
  EXPECT_TRUE(results_[0].fallback);
  EXPECT_EQ(results_[1].reason, Rejection::open);
  EXPECT_TRUE(results_[1].resolved);
}

// "Only call the fallback function if errorFilter doesn't succeed".
TEST_F(BreakerTest, FallbackDoesNotAnswerFilteredErrors) {
  BreakerOptions o;
  o.fallback = [](const Status&) { return Status(); };
  make(std::move(o));
  call(Outcome::ignored);
  EXPECT_FALSE(results_[0].resolved);
  EXPECT_FALSE(results_[0].fallback);
  EXPECT_EQ(breaker_->stats(), stats(1, 1, 0));
}

// The 'success' listener closes only a halfOpen breaker: a call started before the breaker opened
// and succeeding while it is open leaves it open.
TEST_F(BreakerTest, SuccessWhileOpenDoesNotClose) {
  make({.volume_threshold = 2});
  fire(Outcome::success, 500);
  call(Outcome::failure);  // 1 failure / 2 fires = 50%: not above
  call(Outcome::failure);  // 2 / 3 = 67%: open
  ASSERT_EQ(breaker_->state(), BreakerState::open);
  wait(500);
  timers_.run_due();
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  EXPECT_EQ(breaker_->stats(), stats(3, 1, 2));
}

// open()/close(): a forced open still moves to halfOpen after resetTimeout; close() cancels that timer.
TEST_F(BreakerTest, ManualCloseCancelsTheResetTimer) {
  make({.reset_timeout_ms = 1000});
  breaker_->open();
  breaker_->close();
  wait(5000);
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  EXPECT_EQ(timers_.pending(), 0u);
}

// probe_now() (plugin::Guard::recovered: the dependency answered a reconnect): an open breaker turns
// halfOpen at once, its reset timer gone; a failed probe opens it for a whole reset timeout again; in
// any other state it does nothing.
TEST_F(BreakerTest, ProbeNowTurnsOpenIntoHalfOpenBeforeTheResetTimeout) {
  make({.reset_timeout_ms = 30000, .volume_threshold = 1});
  breaker_->probe_now();
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
  call(Outcome::failure);
  ASSERT_EQ(breaker_->state(), BreakerState::open);
  wait(100);
  breaker_->probe_now();
  EXPECT_EQ(breaker_->state(), BreakerState::half_open);
  EXPECT_EQ(timers_.pending(), 0u) << "the reset timer is cancelled";
  breaker_->probe_now();
  EXPECT_EQ(breaker_->state(), BreakerState::half_open);
  call(Outcome::failure);
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  wait(29999);
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  breaker_->probe_now();
  call(Outcome::success);
  EXPECT_EQ(breaker_->state(), BreakerState::closed);
}

// The listener sees every transition in order: open → halfOpen → closed.
TEST_F(BreakerTest, ListenerSeesEveryTransition) {
  make({.reset_timeout_ms = 1000, .volume_threshold = 1});
  std::vector<BreakerState> seen;
  breaker_->set_listener([&](const std::string& name, BreakerState to) {
    EXPECT_EQ(name, "test");
    seen.push_back(to);
  });
  call(Outcome::failure);
  wait(1000);
  call(Outcome::success);
  EXPECT_EQ(seen, (std::vector<BreakerState>{BreakerState::open, BreakerState::half_open, BreakerState::closed}));
}

// Completions are never invoked inside call() (Asio's rule), not even an immediate rejection.
TEST_F(BreakerTest, DoneIsNeverInvokedInsideCall) {
  make({.volume_threshold = 1});
  fire(Outcome::success);
  EXPECT_TRUE(results_.empty());
  timers_.run_due();
  EXPECT_EQ(results_.size(), 1u);
  breaker_->open();
  fire(Outcome::success);
  EXPECT_EQ(results_.size(), 1u);
  timers_.run_due();
  EXPECT_EQ(results_.size(), 2u);
}

// errorThresholdPercentage 0: any failure above the volume opens it (0% is not > 0, one failure is).
TEST_F(BreakerTest, ZeroThresholdOpensOnTheFirstFailureAtVolume) {
  make({.error_threshold_percentage = 0, .volume_threshold = 3});
  calls(2, Outcome::success);
  call(Outcome::failure);
  EXPECT_EQ(breaker_->state(), BreakerState::open);
  EXPECT_EQ(breaker_->stats(), stats(3, 2, 1));
}

TEST(BreakerOptionsTest, InvalidOptionsAreRefusedNamingTheOption) {
  VirtualTimers timers;
  EXPECT_NE(validate({.error_threshold_percentage = 101}).find("errorThresholdPercentage"), std::string::npos);
  EXPECT_NE(validate({.reset_timeout_ms = 0}).find("resetTimeout"), std::string::npos);
  EXPECT_NE(validate({.rolling_count_timeout_ms = 5, .rolling_count_buckets = 10}).find("rollingCountTimeout"),
            std::string::npos);
  EXPECT_NE(validate({.capacity = 0}).find("capacity"), std::string::npos);
  EXPECT_THROW(CircuitBreaker::create("x", {.timeout_ms = -1}, timers), std::invalid_argument);
  EXPECT_TRUE(validate({}).empty());
}

}  // namespace
}  // namespace phasekit::resilience
