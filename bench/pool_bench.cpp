// Backend acquisition as a session sees it: from pool->acquire() to its completion handler, with
// real backends. Cold = pool=none (a backend made per acquire); warm = pool=warm with idle backends
// ready. The release (destroy, or reset before reuse) happens outside the timed region, and each
// iteration starts from the steady state (every warm backend idle again, every cold one destroyed).
// Reported per iteration: p50_us and p95_us of the timed acquisitions, and non_warm, the warm-pool
// acquisitions that did not come from an idle backend (should be 0). The *_first_call variants time
// up to the end of a first command (`true`) on the backend: a session's shell starts with its first
// command, so this is what a new session waits before its first result.
#include <benchmark/benchmark.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <algorithm>
#include <future>
#include <thread>
#include <vector>

#include "phasekit/backend/shell_backend.hpp"
#include "backend_fixtures.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"

namespace {

using namespace std::chrono_literals;
using phasekit::test::BackendKind;

class Rig {
 public:
  Rig(BackendKind kind, std::string_view pool, std::string_view json) {
    env_ = phasekit::test::make_backend_env(kind, ioc_.get_executor(), logs_.logger("bench"));
    if (!env_.skip_reason.empty()) {
      return;
    }
    driver_ = std::make_unique<phasekit::test::CountingDriver>(*env_.driver);
    host_ = std::make_unique<phasekit::plugin_host::BasicHost>(logs_, metrics_, clock_, ioc_.get_executor(),
                                                               driver_.get());
    thread_ = std::thread([this] { ioc_.run(); });
    pool_ = phasekit::plugin_host::instantiate<phasekit::plugin::PoolStrategy>(
        phasekit::plugin_host::Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_POOL, pool), *host_, json);
  }

  ~Rig() {
    if (pool_) {
      std::promise<void> down;
      pool_->async_shutdown([&] { down.set_value(); });
      down.get_future().wait_for(60s);
      pool_.reset();
    }
    if (driver_) {
      phasekit::test::wait_until([&] { return driver_->live() == 0; }, 60s);
    }
    work_.reset();
    ioc_.stop();
    if (thread_.joinable()) {
      thread_.join();
    }
    env_.teardown();
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  [[nodiscard]] const std::string& skip_reason() const { return env_.skip_reason; }
  phasekit::plugin::PoolStrategy& pool() { return *pool_; }
  phasekit::test::CountingDriver& driver() { return *driver_; }

  /// One acquisition, timed from the call to its completion handler.
  std::pair<double, phasekit::plugin::Lease> acquire() {
    std::promise<std::pair<std::chrono::steady_clock::time_point, phasekit::plugin::Lease>> got;
    auto f = got.get_future();
    const auto start = std::chrono::steady_clock::now();
    pool_->acquire({"bench", "bench"}, [&](phasekit::Status s, phasekit::plugin::Lease l) {
      const auto end = std::chrono::steady_clock::now();
      if (!s.ok()) {
        l.backend.reset();
      }
      got.set_value({end, std::move(l)});
    });
    auto [end, lease] = f.get();
    return {std::chrono::duration<double>(end - start).count(), std::move(lease)};
  }

 private:
  phasekit::observe::LogSink logs_{[](std::string_view) {}, phasekit::LogLevel::off};
  phasekit::observe::MetricsRegistry metrics_;
  phasekit::plugin_host::SystemClock clock_;
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{ioc_.get_executor()};
  phasekit::test::BackendEnv env_;
  std::unique_ptr<phasekit::test::CountingDriver> driver_;
  std::unique_ptr<phasekit::plugin_host::BasicHost> host_;
  std::thread thread_;
  phasekit::plugin_host::InstancePtr<phasekit::plugin::PoolStrategy> pool_{nullptr, {}};
};

void report(benchmark::State& state, std::vector<double>& seconds) {
  if (seconds.empty()) {
    return;
  }
  std::sort(seconds.begin(), seconds.end());
  const auto at = [&](double q) { return seconds[static_cast<std::size_t>(q * static_cast<double>(seconds.size() - 1))]; };
  state.counters["p50_us"] = at(0.50) * 1e6;
  state.counters["p95_us"] = at(0.95) * 1e6;
  state.counters["max_us"] = seconds.back() * 1e6;
}

/// Runs `true` on a backend; false when it did not succeed.
bool first_command(const phasekit::plugin::BackendPtr& backend) {
  auto shell = std::dynamic_pointer_cast<phasekit::backend::ShellBackend>(backend);
  std::promise<bool> done;
  shell->run("true", 10s, 1024, nullptr, [&](phasekit::Status s, phasekit::backend::RunResult r) {
    done.set_value(s.ok() && r.exit_code == 0);
  });
  return done.get_future().get();
}

void BM_Acquire(benchmark::State& state, BackendKind kind, bool warm, bool with_command) {
  constexpr std::uint64_t kWarm = 4;
  Rig rig(kind, warm ? "warm" : "none", warm ? R"({"min_size": 4, "max_size": 4})" : R"({"max_size": 4})");
  if (!rig.skip_reason().empty()) {
    state.SkipWithError(rig.skip_reason().c_str());
    return;
  }
  std::vector<double> seconds;
  double non_warm = 0;
  for (auto _ : state) {
    // Steady state first, untimed: all warm backends idle (reset done), or no cold one left.
    const bool steady = phasekit::test::wait_until(
        [&] {
          const auto s = rig.pool().stats();
          return warm ? s.idle == kWarm : rig.driver().live() == 0;
        },
        120s);
    if (!steady) {
      state.SkipWithError("the pool did not return to its steady state");
      break;
    }
    const auto start = std::chrono::steady_clock::now();
    auto [elapsed, lease] = rig.acquire();
    if (!lease.backend) {
      state.SkipWithError("acquire failed");
      break;
    }
    if (with_command) {
      if (!first_command(lease.backend)) {
        state.SkipWithError("the first command failed");
        break;
      }
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    state.SetIterationTime(elapsed);
    seconds.push_back(elapsed);
    non_warm += warm && lease.source != phasekit::plugin::AcquireSource::warm ? 1 : 0;
    rig.pool().release(std::move(lease.backend), true);
  }
  report(state, seconds);
  if (warm) {
    state.counters["non_warm"] = non_warm;
  }
}

BENCHMARK_CAPTURE(BM_Acquire, cold_process, BackendKind::process, false, false)->UseManualTime()->Iterations(200)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Acquire, cold_process_first_call, BackendKind::process, false, true)->UseManualTime()
    ->Iterations(200)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Acquire, warm_process, BackendKind::process, true, false)->UseManualTime()->Iterations(2000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Acquire, warm_process_first_call, BackendKind::process, true, true)->UseManualTime()
    ->Iterations(500)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Acquire, cold_docker, BackendKind::docker, false, false)->UseManualTime()->Iterations(30)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Acquire, warm_docker, BackendKind::docker, true, false)->UseManualTime()->Iterations(2000)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
