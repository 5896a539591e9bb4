// The runner against a driver of the test's own: what virtual users count and how their errors are
// named, without a network (the runner links no Beast; client/ is tested against real servers in
// tests/interop/harness.test.js).
#include "runner/run.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace phasekit::load {
namespace {

namespace asio = boost::asio;
using nlohmann::json;

/// How every connection of a FakeDriver behaves.
struct Script {
  std::optional<ConnError> connect_error;
  json ack = json::array({{{"ok", true}}});
  json response = {{"callId", "c-1"}};
  bool dies_while_idle = false;  // the server closes the connection while its user thinks
};

class FakeConnection final : public Connection {
 public:
  FakeConnection(const asio::any_io_executor& executor, const Script& script)
      : executor_(executor), script_(script), timer_(executor) {}

  asio::awaitable<ConnResult<void>> connect(TimePoint) override {
    if (script_.connect_error) {
      co_return *script_.connect_error;
    }
    co_return ConnResult<void>{};
  }
  asio::awaitable<ConnResult<void>> join(std::string, std::optional<json>, TimePoint) override {
    co_return ConnResult<void>{};
  }
  asio::awaitable<ConnResult<Reply>> emit(Emit request, TimePoint) override {
    Reply reply;
    if (request.ack) {
      reply.ack = script_.ack;
    }
    if (request.response) {
      reply.response = script_.response;
    }
    co_return reply;
  }
  // As the real connection: returns at until, or as soon as the connection ends.
  asio::awaitable<void> idle(TimePoint until) override {
    if (script_.dies_while_idle) {
      ended_ = ConnError{ConnErrc::server_closed, "closed by the server"};
      co_return;
    }
    if (ended_) {
      co_return;
    }
    timer_.expires_at(until);
    co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  asio::awaitable<void> close() override {
    if (!ended_) {
      ended_ = ConnError{ConnErrc::closed, ""};
    }
    co_return;
  }
  void abort(std::string detail) override {
    ended_ = ConnError{ConnErrc::aborted, std::move(detail)};
    timer_.cancel();
  }
  [[nodiscard]] const std::optional<ConnError>& ended() const override { return ended_; }

 private:
  asio::any_io_executor executor_;
  const Script& script_;
  asio::steady_timer timer_;
  std::optional<ConnError> ended_;
};

class FakeDriver final : public Driver {
 public:
  explicit FakeDriver(const Script& script) : script_(script) {}
  ConnectionPtr new_connection(const asio::any_io_executor& executor, MetricSink&, ConnectOptions) override {
    return std::make_shared<FakeConnection>(executor, script_);
  }

 private:
  const Script& script_;
};

Scenario scenario(const std::string& flow) {
  const std::string text = R"(
config:
  target: "http://127.0.0.1:9/chat"
  phases:
    - { duration: 0.2, arrivalCount: 4 }
  socketio: { transports: ["websocket"], path: "/sio/" }
  timeout: 3
scenarios:
  - engine: socketio
    flow:
)" + flow;
  return parse_scenario(parse_document(text, false, "runner_test.yml"), "runner_test.yml");
}

RunOptions quick() {
  RunOptions o;
  o.threads = 2;
  o.progress_s = 0.1;
  o.quiet = true;
  o.seed = 1;
  o.connect_timeout_s = 2;
  return o;
}

Report run(const Scenario& s, const Script& script, ClientOptions* seen = nullptr, RunOptions options = quick()) {
  return run_scenario(s, options, [&](const ClientOptions& c) {
    if (seen != nullptr) {
      *seen = c;
    }
    return std::make_unique<FakeDriver>(script);
  }, nullptr);
}

constexpr const char* kAskFlow = R"(      - emit: { channel: "ask", data: "q" }
        acknowledge: { match: { json: "$.0.ok", value: true } }
        response: { channel: "answer", capture: { json: "$.callId", as: "callId" } }
      - think: 0.01
      - emit: ["note", "{{ callId }}"]
)";

TEST(RunScenario, CountsWhatEveryUserDid) {
  const Script script;
  ClientOptions seen;
  const Report r = run(scenario(kAskFlow), script, &seen);
  EXPECT_EQ(r.total.counter(kVusersCreated), 4u);
  EXPECT_EQ(r.total.counter(kVusersCompleted), 4u);
  EXPECT_EQ(r.total.counter(kVusersFailed), 0u);
  EXPECT_EQ(r.total.counter(kFlowsCompleted), 4u);
  EXPECT_EQ(r.total.counter(kEmits), 8u);
  EXPECT_EQ(r.total.counter(kAcks), 4u);
  EXPECT_EQ(r.total.counter(kResponses), 4u);
  ASSERT_NE(r.total.histogram(kResponseTime), nullptr);
  EXPECT_EQ(r.total.histogram(kResponseTime)->count(), 4u);
  EXPECT_EQ(seen.target.host, "127.0.0.1");
  EXPECT_EQ(seen.target.ns, "/chat");
  EXPECT_EQ(seen.path, "/sio/");
  EXPECT_FALSE(seen.polling);
  EXPECT_EQ(seen.request_timeout_s, 3);
  EXPECT_EQ(seen.connect_timeout_s, 2);
}

TEST(RunScenario, ConnectionErrorIsCountedByName) {
  Script script;
  script.connect_error = ConnError{ConnErrc::connect_refused, "refused"};
  const Report r = run(scenario(kAskFlow), script);
  EXPECT_EQ(r.total.counter(kVusersFailed), 4u);
  EXPECT_EQ(r.total.counter("errors.connect_refused"), 4u);
  EXPECT_EQ(r.total.counter(kArrivalsDropped), 0u);
  EXPECT_EQ(r.total.counter(kEmits), 0u);
}

TEST(RunScenario, SocketsExhaustedCountsTheArrivalAsDropped) {
  Script script;
  script.connect_error = ConnError{ConnErrc::sockets_exhausted, "limit"};
  const Report r = run(scenario(kAskFlow), script);
  EXPECT_EQ(r.total.counter("errors.sockets_exhausted"), 4u);
  EXPECT_EQ(r.total.counter(kArrivalsDropped), 4u);
}

TEST(RunScenario, FlowErrorIsCountedByName) {
  Script script;
  script.ack = json::array({{{"ok", false}}});
  const Report r = run(scenario(kAskFlow), script);
  EXPECT_EQ(r.total.counter("errors.match_failed"), 4u);
  EXPECT_EQ(r.total.counter(kEmits), 4u) << "the note is never sent";
}

// docs/load.md: users still running when the drain period ends are counted as aborted. A user whose
// connection ends while it thinks on the last step of its flow has not finished it either.
TEST(RunScenario, ConnectionThatDiesWhileTheLastStepThinksFailsTheUser) {
  Script script;
  script.dies_while_idle = true;
  const Report r = run(scenario("      - emit: [\"hello\"]\n      - think: 0.05\n"), script);
  EXPECT_EQ(r.total.counter(kVusersCompleted), 0u);
  EXPECT_EQ(r.total.counter(kVusersFailed), 4u);
  EXPECT_EQ(r.total.counter("errors.server_closed"), 4u);
}

TEST(RunScenario, UserThinkingWhenTheDrainEndsIsCountedAsAborted) {
  const Script script;
  RunOptions o = quick();
  o.drain_s = 0.2;
  const auto started = SteadyClock::now();
  const Report r = run(scenario("      - emit: [\"hello\"]\n      - think: 30\n"), script, nullptr, o);
  EXPECT_LT(SteadyClock::now() - started, std::chrono::seconds(10)) << "the users stopped thinking when aborted";
  EXPECT_EQ(r.total.counter(kVusersCompleted), 0u);
  EXPECT_EQ(r.total.counter(kVusersFailed), 4u);
  EXPECT_EQ(r.total.counter("errors.aborted"), 4u);
}

TEST(RunScenario, DriverThatRefusesTheTargetStopsTheRunBeforeItStarts) {
  const Scenario s = scenario(kAskFlow);
  EXPECT_THROW(run_scenario(s, quick(), [](const ClientOptions&) -> DriverPtr {
    throw std::runtime_error("target is not a loopback address");
  }, nullptr), std::runtime_error);
}

}  // namespace
}  // namespace phasekit::load
