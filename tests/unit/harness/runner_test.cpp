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
};

class FakeConnection final : public Connection {
 public:
  FakeConnection(const asio::any_io_executor& executor, const Script& script) : executor_(executor), script_(script) {}

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
  const Script& script_;
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

Report run(const Scenario& s, const Script& script, ClientOptions* seen = nullptr) {
  return run_scenario(s, quick(), [&](const ClientOptions& c) {
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

TEST(RunScenario, TheFirstDetailOfEachErrorGoesInTheReportAndTheSummary) {
  Script script;
  script.connect_error = ConnError{ConnErrc::handshake_failed, "POST: HTTP 400: Session ID unknown"};
  const Report r = run(scenario(kAskFlow), script);
  EXPECT_EQ(r.total.counter("errors.handshake_failed"), 4u);
  ASSERT_TRUE(r.meta.contains("errorDetails"));
  EXPECT_EQ(r.meta["errorDetails"], (json{{"handshake_failed", "POST: HTTP 400: Session ID unknown"}}));
  EXPECT_NE(render_summary(r).find("    handshake_failed: POST: HTTP 400: Session ID unknown\n"), std::string::npos)
      << render_summary(r);
  EXPECT_FALSE(run(scenario(kAskFlow), Script{}).meta.contains("errorDetails")) << "no error, no details";
}

TEST(RunScenario, TlsAndCookieOptionsFromTheScenarioAndTheCommandLine) {
  std::string text = R"(
config:
  target: "wss://localhost:8443"
  phases: [{ duration: 0.1, arrivalCount: 1 }]
  tls: { rejectUnauthorized: false }
scenarios:
  - engine: socketio
    flow: [{ think: 0.01 }]
)";
  const Scenario s = parse_scenario(parse_document(text, false, "tls.yml"), "tls.yml");
  const Script script;
  const auto seen_with = [&](const RunOptions& o) {
    ClientOptions seen;
    run_scenario(s, o, [&](const ClientOptions& c) {
      seen = c;
      return std::make_unique<FakeDriver>(script);
    }, nullptr);
    return seen;
  };
  const ClientOptions from_scenario = seen_with(quick());
  EXPECT_TRUE(from_scenario.target.tls);
  EXPECT_EQ(from_scenario.target.port, "8443");
  EXPECT_TRUE(from_scenario.insecure);
  EXPECT_TRUE(from_scenario.ca_file.empty());
  EXPECT_TRUE(from_scenario.cookies);
  RunOptions o = quick();
  o.ca_file = "/etc/phasekit/ca.pem";
  o.cookies = false;
  const ClientOptions from_command_line = seen_with(o);
  EXPECT_EQ(from_command_line.ca_file, "/etc/phasekit/ca.pem");
  EXPECT_FALSE(from_command_line.insecure) << "--ca verifies, whatever the scenario's rejectUnauthorized";
  EXPECT_FALSE(from_command_line.cookies);
}

TEST(RunScenario, DriverThatRefusesTheTargetStopsTheRunBeforeItStarts) {
  const Scenario s = scenario(kAskFlow);
  EXPECT_THROW(run_scenario(s, quick(), [](const ClientOptions&) -> DriverPtr {
    throw std::runtime_error("target is not a loopback address");
  }, nullptr), std::runtime_error);
}

}  // namespace
}  // namespace phasekit::load
