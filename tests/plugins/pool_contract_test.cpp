// What every pool promises over every backend, through the loader and against real backends:
// pool ∈ {none, warm} × backend ∈ {process, docker}. A backend is used the way a session uses it
// (commands through its supervisor), and what must be gone is looked for on the host itself.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <nlohmann/json.hpp>

#include "phasekit/backend/process_backend.hpp"
#include "backend_fixtures.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"

namespace phasekit::plugin_host {
namespace {

using namespace std::chrono_literals;
using backend::ShellBackend;
using test::BackendKind;
using test::CountingDriver;
using test::count_processes;
using test::wait_until;

struct Param {
  const char* pool;
  BackendKind backend;
};

void PrintTo(const Param& p, std::ostream* os) { *os << p.pool << " pool, " << test::backend_name(p.backend) << " backend"; }

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  return std::string(info.param.pool) + "_" + std::string(test::backend_name(info.param.backend));
}

class PoolContract : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    env_ = test::make_backend_env(GetParam().backend, ioc_.get_executor(), logs_.logger("test"));
    if (!env_.skip_reason.empty()) {
      GTEST_SKIP() << env_.skip_reason;
    }
    driver_ = std::make_unique<CountingDriver>(*env_.driver);
    host_ = std::make_unique<BasicHost>(logs_, metrics_, clock_, ioc_.get_executor(), driver_.get());
    for (int i = 0; i < 2; ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
  }

  void TearDown() override {
    if (pool_) {
      std::promise<void> down;
      pool_->async_shutdown([&] { down.set_value(); });
      EXPECT_EQ(down.get_future().wait_for(60s), std::future_status::ready);
      pool_.reset();
    }
    if (driver_) {
      EXPECT_TRUE(wait_until([&] { return driver_->live() == 0; }, 60s)) << driver_->live() << " backends left";
    }
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_) {
      t.join();
    }
    env_.teardown();
  }

  void make_pool(std::string_view json) {
    pool_ = instantiate<plugin::PoolStrategy>(Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_POOL, GetParam().pool),
                                              *host_, json);
  }

  [[nodiscard]] bool warm() const { return std::string_view(GetParam().pool) == "warm"; }

  std::pair<Status, plugin::Lease> acquire(std::chrono::seconds deadline = 120s) {
    auto p = std::make_shared<std::promise<std::pair<Status, plugin::Lease>>>();
    auto f = p->get_future();
    pool_->acquire({"user", "session"}, [p](Status s, plugin::Lease l) { p->set_value({std::move(s), std::move(l)}); });
    if (f.wait_for(deadline) != std::future_status::ready) {
      ADD_FAILURE() << "acquire did not complete";
      return {Status(Code::timeout, "test deadline"), {}};
    }
    return f.get();
  }

  plugin::BackendPtr must_acquire() {
    auto [status, lease] = acquire();
    EXPECT_TRUE(status.ok()) << status.message();
    EXPECT_TRUE(lease.backend && lease.backend->alive());
    return lease.backend;
  }

  static std::string run(const plugin::BackendPtr& b, const std::string& command) {
    auto shell = std::dynamic_pointer_cast<ShellBackend>(b);
    if (!shell) {
      ADD_FAILURE() << "backend cannot run commands";
      return {};
    }
    auto p = std::make_shared<std::promise<std::pair<Status, backend::RunResult>>>();
    auto f = p->get_future();
    shell->run(command, 20s, 65536, nullptr,
               [p](Status s, backend::RunResult r) { p->set_value({std::move(s), std::move(r)}); });
    if (f.wait_for(60s) != std::future_status::ready) {
      ADD_FAILURE() << "command did not complete: " << command;
      return {};
    }
    auto [status, result] = f.get();
    EXPECT_TRUE(status.ok()) << status.message();
    return result.output;
  }

  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  SystemClock clock_;
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{ioc_.get_executor()};
  std::vector<std::thread> threads_;
  test::BackendEnv env_;
  std::unique_ptr<CountingDriver> driver_;
  std::unique_ptr<BasicHost> host_;
  InstancePtr<plugin::PoolStrategy> pool_{nullptr, {}};
};

TEST_P(PoolContract, AcquireGivesALiveBackendThatRunsCommandsAndReleaseTakesItBack) {
  make_pool(R"({"min_size": 1, "max_size": 2})");
  const plugin::BackendPtr b = must_acquire();
  ASSERT_TRUE(b);
  EXPECT_EQ(run(b, "echo hello"), "hello\n");
  EXPECT_EQ(pool_->stats().active, 1u);
  pool_->release(b, true);
  EXPECT_TRUE(wait_until([&] { return pool_->stats().active == 0; }, 30s));
  EXPECT_LE(driver_->max_live(), 2u);
}

TEST_P(PoolContract, NothingUserALeavesReachesUserB) {
  // One backend at most, so with pool=warm user B gets the very backend user A used. (pool=none
  // refuses at once while A's backend is still being destroyed, so it gets room for two.)
  make_pool(warm() ? R"({"min_size": 1, "max_size": 1})" : R"({"max_size": 2})");
  const std::string secs = test::unique_on_host();  // names A's processes
  const std::string mark = "phk-mark-" + secs;
  const plugin::BackendPtr a = must_acquire();
  ASSERT_TRUE(a);
  // Every place A can write gets a marker (those it cannot write are skipped); $HOME's startup files
  // get code; the shell gets exports, an alias and a function; the supervisor's folder gets a try;
  // three ways to outlive a call start sleeps; a SysV segment and a message queue where the tools exist.
  const std::string planted = run(a,
      "for d in \"$HOME\" /tmp /var/tmp /dev/shm /run /run/lock /var/lock /dev/mqueue /run/phasekit; do "
      "  echo A > \"$d/" + mark + "\" 2>/dev/null && echo \"wrote $d\"; done; "
      "echo 'echo PLANTED-RC' >> ~/.bashrc; echo 'echo PLANTED-PROFILE' >> ~/.profile; "
      "echo 'echo PLANTED-CMD' > /run/phasekit/cmd 2>/dev/null && echo wrote-cmd; "
      "echo 'echo PLANTED-RESTORE' > /run/phasekit/restore 2>/dev/null && echo wrote-restore; "
      "export LEFT=behind; alias ll='echo PLANTED-ALIAS'; greet() { echo PLANTED-FN; }; mkdir sub; cd sub; "
      "setsid sleep " + secs + " >/dev/null 2>&1 & "
      "nohup sleep " + secs + " >/dev/null 2>&1 & "
      "( ( sleep " + secs + " >/dev/null 2>&1 & ) & ); "
      "command -v ipcmk >/dev/null && ipcmk -M 4096 >/dev/null && echo made-shm; "
      "echo started");
  EXPECT_NE(planted.find("wrote " + std::dynamic_pointer_cast<ShellBackend>(a)->workspace()), std::string::npos)
      << planted;
  EXPECT_NE(planted.find("wrote /tmp"), std::string::npos) << planted;
  if (GetParam().backend == BackendKind::process) {
    EXPECT_NE(planted.find("made-shm"), std::string::npos) << planted;
    EXPECT_EQ(planted.find("wrote-cmd"), std::string::npos) << "the supervisor's folder is not A's: " << planted;
    EXPECT_EQ(planted.find("wrote-restore"), std::string::npos) << planted;
  }
  ASSERT_TRUE(wait_until([&] { return count_processes({"sleep", secs}) == 3; }, 10s))
      << "A's processes never ran: " << count_processes({"sleep", secs}) << "\n" << planted;
  pool_->release(a, true);

  const plugin::BackendPtr b = must_acquire();
  ASSERT_TRUE(b);
  if (warm()) {
    EXPECT_EQ(b->id(), a->id()) << "max_size 1: the same backend, cleaned";
  }
  const auto ws = std::dynamic_pointer_cast<ShellBackend>(b)->workspace();
  const std::string seen = run(b,
      "for d in \"$HOME\" /tmp /var/tmp /dev/shm /run /run/lock /var/lock /dev/mqueue /run/phasekit; do "
      "  [ -e \"$d/" + mark + "\" ] && echo \"found in $d\"; done; "
      "ls -A; echo \"[${LEFT:-}]\"; alias; type greet >/dev/null 2>&1 && echo has-greet; pwd; "
      "n=0; command -v ipcs >/dev/null && n=$(ipcs -m | grep -c '^0x'); echo $n");
  EXPECT_EQ(seen, "[]\n" + ws + "\n0\n") << "user B saw something of user A";
  EXPECT_EQ(seen.find("PLANTED"), std::string::npos) << seen;
  EXPECT_TRUE(wait_until([&] { return count_processes({"sleep", secs}) == 0; }, 10s))
      << "user A's background processes are still running on the host";
  pool_->release(b, true);
}

TEST_P(PoolContract, MaxSizeHoldsUnder200ConcurrentAcquirers) {
  make_pool(R"({"min_size": 2, "max_size": 4, "acquire_timeout_ms": 120000})");
  constexpr int kAcquirers = 200;
  std::atomic<int> leased{0};
  std::atomic<int> most_leased{0};
  std::atomic<int> granted{0};
  std::atomic<int> refused{0};
  std::atomic<int> wrong{0};
  for (int i = 0; i < kAcquirers; ++i) {
    pool_->acquire({"u" + std::to_string(i), "s"}, [&](Status s, plugin::Lease l) {
      if (!s.ok()) {
        (s.code() == Code::unavailable ? refused : wrong)++;
        return;
      }
      const int now = ++leased;
      int seen = most_leased.load();
      while (now > seen && !most_leased.compare_exchange_weak(seen, now)) {
      }
      if (!l.backend || !l.backend->alive()) {
        ++wrong;
      }
      ++granted;
      // Given back from the executor, as a session would, after the others had a chance to pile up.
      boost::asio::post(ioc_, [&, b = std::move(l.backend)] {
        --leased;
        pool_->release(b, true);
      });
    });
  }
  ASSERT_TRUE(wait_until([&] { return granted + refused + wrong == kAcquirers; }, 180s))
      << granted << " granted, " << refused << " refused";
  EXPECT_EQ(wrong, 0);
  EXPECT_LE(most_leased, 4);
  EXPECT_LE(driver_->max_live(), 4u) << "backends alive at once";
  if (warm()) {
    EXPECT_EQ(granted, kAcquirers) << "with a long acquire timeout every caller is served in turn";
    EXPECT_GT(pool_->stats().waits, 0u);
  } else {
    EXPECT_GE(granted, 4);  // pool=none refuses at once beyond max_size
  }
}

TEST_P(PoolContract, IdleBackendsAreReapedDownToTheMinimum) {
  make_pool(R"({"min_size": 1, "max_size": 4, "idle_timeout_ms": 200})");
  std::vector<plugin::BackendPtr> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(must_acquire());
  }
  // Three leased; a warm pool may be making a fourth meanwhile, to keep its one idle.
  ASSERT_GE(driver_->live(), 3u);
  ASSERT_LE(driver_->live(), warm() ? 4u : 3u);
  for (auto& b : held) {
    pool_->release(b, true);
  }
  held.clear();
  const std::uint64_t keep = warm() ? 1 : 0;
  EXPECT_TRUE(wait_until([&] { return driver_->live() == keep && pool_->stats().idle == keep; }, 30s))
      << driver_->live() << " backends alive, " << pool_->stats().idle << " idle";
  if (warm()) {
    EXPECT_GE(pool_->stats().evictions, 2u);
  }
}

TEST_P(PoolContract, ABackendKilledFromOutsideIsReplaced) {
  make_pool(warm() ? R"({"min_size": 1, "max_size": 1, "health_check_ms": 100})" : R"({"max_size": 2})");
  const plugin::BackendPtr a = must_acquire();
  ASSERT_TRUE(a);
  env_.kill_from_outside(a);
  ASSERT_TRUE(wait_until([&] { return !a->alive(); }, 20s));
  pool_->release(a, true);  // the session may not have noticed

  const plugin::BackendPtr b = must_acquire();
  ASSERT_TRUE(b);
  EXPECT_NE(b->id(), a->id());
  EXPECT_EQ(run(b, "echo alive"), "alive\n");
  pool_->release(b, true);
  if (!warm()) {
    return;
  }
  // Killed while idle: found by the pool, never handed out.
  ASSERT_TRUE(wait_until([&] { return pool_->stats().idle == 1; }, 30s));
  env_.kill_from_outside(b);
  ASSERT_TRUE(wait_until([&] { return !b->alive(); }, 20s));
  const plugin::BackendPtr c = must_acquire();
  ASSERT_TRUE(c);
  EXPECT_NE(c->id(), b->id());
  EXPECT_EQ(run(c, "echo alive"), "alive\n");
  pool_->release(c, true);
  EXPECT_GE(pool_->stats().evictions, 2u);
}

INSTANTIATE_TEST_SUITE_P(Pools, PoolContract,
                         ::testing::Values(Param{"none", BackendKind::process}, Param{"warm", BackendKind::process},
                                           Param{"none", BackendKind::docker}, Param{"warm", BackendKind::docker}),
                         param_name);

// The docker driver's backends run the supervisor whatever the image's ENTRYPOINT (the test image's
// is /bin/false), and none of the image's HEALTHCHECK (the test image's probes every second; the
// phasekit image's would curl a port no backend serves, an exec every 10 s in every backend).
class DockerPoolContract : public PoolContract {};  // the contract's fixture, over docker backends only

TEST_P(DockerPoolContract, ABackendRunsNeitherTheImagesEntryPointNorItsHealthcheck) {
  ASSERT_TRUE(env_.inspect);
  make_pool(warm() ? R"({"min_size": 1, "max_size": 1})" : R"({"max_size": 1})");
  const plugin::BackendPtr a = must_acquire();
  ASSERT_TRUE(a);
  EXPECT_EQ(run(a, "echo alive"), "alive\n");
  const auto container = nlohmann::json::parse(env_.inspect(a), nullptr, false);
  ASSERT_TRUE(container.is_object()) << env_.inspect(a);
  EXPECT_EQ(container["Config"]["Healthcheck"]["Test"], nlohmann::json::array({"NONE"}));
  EXPECT_FALSE(container["State"].contains("Health")) << container["State"].dump();
  pool_->release(a, true);
}

INSTANTIATE_TEST_SUITE_P(Pools, DockerPoolContract,
                         ::testing::Values(Param{"none", BackendKind::docker}, Param{"warm", BackendKind::docker}),
                         param_name);

}  // namespace
}  // namespace phasekit::plugin_host
