// DeadlineLanes: the heartbeat deadlines of every Engine.IO session on one timer (issue 16). A deadline
// fires once, not before its time, in its lane's order, and a later lane's earlier deadline is not
// held up behind the timer's current wait; a target that is gone is not fired, nor anything after stop().
#include "phasekit/net/deadline_lanes.hpp"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace phasekit::net {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Target {
  int id = 0;
};

struct Fired {
  int id;
  std::size_t lane;
  std::uint32_t token;
  Clock::time_point at;
};

class DeadlineLanesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    work_.reset();
    io_.stop();
    thread_.join();
  }

  DeadlineLanes<Target>::Fire recorder() {
    return [this](std::shared_ptr<Target> t, std::size_t lane, std::uint32_t token) {
      const std::lock_guard lock(mutex_);
      fired_.push_back(Fired{t->id, lane, token, Clock::now()});
      changed_.notify_all();
    };
  }

  /// Waits (at most 5 s) until `n` deadlines fired; returns them.
  std::vector<Fired> wait_for(std::size_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, 5s, [&] { return fired_.size() >= n; });
    return fired_;
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Fired> fired_;
};

TEST_F(DeadlineLanesTest, EachDeadlineFiresOnceNotBeforeItsTimeInTheOrderItWasAdded) {
  DeadlineLanes<Target> lanes(io_.get_executor(), {40ms}, recorder());
  std::vector<std::shared_ptr<Target>> targets;
  std::vector<Clock::time_point> added;
  for (int i = 0; i < 5; ++i) {
    targets.push_back(std::make_shared<Target>(Target{i}));
    added.push_back(Clock::now());
    lanes.add(0, targets.back(), static_cast<std::uint32_t>(100 + i));
    std::this_thread::sleep_for(5ms);  // spreads the deadlines; not a wait for a result
  }
  const auto fired = wait_for(5);
  ASSERT_EQ(fired.size(), 5U);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(fired[i].id, i);
    EXPECT_EQ(fired[i].token, static_cast<std::uint32_t>(100 + i));
    EXPECT_GE(fired[i].at, added[i] + 40ms);
  }
  // Nothing fires twice.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(wait_for(5).size(), 5U);
  EXPECT_EQ(lanes.size(), 0U);
}

TEST_F(DeadlineLanesTest, AShortLanesDeadlineAddedLaterFiresBeforeALongOne) {
  DeadlineLanes<Target> lanes(io_.get_executor(), {2s, 30ms}, recorder());
  auto slow = std::make_shared<Target>(Target{1});
  auto quick = std::make_shared<Target>(Target{2});
  lanes.add(0, slow, 1);  // the timer waits 2 s for it
  const auto added = Clock::now();
  lanes.add(1, quick, 2);  // due first: the timer must wait for this one instead
  const auto fired = wait_for(1);
  ASSERT_EQ(fired.size(), 1U);
  EXPECT_EQ(fired[0].id, 2);
  EXPECT_EQ(fired[0].lane, 1U);
  EXPECT_GE(fired[0].at, added + 30ms);
  EXPECT_LT(fired[0].at, added + 1500ms);  // not held behind the 2 s wait
  const auto both = wait_for(2);
  ASSERT_EQ(both.size(), 2U);
  EXPECT_EQ(both[1].id, 1);
}

TEST_F(DeadlineLanesTest, ATargetThatIsGoneIsNotFiredAndNothingFiresAfterStop) {
  DeadlineLanes<Target> lanes(io_.get_executor(), {30ms, 60ms}, recorder());
  auto gone = std::make_shared<Target>(Target{1});
  auto kept = std::make_shared<Target>(Target{2});
  lanes.add(0, gone, 1);
  lanes.add(0, kept, 2);
  gone.reset();
  const auto fired = wait_for(1);
  ASSERT_EQ(fired.size(), 1U);
  EXPECT_EQ(fired[0].id, 2);

  auto late = std::make_shared<Target>(Target{3});
  lanes.add(1, late, 3);
  lanes.stop();
  lanes.add(1, late, 4);  // ignored once stopped
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(wait_for(1).size(), 1U);
  EXPECT_EQ(lanes.size(), 0U);
}

TEST_F(DeadlineLanesTest, LanesGoneWhileTheirTimerWaitsFireNothing) {
  {
    DeadlineLanes<Target> lanes(io_.get_executor(), {30ms}, recorder());
    auto t = std::make_shared<Target>(Target{1});
    lanes.add(0, t, 1);
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(wait_for(0).empty());
}

}  // namespace
}  // namespace phasekit::net
