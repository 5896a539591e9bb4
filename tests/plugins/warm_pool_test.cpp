// pool=warm behaviour that needs a driver the test controls: waiting, timeouts, order, failures,
// health checks, options and shutdown. (What every pool does with real backends is in
// pool_contract_test.cpp.)
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"

namespace phasekit::plugin_host {
namespace {

using namespace std::chrono_literals;

class ScriptedDriver final : public plugin::BackendDriver {
 public:
  class FakeBackend final : public plugin::Backend {
   public:
    explicit FakeBackend(std::string id) : id_(std::move(id)) {}
    [[nodiscard]] std::string_view id() const noexcept override { return id_; }
    [[nodiscard]] bool alive() const noexcept override { return alive_; }
    bool alive_ = true;
    bool healthy_ = true;

   private:
    std::string id_;
  };

  explicit ScriptedDriver(boost::asio::io_context& ioc) : ioc_(ioc) {}
  [[nodiscard]] std::string_view name() const noexcept override { return "scripted"; }
  void create(std::function<void(Status, plugin::BackendPtr)> done) noexcept override {
    ++creates;
    if (hold_creates) {
      held.push_back(std::move(done));
      return;
    }
    if (fail_creates) {
      boost::asio::post(ioc_, [done = std::move(done)] { done(Status(Code::unavailable, "no room"), nullptr); });
      return;
    }
    ++made;
    auto b = std::make_shared<FakeBackend>("b" + std::to_string(creates));
    boost::asio::post(ioc_, [done = std::move(done), b] { done(Status(), b); });
  }
  void reset(plugin::BackendPtr, std::function<void(Status)> done) noexcept override {
    ++resets;
    boost::asio::post(ioc_, [done = std::move(done)] { done(Status()); });
  }
  void check(plugin::BackendPtr b, std::function<void(Status)> done) noexcept override {
    ++checks;
    const bool ok = static_cast<FakeBackend&>(*b).healthy_;
    boost::asio::post(ioc_, [done = std::move(done), ok] {
      done(ok ? Status() : Status(Code::unavailable, "unhealthy"));
    });
  }
  void destroy(plugin::BackendPtr, std::function<void()> done) noexcept override {
    ++destroys;
    boost::asio::post(ioc_, std::move(done));
  }
  /// Completes the oldest held create with a new backend.
  void finish_one_held() {
    ++made;
    auto b = std::make_shared<FakeBackend>("held" + std::to_string(made));
    boost::asio::post(ioc_, [done = std::move(held.front()), b] { done(Status(), b); });
    held.erase(held.begin());
  }
  bool fail_creates = false;
  bool hold_creates = false;  // creates wait in `held` until finish_one_held()
  std::vector<std::function<void(Status, plugin::BackendPtr)>> held;
  int creates = 0;
  int made = 0;
  int resets = 0;
  int checks = 0;
  int destroys = 0;

 private:
  boost::asio::io_context& ioc_;
};

class WarmPoolTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (pool_) {
      bool down = false;
      pool_->async_shutdown([&] { down = true; });
      EXPECT_TRUE(run_until([&] { return down; }));
      pool_.reset();
    }
    EXPECT_EQ(driver_.made, driver_.destroys) << "every backend made is destroyed by shutdown";
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds deadline = 5s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred() && std::chrono::steady_clock::now() < until) {
      if (ioc_.stopped()) {
        ioc_.restart();
      }
      ioc_.run_one_for(5ms);
    }
    return pred();
  }

  void make(std::string_view json) {
    pool_ = instantiate<plugin::PoolStrategy>(Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_POOL, "warm"), host_, json);
  }

  struct Result {
    bool called = false;
    Status status;
    plugin::Lease lease;
  };
  std::size_t most_made_at_once(const std::string& json);
  std::shared_ptr<Result> acquire() {
    auto r = std::make_shared<Result>();
    pool_->acquire({"u", "s"}, [r](Status s, plugin::Lease l) {
      r->called = true;
      r->status = std::move(s);
      r->lease = std::move(l);
    });
    return r;
  }

  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  SystemClock clock_;
  boost::asio::io_context ioc_;
  ScriptedDriver driver_{ioc_};
  BasicHost host_{logs_, metrics_, clock_, ioc_.get_executor(), &driver_};
  InstancePtr<plugin::PoolStrategy> pool_{nullptr, {}};
};

TEST_F(WarmPoolTest, KeepsTheMinimumWarmAndHandsItOutAtOnce) {
  make(R"({"min_size": 3, "max_size": 5})");
  ASSERT_TRUE(run_until([&] { return pool_->stats().idle == 3; }));
  auto r = acquire();
  ASSERT_TRUE(run_until([&] { return r->called; }));
  EXPECT_TRUE(r->status.ok());
  EXPECT_EQ(r->lease.source, plugin::AcquireSource::warm);
  ASSERT_TRUE(run_until([&] { return pool_->stats().idle == 3; })) << "refilled to the minimum";
  const auto s = pool_->stats();
  EXPECT_EQ(s.active, 1u);
  EXPECT_EQ(s.total, 4u);
  EXPECT_EQ(s.min_size, 3u);
  EXPECT_EQ(s.max_size, 5u);
  EXPECT_EQ(s.acquired_warm, 1u);
  pool_->release(r->lease.backend, true);
  ASSERT_TRUE(run_until([&] { return pool_->stats().idle == 4; }));
  EXPECT_EQ(driver_.resets, 1) << "reset before reuse";
}

TEST_F(WarmPoolTest, WhenExhaustedCallersWaitInOrderThenTimeOutWithUnavailable) {
  make(R"({"min_size": 0, "max_size": 1, "acquire_timeout_ms": 300})");
  auto first = acquire();
  ASSERT_TRUE(run_until([&] { return first->called; }));
  ASSERT_TRUE(first->status.ok());
  EXPECT_EQ(first->lease.source, plugin::AcquireSource::cold);
  auto second = acquire();
  const auto third_asked = std::chrono::steady_clock::now();
  auto third = acquire();
  run_until([] { return false; }, 50ms);
  EXPECT_FALSE(second->called);
  pool_->release(first->lease.backend, true);
  ASSERT_TRUE(run_until([&] { return second->called; }));
  EXPECT_TRUE(second->status.ok());
  EXPECT_EQ(second->lease.source, plugin::AcquireSource::waited);
  EXPECT_EQ(second->lease.backend, first->lease.backend);
  EXPECT_FALSE(third->called);
  ASSERT_TRUE(run_until([&] { return third->called; }));
  // Its deadline runs from when it asked; a timer never fires early, however loaded the machine.
  EXPECT_GE(std::chrono::steady_clock::now() - third_asked, 300ms);
  EXPECT_EQ(third->status.code(), Code::unavailable);
  EXPECT_NE(third->status.message().find("no backend free within 300 ms"), std::string::npos)
      << third->status.message();
  const auto s = pool_->stats();
  EXPECT_EQ(s.waits, 2u);
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_EQ(s.acquired_after_wait, 1u);
  pool_->release(second->lease.backend, true);
}

TEST_F(WarmPoolTest, ACreateFailureReachesTheWaiterAndRefillBacksOff) {
  driver_.fail_creates = true;
  make(R"({"min_size": 2, "max_size": 4, "acquire_timeout_ms": 5000})");
  auto r = acquire();
  ASSERT_TRUE(run_until([&] { return r->called; }));
  EXPECT_EQ(r->status.code(), Code::unavailable);
  EXPECT_NE(r->status.message().find("no room"), std::string::npos) << r->status.message();
  const int after_first = driver_.creates;
  run_until([] { return false; }, 60ms);
  EXPECT_LE(driver_.creates, after_first + 2) << "no hot retry loop while creates fail";
  driver_.fail_creates = false;
  ASSERT_TRUE(run_until([&] { return pool_->stats().idle == 2; })) << "refills once the back-off is over";
  EXPECT_GE(pool_->stats().failures, 1u);
}

TEST_F(WarmPoolTest, AnUnhealthyOrDeadIdleBackendIsReplacedNeverHandedOut) {
  make(R"({"min_size": 1, "max_size": 1, "health_check_ms": 20})");
  ASSERT_TRUE(run_until([&] { return pool_->stats().idle == 1; }));
  auto r = acquire();
  ASSERT_TRUE(run_until([&] { return r->called; }));
  auto first = std::static_pointer_cast<ScriptedDriver::FakeBackend>(r->lease.backend);
  pool_->release(first, true);
  ASSERT_TRUE(run_until([&] { return pool_->stats().idle == 1; }));
  first->healthy_ = false;
  ASSERT_TRUE(run_until([&] { return pool_->stats().evictions == 1 && pool_->stats().idle == 1; }));
  auto again = acquire();
  ASSERT_TRUE(run_until([&] { return again->called; }));
  ASSERT_TRUE(again->status.ok());
  EXPECT_NE(again->lease.backend, r->lease.backend);
  auto second = std::static_pointer_cast<ScriptedDriver::FakeBackend>(again->lease.backend);
  pool_->release(second, true);
  ASSERT_TRUE(run_until([&] { return pool_->stats().idle == 1; }));
  second->alive_ = false;  // died while idle: an acquire must not get it
  auto third = acquire();
  ASSERT_TRUE(run_until([&] { return third->called; }));
  ASSERT_TRUE(third->status.ok());
  EXPECT_NE(third->lease.backend, again->lease.backend);
  EXPECT_TRUE(third->lease.backend->alive());
  pool_->release(third->lease.backend, true);
}

TEST_F(WarmPoolTest, ShutdownRefusesWaitersDestroysIdleAndRefusesLaterAcquires) {
  make(R"({"min_size": 1, "max_size": 1, "acquire_timeout_ms": 60000})");
  auto held = acquire();
  ASSERT_TRUE(run_until([&] { return held->called; }));
  auto waiting = acquire();
  bool down = false;
  pool_->async_shutdown([&] { down = true; });
  ASSERT_TRUE(run_until([&] { return waiting->called && down; }));
  EXPECT_EQ(waiting->status.code(), Code::unavailable);
  pool_->release(held->lease.backend, true);
  ASSERT_TRUE(run_until([&] { return pool_->stats().total == 0; }));
  auto late = acquire();
  ASSERT_TRUE(run_until([&] { return late->called; }));
  EXPECT_EQ(late->status.message(), "shutting down");
  pool_.reset();
}

/// The most backends a pool of `json` (min_size 20) made at once while it served ten callers and
/// filled up, its creates finished one at a time.
std::size_t WarmPoolTest::most_made_at_once(const std::string& json) {
  driver_.hold_creates = true;
  make(json);
  std::vector<std::shared_ptr<Result>> callers;
  for (int i = 0; i < 10; ++i) {
    callers.push_back(acquire());
  }
  auto served = [&] {
    return std::all_of(callers.begin(), callers.end(), [](const auto& r) { return r->called; });
  };
  auto filled = [&] { return served() && pool_->stats().idle == 20; };
  std::size_t most = 0;
  for (int i = 0; i < 100; ++i) {
    run_until([&] { return driver_.held.size() >= 30 || filled(); }, 50ms);
    most = std::max(most, driver_.held.size());
    if (filled()) {
      break;
    }
    EXPECT_FALSE(driver_.held.empty()) << "the pool stopped making backends";
    if (driver_.held.empty()) {
      break;
    }
    driver_.finish_one_held();
  }
  EXPECT_TRUE(filled());
  EXPECT_EQ(driver_.made, 30) << "ten for the callers, twenty kept idle";
  for (const auto& r : callers) {
    EXPECT_TRUE(r->status.ok()) << r->status.message();
    pool_->release(std::move(r->lease.backend), true);
  }
  driver_.hold_creates = false;
  return most;
}

TEST_F(WarmPoolTest, MakesAtMostCreateConcurrencyBackendsAtOnceAndStillFillsUp) {
  EXPECT_EQ(most_made_at_once(R"({"min_size": 20, "max_size": 100, "create_concurrency": 3})"), 3u)
      << "three at a time, never more";
}

TEST_F(WarmPoolTest, CreateConcurrencyZeroIsTwiceTheCores) {
  const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_EQ(most_made_at_once(R"({"min_size": 20, "max_size": 100, "create_concurrency": 0})"),
            std::min<std::size_t>(2 * cores, 30));
}

TEST_F(WarmPoolTest, CreateConcurrencyIsZeroUnlessGivenAsPoolCreateConcurrencyIs) {
  const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_EQ(most_made_at_once(R"({"min_size": 20, "max_size": 100})"), std::min<std::size_t>(2 * cores, 30));
}

TEST_F(WarmPoolTest, OptionsAreCheckedWithOneLineSayingWhatIsAllowed) {
  const Candidate c = Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_POOL, "warm");
  for (const auto& [json, expected] : std::vector<std::pair<std::string, std::string>>{
           {R"({"min_size": 5, "max_size": 2})", "min_size=5 exceeds max_size=2"},
           {R"({"max_size": 0})", "max_size: 0: expected an integer in 1..10000"},
           {R"({"create_concurrency": -1})", "create_concurrency: -1: expected an integer in 0..10000"},
           {R"({"min_size": "ten"})", "min_size: \"ten\": expected an integer in 0..10000"},
           {R"({"bogus": 1})", "bogus: unknown key (expected one of acquire_timeout_ms|create_concurrency|health_check_ms|"
                               "idle_timeout_ms|max_size|min_size)"},
       }) {
    try {
      void* p = create_instance(c, &host_, json);
      c.descriptor->destroy(p);
      ADD_FAILURE() << json << " was accepted";
    } catch (const LoadError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace phasekit::plugin_host
