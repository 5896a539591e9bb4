// The breaker where the orchestrator uses it: the BackendDriver decorator, the named registry with its
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"  // {.volume_threshold = 1}: the rest default
// /api/circuit-breakers and /metrics output, and the autoscale loop on virtual time.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "phasekit/autoscale/autoscale_loop.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/resilience/breaker_backend_driver.hpp"
#include "phasekit/resilience/breaker_registry.hpp"

namespace phasekit::resilience {
namespace {

class FakeBackend final : public plugin::Backend {
 public:
  [[nodiscard]] std::string_view id() const noexcept override { return "b1"; }
  [[nodiscard]] bool alive() const noexcept override { return true; }
};

/// Answers every call after `delay_ms` of virtual time with `status`.
class FakeDriver final : public plugin::BackendDriver {
 public:
  explicit FakeDriver(VirtualTimers& timers) : timers_(timers) {}
  [[nodiscard]] std::string_view name() const noexcept override { return "fake"; }
  void create(std::function<void(Status, plugin::BackendPtr)> done) noexcept override {
    ++creates;
    timers_.schedule(Millis(delay_ms), [this, done] {
      done(status, status.ok() ? std::make_shared<FakeBackend>() : nullptr);
    });
  }
  void reset(plugin::BackendPtr, std::function<void(Status)> done) noexcept override {
    timers_.schedule(Millis(delay_ms), [this, done] { done(status); });
  }
  void check(plugin::BackendPtr, std::function<void(Status)> done) noexcept override {
    timers_.schedule(Millis(delay_ms), [this, done] { done(status); });
  }
  void destroy(plugin::BackendPtr, std::function<void()> done) noexcept override {
    ++destroys;
    done();
  }
  Status status;
  int delay_ms = 1;
  int creates = 0;
  int destroys = 0;

 private:
  VirtualTimers& timers_;
};

TEST(BreakerBackendDriver, OpenBreakerFailsFastWithoutCallingTheDriver) {
  VirtualTimers timers;
  FakeDriver inner(timers);
  BreakerBackendDriver driver(inner, CircuitBreaker::create("backend", {.volume_threshold = 1}, timers));
  inner.status = Status(Code::internal, "spawn failed");
  std::vector<Status> results;
  driver.create([&](Status s, plugin::BackendPtr b) {
    EXPECT_EQ(b, nullptr);
    results.push_back(s);
  });
  timers.advance(Millis(1));
  driver.create([&](Status s, plugin::BackendPtr) { results.push_back(s); });
  timers.run_due();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].message(), "spawn failed");
  EXPECT_EQ(results[1].code(), Code::unavailable);
  EXPECT_EQ(inner.creates, 1);
}

TEST(BreakerBackendDriver, BackendArrivingAfterTheTimeoutIsDestroyed) {
  VirtualTimers timers;
  FakeDriver inner(timers);
  inner.delay_ms = 5000;
  BreakerBackendDriver driver(inner, CircuitBreaker::create("backend", {}, timers));  // timeout 3000
  Status result;
  driver.create([&](Status s, plugin::BackendPtr) { result = s; });
  timers.advance(Millis(3000));
  EXPECT_EQ(result.code(), Code::timeout);
  timers.advance(Millis(2000));
  EXPECT_EQ(inner.destroys, 1);
}

TEST(BreakerBackendDriver, SuccessHandsTheBackendThrough) {
  VirtualTimers timers;
  FakeDriver inner(timers);
  BreakerBackendDriver driver(inner, CircuitBreaker::create("backend", {}, timers));
  plugin::BackendPtr got;
  driver.create([&](Status s, plugin::BackendPtr b) {
    EXPECT_TRUE(s.ok());
    got = std::move(b);
  });
  Status checked(Code::internal, "not called");
  driver.check(std::make_shared<FakeBackend>(), [&](Status s) { checked = s; });
  timers.advance(Millis(1));
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->id(), "b1");
  EXPECT_TRUE(checked.ok());
}

TEST(BreakerRegistry, NamedBreakersAreSharedAndReportedInJsonAndMetrics) {
  VirtualTimers timers;
  BreakerRegistry registry(timers, {});
  auto a = registry.get("redis");
  EXPECT_EQ(registry.get("redis"), a);
  EXPECT_THROW(registry.create("redis", {}), std::invalid_argument);
  a->open();
  const auto json = nlohmann::json::parse(registry.to_json());
  EXPECT_EQ(json["redis"]["state"], "open");
  EXPECT_EQ(json["redis"]["options"]["timeout"], 3000);

  observe::MetricsRegistry metrics;
  a->call([](const CircuitBreaker::Completion& c) { c(Status()); }, nullptr);  // rejected: open
  registry.export_metrics(metrics);
  registry.export_metrics(metrics);  // counters move by what happened since, not twice
  const std::string text = metrics.render();
  EXPECT_NE(text.find(R"(phasekit_circuit_breaker_state{breaker="redis",state="open"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(phasekit_circuit_breaker_events_total{breaker="redis",event="reject"} 1)"), std::string::npos)
      << text;
}

class RecordingStrategy final : public plugin::AutoscalerStrategy {
 public:
  plugin::ScaleDecision evaluate(const plugin::ScaleInput& in) noexcept override {
    inputs.push_back(in);
    plugin::ScaleDecision d;
    d.desired_replicas = static_cast<std::int32_t>(in.external_metrics.at("phasekit_sessions").at(0) / 1000);
    d.metric_replicas = d.desired_replicas;
    return d;
  }
  std::vector<plugin::ScaleInput> inputs;
};

TEST(AutoscaleLoop, EvaluatesEveryIntervalAndExportsTheRecommendation) {
  VirtualTimers timers;
  observe::MetricsRegistry metrics;
  RecordingStrategy strategy;
  std::int64_t sessions = 3;
  autoscale::AutoscaleLoop loop(
      strategy, timers, metrics, [&] { return autoscale::Observation{sessions, 1, 2}; }, Millis(15000), 1);
  std::vector<std::int32_t> changes;
  loop.on_change([&](const plugin::ScaleDecision& d) { changes.push_back(d.desired_replicas); });
  loop.start();
  timers.advance(Millis(14999));
  EXPECT_TRUE(strategy.inputs.empty());
  timers.advance(Millis(1));
  ASSERT_EQ(strategy.inputs.size(), 1u);
  EXPECT_EQ(strategy.inputs[0].current_replicas, 1);  // the previous recommendation
  EXPECT_EQ(strategy.inputs[0].status_replicas, 2);   // backends that exist
  EXPECT_EQ(strategy.inputs[0].external_metrics.at("phasekit_jobs_in_flight").at(0), 1000);
  EXPECT_EQ(loop.desired(), 3);
  sessions = 3;
  timers.advance(Millis(15000));
  EXPECT_EQ(strategy.inputs.at(1).current_replicas, 3);
  EXPECT_EQ(changes, std::vector<std::int32_t>{3});  // no second change
  EXPECT_NE(metrics.render().find("phasekit_autoscaler_desired_replicas 3"), std::string::npos);
  loop.stop();
  timers.advance(Millis(60000));
  EXPECT_EQ(strategy.inputs.size(), 2u);
}

}  // namespace
}  // namespace phasekit::resilience
