// What the autoscaler's recommendation sizes (phasekit/autoscale/sizers.hpp): the mapping functions as
// tables, then the real hpa algorithm (phasekit_hpa_impl, given the JSON the processes hand the plugin)
// in an AutoscaleLoop on virtual time, against a fake pool and a fake queue that record every
// resize / set_concurrency. Each step's numbers are worked out in the comment above it. Nothing sleeps.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "phasekit/autoscale/autoscale_loop.hpp"
#include "phasekit/autoscale/sizers.hpp"
#include "phasekit/autoscale/worker_autoscaler.hpp"
#include "phasekit/config/config.hpp"
#include "hpa_autoscaler.hpp"
#include "hpa_spec.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/loader.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "phasekit/resilience/timers.hpp"

namespace phasekit::autoscale {
namespace {

using resilience::Millis;
using resilience::VirtualTimers;

constexpr Millis kInterval{15000};

// ---- the mapping functions -------------------------------------------------------------------------

struct PoolRow {
  std::int64_t desired;
  std::uint64_t in_use;
  std::uint64_t min;
  std::uint64_t max;
  std::uint64_t idle;
};

TEST(PoolTargetIdle, DesiredMinusInUseWithinTheOperatorsBounds) {
  const std::vector<PoolRow> rows = {
      {10, 4, 2, 100, 6},     // the plain case: 6 sessions hold no backend yet
      {10, 9, 2, 100, 2},     // 1 spare is below the floor: POOL_MIN_SIZE
      {10, 10, 2, 100, 2},    // none spare
      {10, 15, 2, 100, 2},    // more in use than recommended (maxReplicas hit): never negative
      {10, 15, 0, 100, 0},    // ... and with no floor, zero
      {0, 0, 0, 100, 0},      // nothing recommended, nothing in use
      {0, 0, 3, 100, 3},      // the floor alone
      {-5, 0, 1, 100, 1},     // a negative recommendation counts as 0
      {500, 0, 2, 50, 50},    // capped at POOL_MAX_SIZE
      {500, 100, 2, 50, 50},  // capped even when in use exceeds the cap
      {50, 0, 2, 50, 50},     // exactly the max
      {10, 0, 80, 50, 50},    // a floor above the max: the max wins
      {INT64_MAX, 0, 0, UINT64_MAX, static_cast<std::uint64_t>(INT64_MAX)},
  };
  for (const PoolRow& r : rows) {
    EXPECT_EQ(pool_target_idle(r.desired, r.in_use, r.min, r.max), r.idle)
        << "desired=" << r.desired << " in_use=" << r.in_use << " min=" << r.min << " max=" << r.max;
  }
}

struct WorkerRow {
  std::int64_t desired;
  std::uint64_t floor;
  std::uint64_t max;
  unsigned concurrency;
};

TEST(WorkerConcurrencyFor, DesiredWithinFloorAndMax) {
  const std::vector<WorkerRow> rows = {
      {12, 4, 20, 12},  // the plain case
      {3, 4, 20, 4},    // below WORKER_CONCURRENCY: the floor
      {0, 4, 20, 4},    // zero
      {0, 0, 20, 1},    // never below 1, whatever the floor
      {-7, 1, 20, 1},   // negative counts as 0
      {20, 4, 20, 20},  // exactly the max
      {21, 4, 20, 20},  // above: the max
      {5, 30, 20, 20},  // a floor above the max: the max caps it
      {5, 4, 0, 1},     // a max of 0 still allows one job
      {INT64_MAX, 1, 10000, 10000},
  };
  for (const WorkerRow& r : rows) {
    EXPECT_EQ(worker_concurrency_for(r.desired, r.floor, r.max), r.concurrency)
        << "desired=" << r.desired << " floor=" << r.floor << " max=" << r.max;
  }
}

// ---- fakes -----------------------------------------------------------------------------------------

/// Keeps every line as "msg key=value ...".
class RecordingLogger final : public Logger {
 public:
  [[nodiscard]] bool enabled(LogLevel) const noexcept override { return true; }
  void write(LogLevel, std::string_view msg, std::span<const LogField> fields) noexcept override {
    std::string line(msg);
    for (const LogField& f : fields) {
      line += " " + std::string(f.key()) + "=";
      switch (f.type()) {
        case LogField::Type::integer: line += std::to_string(f.integer()); break;
        case LogField::Type::unsigned_integer: line += std::to_string(f.unsigned_integer()); break;
        case LogField::Type::real: line += std::to_string(f.real()); break;
        case LogField::Type::boolean: line += f.boolean() ? "true" : "false"; break;
        case LogField::Type::text:
        case LogField::Type::secret: line += std::string(f.text()); break;
      }
    }
    lines.push_back(std::move(line));
  }
  std::vector<std::string> lines;
};

/// A warm pool that fills at once: `in_use` backends leased, min_size idle; records resize().
class FakePool final : public plugin::PoolStrategy {
 public:
  FakePool(std::uint64_t min_size, std::uint64_t max_size) : min_size_(min_size), max_size_(max_size) {}
  void acquire(plugin::AcquireRequest, AcquireHandler) noexcept override {}
  void release(plugin::BackendPtr, bool) noexcept override {}
  [[nodiscard]] plugin::PoolStats stats() const noexcept override {
    plugin::PoolStats s;
    s.active = in_use;
    s.idle = min_size_;
    s.total = s.active + s.idle;
    s.min_size = min_size_;
    s.max_size = max_size_;
    return s;
  }
  void resize(std::uint64_t min_size) noexcept override {
    resizes.push_back(min_size);
    min_size_ = std::min(min_size, max_size_);
  }
  void async_shutdown(std::function<void()> done) noexcept override { done(); }

  std::uint64_t in_use = 0;
  std::vector<std::uint64_t> resizes;

 private:
  std::uint64_t min_size_;
  std::uint64_t max_size_;
};

/// A queue whose depth and jobs in flight the test sets; records set_concurrency().
class FakeQueue final : public plugin::QueueStrategy {
 public:
  [[nodiscard]] bool remote() const noexcept override { return false; }
  void enqueue(plugin::Job, std::function<void(Status)>) noexcept override {}
  void consume(unsigned, JobHandler) noexcept override {}
  void set_concurrency(unsigned concurrency) noexcept override { concurrencies.push_back(concurrency); }
  void subscribe(std::string, EventSink) noexcept override {}
  void unsubscribe(std::string_view) noexcept override {}
  [[nodiscard]] plugin::QueueStats stats() const noexcept override {
    plugin::QueueStats s;
    s.in_flight = in_flight;
    s.depth = depth;
    return s;
  }
  void async_shutdown(std::function<void()> done) noexcept override { done(); }

  std::uint64_t in_flight = 0;
  std::uint64_t depth = 0;
  std::vector<unsigned> concurrencies;
};

/// The hpa algorithm as the plugin's factory builds it from {"spec":…, "tolerance":…}.
hpa::HpaAutoscaler hpa_from(const std::string& plugin_json) {
  const auto doc = nlohmann::json::parse(plugin_json);
  return hpa::HpaAutoscaler(hpa::parse_spec(doc.at("spec"), doc.at("tolerance").get<double>()));
}

bool has_line(const std::vector<std::string>& lines, const std::string& wanted) {
  return std::find(lines.begin(), lines.end(), wanted) != lines.end();
}

// ---- orchestrator: the warm pool -------------------------------------------------------------------

using Env = std::map<std::string, std::string, std::less<>>;

config::Config orchestrator_config(const Env& extra = {}) {
  Env env{{"ENABLE_AUTOSCALER", "true"},
          {"ENABLE_CONTAINER_POOL", "true"},
          {"POOL_MIN_SIZE", "2"},
          {"POOL_MAX_SIZE", "50"},
          {"AUTOSCALER_MIN_REPLICAS", "1"},
          {"AUTOSCALER_MAX_REPLICAS", "100"},
          {"AUTOSCALER_TARGET_SESSIONS_PER_REPLICA", "1"}};
  env.insert(extra.begin(), extra.end());
  return config::Config::load({env, {}});
}

/// The orchestrator's wiring (core/apps/orchestrator_main.cpp) on virtual time.
struct PoolRig {
  explicit PoolRig(const Env& extra = {}) : config(orchestrator_config(extra)) { start(); }

  config::Config config;
  hpa::HpaAutoscaler hpa = hpa_from(plugin_host::plugin_config_json("autoscaler", config));
  VirtualTimers timers;
  observe::MetricsRegistry metrics;
  RecordingLogger log;
  FakePool pool{2, 50};
  std::int64_t sessions = 0;
  PoolSizer sizer{pool, config, metrics, log};
  AutoscaleLoop loop{hpa, timers, metrics,
                     [this] {
                       return Observation{sessions, 0, static_cast<std::int64_t>(pool.stats().total)};
                     },
                     kInterval, static_cast<std::int32_t>(config.integer(config::Key::autoscaler_min_replicas))};

  void start() {
    loop.on_evaluation([this](const plugin::ScaleDecision& d) { sizer.apply(d.desired_replicas); });
    loop.start();
  }
  ~PoolRig() { loop.stop(); }
  /// Moves to the next evaluation, `sessions` open and `in_use` of them holding a backend.
  void tick(std::int64_t open, std::uint64_t in_use) {
    sessions = open;
    pool.in_use = in_use;
    timers.advance(kInterval);
  }
};

TEST(PoolSizer, FollowsArrivalsAtOnceAndShrinksOnlyAfterTheStabilizationWindow) {
  PoolRig rig;
  EXPECT_NE(rig.metrics.render().find("phasekit_pool_target_idle 2"), std::string::npos);

  // t=15 s: no session. Desired stays 1 (minReplicas); 1 - 0 = 1 is below POOL_MIN_SIZE: 2, as configured.
  rig.tick(0, 0);
  EXPECT_EQ(rig.loop.desired(), 1);
  EXPECT_TRUE(rig.pool.resizes.empty());

  // No AUTOSCALER_BEHAVIOR: the spec has no behavior, so Kubernetes' legacy normalisation applies — at
  // most max(2 × current, 4) up per evaluation, down only through the 300 s window (cutoff included).
  //
  // t=30 s: 5 sessions connected, none has run a tool yet (no backend). External metric 5 per
  // AverageValue 1 → 5; the legacy limit from 1 is max(2, 4) = 4. Idle 4 - 0 = 4, at once.
  rig.tick(5, 0);
  EXPECT_EQ(rig.loop.desired(), 4);
  EXPECT_EQ(rig.pool.resizes, (std::vector<std::uint64_t>{4}));
  EXPECT_TRUE(has_line(rig.log.lines,
                       "autoscaler.applied knob=pool_target_idle from=2 to=4 desired_replicas=4 backends_in_use=0"));

  // t=45 s: those 5 hold backends (one made cold), 3 more connected: 8 sessions over 5 + 4 = 9 backends
  // is 0.89, outside the tolerance → 8, within the limit max(2 × 4, 4) = 8; 8 - 5 in use = 3 idle.
  rig.tick(8, 5);
  EXPECT_EQ(rig.loop.desired(), 8);
  EXPECT_EQ(rig.pool.resizes, (std::vector<std::uint64_t>{4, 3}));

  // t=60 s: all 8 hold one: 8 - 8 = 0 → the floor.
  rig.tick(8, 8);
  EXPECT_EQ(rig.loop.desired(), 8);
  EXPECT_EQ(rig.pool.resizes, (std::vector<std::uint64_t>{4, 3, 2}));

  // t=75 s: 6 sessions end. The metric asks for 2, but the 300 s scale-down window keeps the
  // highest recent recommendation, 8: the 6 backends given back stay warm (8 - 2 = 6 idle).
  rig.tick(2, 2);
  EXPECT_EQ(rig.loop.desired(), 8);
  EXPECT_EQ(rig.pool.resizes, (std::vector<std::uint64_t>{4, 3, 2, 6}));

  // t=90 s … 360 s: nothing shrinks while a recommendation of 8 (the last at t=60 s) is in the window;
  // at t=360 s it is exactly at the cutoff, which the legacy window still counts.
  for (int t = 90; t <= 360; t += 15) {
    rig.tick(2, 2);
    ASSERT_EQ(rig.loop.desired(), 8) << "t=" << t;
  }
  EXPECT_EQ(rig.pool.resizes.size(), 4u);
  EXPECT_NE(rig.metrics.render().find("phasekit_pool_target_idle 6"), std::string::npos);

  // t=375 s: t=60 s has left the window; down to 2 in one step (no scale-down limit), idle back to the floor.
  rig.tick(2, 2);
  EXPECT_EQ(rig.loop.desired(), 2);
  EXPECT_EQ(rig.pool.resizes, (std::vector<std::uint64_t>{4, 3, 2, 6, 2}));
  EXPECT_TRUE(has_line(rig.log.lines,
                       "autoscaler.applied knob=pool_target_idle from=6 to=2 desired_replicas=2 backends_in_use=2"));
  EXPECT_NE(rig.metrics.render().find("phasekit_pool_target_idle 2"), std::string::npos);
  EXPECT_NE(rig.metrics.render().find("phasekit_autoscaler_desired_replicas 2"), std::string::npos);
}

TEST(PoolSizer, ABurstBeyondTheScaleUpLimitIsWarmedInDoublingSteps_AndCappedAtPoolMaxSize) {
  PoolRig rig;
  rig.tick(0, 0);  // t=15 s: desired 1
  // 80 sessions arrive, none holding a backend yet: 1 → 4 (max(2 × 1, 4)) → 8 → 16 → 32 → 64 → 80.
  std::vector<std::int32_t> desired;
  for (int i = 0; i < 6; ++i) {
    rig.tick(80, 0);
    desired.push_back(rig.loop.desired());
  }
  EXPECT_EQ(desired, (std::vector<std::int32_t>{4, 8, 16, 32, 64, 80}));
  // Idle = desired - 0, capped at POOL_MAX_SIZE=50 (64 is asked, 50 applied; 80 changes nothing).
  EXPECT_EQ(rig.pool.resizes, (std::vector<std::uint64_t>{4, 8, 16, 32, 50}));
}

// AUTOSCALER_BEHAVIOR becomes the spec's behavior: with a Pods 1000 per 15 s scale-up policy the same
// burst of 80 is warmed at the first evaluation — 80 is within 1 + 1000, the idle target 80 - 0 capped
// at POOL_MAX_SIZE — where the legacy path needed five evaluations (ABurstBeyondTheScaleUpLimit…).
TEST(PoolSizer, AutoscalerBehaviorIsTheSpecsBehavior_ABurstIsWarmedAtOnce) {
  const std::string fast = R"({"scaleUp":{"policies":[{"type":"Pods","value":1000,"periodSeconds":15}]}})";
  PoolRig rig({{"AUTOSCALER_BEHAVIOR", fast}});
  EXPECT_EQ(plugin_host::plugin_config_json("autoscaler", rig.config),
            R"({"spec":{"minReplicas":1,"maxReplicas":100,"metrics":[{"type":"External","external":{"metric":)"
            R"({"name":"phasekit_sessions"},"target":{"type":"AverageValue","averageValue":"1"}}}],)"
            R"("behavior":{"scaleUp":{"policies":[{"periodSeconds":15,"type":"Pods","value":1000}]}}},"tolerance":0.1})");
  rig.tick(0, 0);  // t=15 s: desired 1
  rig.tick(80, 0);
  EXPECT_EQ(rig.loop.desired(), 80);
  EXPECT_EQ(rig.pool.resizes, (std::vector<std::uint64_t>{50}));
  // Unset, the spec carries no behavior at all (Kubernetes' legacy path), not an empty one.
  EXPECT_EQ(nlohmann::json::parse(plugin_host::plugin_config_json("autoscaler", orchestrator_config()))["spec"]
                .count("behavior"),
            0u);
}

// ---- worker: the queue's concurrency ---------------------------------------------------------------

config::Config worker_config() {
  return config::Config::load({{{"ENABLE_AUTOSCALER", "true"},
                                {"WORKER_CONCURRENCY", "4"},
                                {"AUTOSCALER_MAX_WORKER_CONCURRENCY", "20"}},
                               {}});
}

TEST(WorkerAutoscalerConfig, ExternalMetricOfJobsPerSlotBetweenWorkerConcurrencyAndTheMax) {
  EXPECT_EQ(worker_autoscaler_config_json(worker_config()),
            R"({"spec":{"minReplicas":4,"maxReplicas":20,"metrics":[{"type":"External","external":{"metric":)"
            R"({"name":"phasekit_jobs"},"target":{"type":"AverageValue","averageValue":"1"}}}]},"tolerance":0.1})");
  // A WORKER_CONCURRENCY above the max is capped, so the spec stays valid.
  const auto capped = config::Config::load(
      {{{"ENABLE_AUTOSCALER", "true"}, {"WORKER_CONCURRENCY", "50"}, {"AUTOSCALER_MAX_WORKER_CONCURRENCY", "20"}}, {}});
  const auto doc = nlohmann::json::parse(worker_autoscaler_config_json(capped));
  EXPECT_EQ(doc["spec"]["minReplicas"], 20);
  EXPECT_NO_THROW(hpa_from(worker_autoscaler_config_json(capped)));
}

// AUTOSCALER_WORKER_BEHAVIOR is the worker spec's behavior; AUTOSCALER_BEHAVIOR (the orchestrator's) is not.
TEST(WorkerAutoscalerConfig, WorkerBehaviorIsItsOwnSetting) {
  const auto only_orchestrators = config::Config::load(
      {{{"ENABLE_AUTOSCALER", "true"}, {"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{"selectPolicy":"Disabled"}})"}}, {}});
  EXPECT_EQ(nlohmann::json::parse(worker_autoscaler_config_json(only_orchestrators))["spec"].count("behavior"), 0u);
  const auto worker = config::Config::load(
      {{{"ENABLE_AUTOSCALER", "true"}, {"AUTOSCALER_WORKER_BEHAVIOR", R"({"scaleDown":{"stabilizationWindowSeconds":60}})"}},
       {}});
  const auto doc = nlohmann::json::parse(worker_autoscaler_config_json(worker));
  EXPECT_EQ(doc["spec"]["behavior"], nlohmann::json::parse(R"({"scaleDown":{"stabilizationWindowSeconds":60}})"));
  EXPECT_EQ(hpa_from(worker_autoscaler_config_json(worker)).spec().behavior->scale_down.stabilization_window_seconds,
            60);
}

TEST(WorkerAutoscaler, OpensSlotsForQueuedJobsAtOnceAndClosesThemAfterTheWindow) {
  const config::Config config = worker_config();
  hpa::HpaAutoscaler hpa = hpa_from(worker_autoscaler_config_json(config));
  VirtualTimers timers;
  observe::MetricsRegistry metrics;
  RecordingLogger log;
  FakeQueue queue;
  WorkerAutoscaler scaler(config, hpa, queue, timers, metrics, log);
  scaler.start();
  const auto tick = [&](std::uint64_t in_flight, std::uint64_t queued) {
    queue.in_flight = in_flight;
    queue.depth = queued;
    timers.advance(kInterval);
  };
  EXPECT_NE(metrics.render().find("phasekit_worker_concurrency 4"), std::string::npos);

  // t=15 s: 2 running, none queued → the metric asks 2; minReplicas (WORKER_CONCURRENCY) keeps 4.
  tick(2, 0);
  EXPECT_EQ(scaler.desired(), 4);
  EXPECT_TRUE(queue.concurrencies.empty());

  // t=30 s: 4 running, 6 queued → 10 jobs per 1 → 10; the legacy limit allows max(2 × 4, 4) = 8.
  tick(4, 6);
  EXPECT_EQ(queue.concurrencies, (std::vector<unsigned>{8}));
  EXPECT_TRUE(has_line(log.lines, "autoscaler.applied knob=worker_concurrency from=4 to=8 desired_replicas=8"));

  // t=45 s: 8 running, 2 queued → 10 (the limit would allow 16).
  tick(8, 2);
  EXPECT_EQ(queue.concurrencies, (std::vector<unsigned>{8, 10}));

  // t=60 s: 10 running, queue empty: 10 of 10 slots, within tolerance.
  tick(10, 0);
  // t=75 s … 360 s: the queue drained, 1 job running. The scale-down window still holds 10 (the last at
  // t=60 s, exactly at the cutoff at t=360 s: still in the legacy window).
  for (int t = 75; t <= 360; t += 15) {
    tick(1, 0);
    ASSERT_EQ(scaler.desired(), 10) << "t=" << t;
  }
  EXPECT_EQ(queue.concurrencies, (std::vector<unsigned>{8, 10}));

  // t=375 s: the last 10 has left the window: the metric's 1 is raised to minReplicas, 4.
  tick(1, 0);
  EXPECT_EQ(queue.concurrencies, (std::vector<unsigned>{8, 10, 4}));

  // A backlog of 100: 4 → 8 → 16 → 20 (AUTOSCALER_MAX_WORKER_CONCURRENCY), never more.
  for (int i = 0; i < 4; ++i) {
    tick(scaler.concurrency(), 100);
  }
  EXPECT_EQ(queue.concurrencies, (std::vector<unsigned>{8, 10, 4, 8, 16, 20}));
  EXPECT_EQ(scaler.concurrency(), 20u);
  EXPECT_NE(metrics.render().find("phasekit_worker_concurrency 20"), std::string::npos);
  EXPECT_NE(metrics.render().find("phasekit_autoscaler_desired_replicas 20"), std::string::npos);

  scaler.stop();
  tick(0, 1000);
  EXPECT_EQ(queue.concurrencies.size(), 6u);  // stopped: no evaluation
}

TEST(WorkerAutoscaler, LoadsItsOwnInstanceOfThePluginWithTheWorkerSpec) {
  observe::LogSink logs{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics;
  plugin_host::SystemClock clock;
  boost::asio::io_context ioc;
  plugin_host::BasicHost host{logs, metrics, clock, ioc.get_executor()};
  const auto config = config::Config::load({{{"ENABLE_AUTOSCALER", "true"},
                                             {"PHASEKIT_PLUGIN_PATH", PHASEKIT_PLUGIN_DIR},
                                             {"WORKER_CONCURRENCY", "4"},
                                             {"AUTOSCALER_MAX_WORKER_CONCURRENCY", "20"}},
                                            {}});
  VirtualTimers timers;
  RecordingLogger log;
  FakeQueue queue;
  WorkerAutoscaler scaler(config, host, queue, timers, metrics, log);  // the .so from the build tree
  scaler.start();
  queue.in_flight = 4;
  queue.depth = 6;
  timers.advance(kInterval);
  EXPECT_EQ(queue.concurrencies, (std::vector<unsigned>{8}));

  const auto missing = config::Config::load(
      {{{"AUTOSCALER_PLUGIN", "nonesuch"}, {"PHASEKIT_PLUGIN_PATH", PHASEKIT_PLUGIN_DIR}}, {}});
  EXPECT_THROW(WorkerAutoscaler(missing, host, queue, timers, metrics, log), plugin_host::LoadError);
}

}  // namespace
}  // namespace phasekit::autoscale
