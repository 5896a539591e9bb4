// The capacity search and the runner's outputs against a driver of the test's own (no network):
// each step's verdict and why, the result as JSON and back, its page; the run's report interval
// when none is given; the live figures a scrape would see.
#include "capacity/capacity.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <thread>

namespace phasekit::load {
namespace {

namespace asio = boost::asio;
using nlohmann::json;

/// Every emit is acked with {ok: true} after delay.
class AckingConnection final : public Connection {
 public:
  AckingConnection(const asio::any_io_executor& executor, std::chrono::milliseconds delay)
      : executor_(executor), delay_(delay) {}
  asio::awaitable<ConnResult<void>> connect(TimePoint) override { co_return ConnResult<void>{}; }
  asio::awaitable<ConnResult<void>> join(std::string, std::optional<json>, TimePoint) override {
    co_return ConnResult<void>{};
  }
  asio::awaitable<ConnResult<Reply>> emit(Emit request, TimePoint) override {
    asio::steady_timer timer(executor_, delay_);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    Reply reply;
    if (request.ack) {
      reply.ack = json::array({{{"ok", true}}});
    }
    co_return reply;
  }
  asio::awaitable<void> idle(TimePoint until) override {
    asio::steady_timer timer(executor_, until);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  asio::awaitable<void> close() override {
    ended_ = ConnError{ConnErrc::closed, ""};
    co_return;
  }
  void abort(std::string detail) override { ended_ = ConnError{ConnErrc::aborted, std::move(detail)}; }
  [[nodiscard]] const std::optional<ConnError>& ended() const override { return ended_; }

 private:
  asio::any_io_executor executor_;
  std::chrono::milliseconds delay_;
  std::optional<ConnError> ended_;
};

class AckingDriver final : public Driver {
 public:
  explicit AckingDriver(std::chrono::milliseconds delay) : delay_(delay) {}
  ConnectionPtr new_connection(const asio::any_io_executor& executor, MetricSink&, ConnectOptions) override {
    return std::make_shared<AckingConnection>(executor, delay_);
  }

 private:
  std::chrono::milliseconds delay_;
};

DriverFactory acking(std::chrono::milliseconds delay = std::chrono::milliseconds(2)) {
  return [delay](const ClientOptions&) { return std::make_unique<AckingDriver>(delay); };
}

Scenario echo_scenario(double duration_s, int rate) {
  const std::string text = fmt::format(R"(
config:
  target: "http://127.0.0.1:9"
  phases:
    - {{ duration: {}, arrivalRate: {} }}
  socketio: {{ transports: ["websocket"] }}
  timeout: 3
scenarios:
  - engine: socketio
    flow:
      - emit: {{ channel: "echo", data: "x" }}
        acknowledge: {{ match: {{ json: "$.0.ok", value: true }} }}
      - think: 0.05
)",
                                       duration_s, rate);
  return parse_scenario(parse_document(text, false, "capacity_test.yml"), "capacity_test.yml");
}

RunOptions quiet() {
  RunOptions o;
  o.threads = 2;
  o.quiet = true;
  o.seed = 1;
  o.connect_timeout_s = 2;
  return o;
}

CapacityOptions three_steps(const Scenario& s) {
  CapacityOptions c;
  // A counter limit makes the verdict of each step certain: 2 and 4 users pass, 6 fails.
  c.slo = "p95<2000ms,errors<1%,vusers.created<5";
  c.thresholds = parse_slo(c.slo, s.catalog());
  c.steps = {2, 4, 6, 8};
  c.ramp_s = 0.2;
  c.hold_s = 0.3;
  c.target_users = 5;
  c.phase = 2;
  return c;
}

TEST(Capacity, StopsAtTheFirstFailingStepAndSaysWhy) {
  const Scenario s = echo_scenario(1, 1);
  const CapacityResult r = run_capacity(s, three_steps(s), quiet(), acking(), {});
  ASSERT_EQ(r.steps.size(), 3u);
  EXPECT_TRUE(r.steps[0].pass);
  EXPECT_TRUE(r.steps[1].pass);
  EXPECT_FALSE(r.steps[2].pass);
  EXPECT_EQ(r.max_users, 4u);
  EXPECT_FALSE(r.target_met());
  EXPECT_EQ(r.steps[1].why(), "");
  EXPECT_EQ(r.steps[2].why(), "vusers.created<5: 6.00 (limit <5)");
  ASSERT_TRUE(r.steps[0].p95_ms.has_value());
  EXPECT_GT(*r.steps[0].p95_ms, 0);
  EXPECT_EQ(r.steps[0].error_rate, 0.0);
}

TEST(Capacity, ResultRoundTripsThroughJson) {
  const Scenario s = echo_scenario(1, 1);
  const CapacityResult r = run_capacity(s, three_steps(s), quiet(), acking(), {});
  const json j = r.to_json();
  EXPECT_EQ(j["schema"], kCapacitySchema);
  EXPECT_EQ(j["steps"][2]["why"], "vusers.created<5: 6.00 (limit <5)");
  EXPECT_EQ(j["phase"], 2);
  const CapacityResult back = CapacityResult::from_json(j);
  EXPECT_EQ(back.to_json(), j);
  json broken = j;
  broken["steps"][1]["latencyMs"]["p95"] = "fast";
  try {
    (void)CapacityResult::from_json(broken);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("capacity.steps[1].latencyMs.p95"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)CapacityResult::from_json(json{{"steps", json::array()}}), std::invalid_argument);
}

TEST(Capacity, PageHasTheVerdictTheSloLinesAndAPointPerStep) {
  const Scenario s = echo_scenario(1, 1);
  const CapacityResult r = run_capacity(s, three_steps(s), quiet(), acking(), {});
  const std::string page = render_capacity_html(r);
  EXPECT_NE(page.find("4 users meet p95&lt;2000ms,errors&lt;1%,vusers.created&lt;5"), std::string::npos);
  EXPECT_NE(page.find("phase 2 target 5 users: <span class=\"fail\">NOT met</span>"), std::string::npos);
  EXPECT_NE(page.find("data-chart=\"capacity-latency\" data-points=\"3\""), std::string::npos);
  EXPECT_NE(page.find("data-chart=\"capacity-errors\" data-points=\"3\""), std::string::npos);
  EXPECT_NE(page.find("SLO p95&lt;2000ms"), std::string::npos);
  EXPECT_NE(page.find("SLO errors&lt;1%"), std::string::npos);
  EXPECT_NE(page.find("class=\"rule\""), std::string::npos);
  EXPECT_NE(page.find("vusers.created&lt;5: 6.00 (limit &lt;5)"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
}

TEST(RunOutputs, WithoutAChosenIntervalAShortRunGetsOneSecondIntervals) {
  const Scenario s = echo_scenario(2.5, 4);
  RunOptions o = quiet();
  o.progress_s = 0;
  const Report r = run_scenario(s, o, acking(), nullptr);
  EXPECT_EQ(r.meta["intervalSeconds"], 1.0);
  ASSERT_GE(r.intervals.size(), 3u);
  // Each interval ends at its tick or, on a loaded machine, after it (never before), and the next
  // starts where it ended (within the 1 ms of an empty interval the report leaves out): checks that
  // hold however late a wake-up comes.
  for (std::size_t i = 0; i + 1 < r.intervals.size(); ++i) {
    EXPECT_GE(r.intervals[i].end_s, static_cast<double>(i + 1) - 1e-9) << i;
    EXPECT_NEAR(r.intervals[i + 1].start_s, r.intervals[i].end_s, 1e-3) << i;
  }
  o.progress_s = 0.5;  // a chosen interval wins
  EXPECT_EQ(run_scenario(s, o, acking(), nullptr).meta["intervalSeconds"], 0.5);
}

TEST(RunOutputs, LiveFiguresGrowDuringTheRunAndEndAtTheReportsTotals) {
  const Scenario s = echo_scenario(2.5, 8);
  RunOptions o = quiet();
  LiveMetrics live({s.file, s.target.url()});
  o.live = &live;
  std::atomic<bool> done{false};
  std::vector<std::uint64_t> seen;
  std::thread scraper([&] {
    while (!done.load()) {
      const auto snap = live.snapshot();
      if (snap->running && (seen.empty() || seen.back() != snap->total.counter(kVusersCreated))) {
        seen.push_back(snap->total.counter(kVusersCreated));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const Report r = run_scenario(s, o, acking(), nullptr);
  done = true;
  scraper.join();
  ASSERT_GE(seen.size(), 2u) << "the figures were published while the run went on";
  for (std::size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GT(seen[i], seen[i - 1]);
  }
  const auto end = live.snapshot();
  EXPECT_FALSE(end->running);
  EXPECT_EQ(end->runs_completed, 1u);
  EXPECT_EQ(end->total.counters, r.total.counters);
  EXPECT_EQ(end->total.histograms, r.total.histograms);
}

}  // namespace
}  // namespace phasekit::load
