// The runner against a driver of the test's own: what virtual users count and how their errors are
// named, without a network (the runner links no Beast; client/ is tested against real servers in
// tests/interop/harness.test.js).
#include "runner/run.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <filesystem>
#include <mutex>
#include <set>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace phasekit::load {
namespace {

namespace asio = boost::asio;
using nlohmann::json;

/// What the connections of a FakeDriver were asked, in order.
struct Seen {
  std::mutex mutex;
  std::vector<ConnectOptions> connects;
  std::vector<std::optional<json>> auths;
  std::vector<json> emits;  // [event, args…]

  std::vector<json> emitted(const std::string& event) {
    const std::lock_guard lock(mutex);
    std::vector<json> out;
    for (const json& e : emits) {
      if (e[0] == event) {
        out.push_back(e);
      }
    }
    return out;
  }
};

/// How every connection of a FakeDriver behaves.
struct Script {
  Seen* seen = nullptr;
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
  asio::awaitable<ConnResult<void>> join(std::string, std::optional<json> auth, TimePoint) override {
    if (script_.seen != nullptr) {
      const std::lock_guard lock(script_.seen->mutex);
      script_.seen->auths.push_back(std::move(auth));
    }
    co_return ConnResult<void>{};
  }
  asio::awaitable<ConnResult<Reply>> emit(Emit request, TimePoint) override {
    if (script_.seen != nullptr) {
      const std::lock_guard lock(script_.seen->mutex);
      script_.seen->emits.push_back(request.args);
    }
    Reply reply;
    if (request.ack) {
      reply.ack = script_.ack;
    }
    if (request.ack && request.response && request.ack_ends_wait && request.ack_ends_wait(script_.ack)) {
      co_return reply;  // as the real connection: an ack that says no ends the wait, without a response
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
  [[nodiscard]] std::optional<Recovery> recovery(const std::string&) const override {
    return Recovery{"pid-1", "offset-9"};
  }

 private:
  asio::any_io_executor executor_;
  const Script& script_;
  asio::steady_timer timer_;
  std::optional<ConnError> ended_;
};

class FakeDriver final : public Driver {
 public:
  explicit FakeDriver(const Script& script) : script_(script) {}
  ConnectionPtr new_connection(const asio::any_io_executor& executor, MetricSink&, ConnectOptions options) override {
    if (script_.seen != nullptr) {
      const std::lock_guard lock(script_.seen->mutex);
      script_.seen->connects.push_back(std::move(options));
    }
    return std::make_shared<FakeConnection>(executor, script_);
  }

 private:
  const Script& script_;
};

Scenario scenario(const std::string& flow, const std::string& config = "", int users = 4,
                  const std::string& after_scenarios = "") {
  const std::string text = fmt::format(R"(
config:
  target: "http://127.0.0.1:9/chat"
  phases:
    - {{ duration: {}, arrivalCount: {} }}
  socketio: {{ transports: ["websocket"], path: "/sio/" }}
  timeout: 3
{}scenarios:
  - engine: socketio
    flow:
{}{})", users * 0.05, users, config, flow, after_scenarios);
  // The payload files of these scenarios, in memory.
  const FileReader files = [](const std::string& path) -> std::string {
    if (path == "users.csv") {
      return "name,role,token\nalice,admin,\"a b&c\"\nbob,user,t2\ncarol,user,t3\n";
    }
    if (path == "rooms.csv") {
      return "lobby,1\nkitchen,2\n";
    }
    throw std::runtime_error("no such file");
  };
  return parse_scenario(parse_document(text, false, "runner_test.yml"), "runner_test.yml", nullptr, files);
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

// docs/load.md "Users that go on".
TEST(RunScenario, WithKeepGoingAUserCountsAFailedFlowAndRunsTheNextOnTheSameConnection) {
  Seen seen;
  Script script;
  script.seen = &seen;
  script.ack = json::array({{{"ok", false}}});
  RunOptions o = quick();
  o.repeat_until_s = 0.3;
  o.keep_going = true;
  const Report r = run(scenario(kAskFlow), script, nullptr, o);
  EXPECT_GT(r.total.counter(kFlowsFailed), 4u) << "each user failed once and left";
  EXPECT_EQ(r.total.counter("errors.match_failed"), r.total.counter(kFlowsFailed));
  EXPECT_EQ(r.total.counter(kVusersFailed), 4u) << "a user that saw an error counts as failed";
  EXPECT_EQ(r.total.counter(kVusersCompleted), 0u);
  EXPECT_EQ(seen.connects.size(), 4u) << "one connection per user, kept";
  // The ack said no: the step ended there, not waiting for its response.
  EXPECT_EQ(r.total.counter(kResponses), 0u);

  // Without it, Artillery's way: the first failure ends the user.
  const Report once = run(scenario(kAskFlow), script, nullptr, [] {
    RunOptions q = quick();
    q.repeat_until_s = 0.3;
    return q;
  }());
  EXPECT_EQ(once.total.counter(kFlowsFailed), 0u);
  EXPECT_EQ(once.total.counter("errors.match_failed"), 4u);
}

TEST(RunScenario, AFirstSignalLetsUsersEndTheirFlowAndASecondClosesThem) {
  const auto with_signals = [&](int signals) {
    Seen seen;
    Script script;
    script.seen = &seen;
    RunOptions o = quick();
    o.repeat_until_s = 60;  // users would repeat for a minute
    volatile int interrupted = 0;
    o.interrupted = &interrupted;
    // The signal comes once all four users have arrived (each connects as it does): a signal ends the
    // arrivals, and one sent at a fixed time could come before a late user arrived.
    const auto connected = [&] {
      const std::lock_guard lock(seen.mutex);
      return seen.connects.size();
    };
    std::thread signaller([&] {
      const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
      while (connected() < 4 && SteadyClock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      interrupted = signals;
    });
    const auto started = SteadyClock::now();
    Report r = run(scenario("      - think: 0.2\n      - emit: [\"hello\"]\n"), script, nullptr, o);
    signaller.join();
    EXPECT_LT(SteadyClock::now() - started, std::chrono::seconds(10));
    return r;
  };
  const Report graceful = with_signals(1);
  EXPECT_EQ(graceful.total.counter(kVusersCompleted), 4u) << "each ended the flow it was in";
  EXPECT_EQ(graceful.total.counter("errors.aborted"), 0u);
  EXPECT_GE(graceful.total.counter(kFlowsCompleted), 4u);
  const Report now = with_signals(2);
  EXPECT_EQ(now.total.counter("errors.aborted"), 4u);
}

// docs/load.md "Users that go on": socketio.reconnection.
TEST(RunScenario, WithReconnectionAUserWhoseConnectionBrokeConnectsAgainAndAsksForItsSession) {
  Seen seen;
  Script script;
  script.seen = &seen;
  script.dies_while_idle = true;  // every connection breaks at the flow's think
  RunOptions o = quick();
  o.repeat_until_s = 0.8;
  const std::string flow = "      - emit: [\"hello\"]\n      - think: 0.01\n";
  const Report r = run(scenario(flow, "  engines:\n    socketio: { auth: { token: \"t\" }, reconnection: true }\n", 2), script,
                       nullptr, o);
  EXPECT_GE(r.total.counter(kReconnects), 2u);
  EXPECT_EQ(r.total.counter(kVusersCreated), 2u);
  EXPECT_GT(seen.connects.size(), 2u) << "a new connection each time";
  EXPECT_EQ(r.total.counter("errors.server_closed"), r.total.counter(kFlowsFailed));
  // The first CONNECT of each user has its auth alone; a reconnection's adds the pid and offset.
  std::size_t plain = 0;
  std::size_t recovering = 0;
  for (const auto& a : seen.auths) {  // the run is over: nothing writes seen any more
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ((*a)["token"], "t");
    if (a->contains("pid")) {
      EXPECT_EQ((*a)["pid"], "pid-1");
      EXPECT_EQ((*a)["offset"], "offset-9");
      ++recovering;
    } else {
      ++plain;
    }
  }
  EXPECT_EQ(plain, 2u);
  EXPECT_GE(recovering, 2u);

  // Without reconnection the first break ends the user.
  const Report once = run(scenario(flow, "  engines:\n    socketio: { auth: { token: \"t\" } }\n", 2), script, nullptr, o);
  EXPECT_EQ(once.total.counter(kReconnects), 0u);
  EXPECT_EQ(once.total.counter("errors.server_closed"), 2u);
}

// docs/load.md "The event log": each user's packets, as JSON lines a checker can read.
TEST(EventLog, WritesEachPacketAsALineWithLongStringsCutAndBinaryAsItsSize) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            fmt::format("phasekit-event-log-{}.jsonl", ::getpid())).string();
  {
    EventLog log(path);
    log.opened(3, "sid-1");
    const std::string long_text = std::string(511, 'a') + "\xc3\xa9\xc3\xa9" + std::string(100, 'b');
    log.packet(3, "out", "event", "/", 7, json::array({"message", long_text}));
    log.packet(3, "in", "event", "/", std::nullopt,
               json::array({"file", {{"bytes", json::binary({1, 2, 3})}, {"n", 1}}}));
    log.packet(3, "in", "event", "/", std::nullopt, json::array({"bad", "\xff"}));
    log.packet(3, "out", "connect", "/", std::nullopt, {{"token", "secret-token"}, {"pid", "p-1"}, {"offset", "o-2"}});
    log.ended(3, "closed", "closed by its user");
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "others may not read what users exchanged";
  std::ifstream in(path);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(json::parse(line));
  }
  std::filesystem::remove(path);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0]["dir"], "open");
  EXPECT_EQ(lines[0]["sid"], "sid-1");
  EXPECT_EQ(lines[1]["vu"], 3);
  EXPECT_EQ(lines[1]["id"], 7);
  EXPECT_EQ(lines[1]["type"], "event");
  const std::string cut = lines[1]["data"][1].get<std::string>();
  // 512 bytes would split the first é: the cut is before it.
  EXPECT_EQ(cut, std::string(511, 'a') + "…(615 bytes)");
  EXPECT_FALSE(lines[2].contains("id"));
  EXPECT_EQ(lines[2]["data"][1]["bytes"], json({{"binary", 3}}));
  EXPECT_EQ(lines[2]["data"][1]["n"], 1);
  EXPECT_EQ(lines[3]["data"][1], "\xef\xbf\xbd") << "what is not UTF-8 is replaced, not thrown on";
  EXPECT_EQ(lines[4]["data"], json({{"token", "<redacted>"}, {"pid", "p-1"}, {"offset", "o-2"}}));
  EXPECT_EQ(lines[5]["dir"], "end");
  EXPECT_EQ(lines[5]["code"], "closed");
  EXPECT_THROW(EventLog("/nonexistent-dir/x.jsonl"), std::runtime_error);
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
  // The drain's clock runs from the last arrival's planned time (0.15 s), not from when it came, and
  // an arrival later than the drain is never made: a second leaves a loaded machine room, 0.2 s little.
  o.drain_s = 1;
  const auto started = SteadyClock::now();
  const Report r = run(scenario("      - emit: [\"hello\"]\n      - think: 30\n"), script, nullptr, o);
  EXPECT_LT(SteadyClock::now() - started, std::chrono::seconds(10)) << "the users stopped thinking when aborted";
  EXPECT_EQ(r.total.counter(kVusersCompleted), 0u);
  EXPECT_EQ(r.total.counter(kVusersFailed), 4u);
  EXPECT_EQ(r.total.counter("errors.aborted"), 4u);
}

constexpr const char* kUsersPayload = R"(  payload:
    path: "users.csv"
    fields: [name, role, token]
    skipHeader: true
    order: sequence
  engines:
    socketio:
      extraHeaders: { x-user: "{{ name }}", x-run: "r1" }
      query: { user: "{{ name }}", token: "{{ token }}" }
      auth: { token: "{{ token }}" }
)";

TEST(RunScenario, SequencePayloadGivesUserIRowIAndTemplatesTheConnection) {
  Seen seen;
  Script script;
  script.seen = &seen;
  RunOptions o = quick();
  o.threads = 1;
  const Report r = run(scenario("      - emit: [\"hello\", \"{{ name }}\"]\n", kUsersPayload, 4), script, nullptr, o);
  EXPECT_EQ(r.total.counter(kVusersCompleted), 4u);
  ASSERT_EQ(seen.connects.size(), 4u);
  std::vector<std::string> users;
  for (const ConnectOptions& c : seen.connects) {
    users.push_back(c.headers.at("x-user"));
    EXPECT_EQ(c.headers.at("x-run"), "r1");
  }
  EXPECT_EQ(users, (std::vector<std::string>{"alice", "bob", "carol", "alice"})) << "row i for user i, wrapping";
  EXPECT_EQ(seen.connects[0].query, "token=a%20b%26c&user=alice") << "each value encoded as socket.io-client does";
  ASSERT_TRUE(seen.auths[0].has_value());
  EXPECT_EQ((*seen.auths[0])["token"], "a b&c");
}

TEST(RunScenario, RandomPayloadGivesEveryUserARowAndCoversThem) {
  Seen seen;
  Script script;
  script.seen = &seen;
  std::string config = kUsersPayload;
  config.replace(config.find("order: sequence"), 15, "order: random");
  const Report r = run(scenario("      - emit: [\"hello\", \"{{ name }}\", \"{{ role }}\"]\n", config, 40), script);
  EXPECT_EQ(r.total.counter(kVusersCompleted), 40u);
  std::set<std::string> names;
  for (const json& e : seen.emitted("hello")) {
    names.insert(e[1].get<std::string>());
    EXPECT_EQ(e[2], e[1] == "alice" ? "admin" : "user") << "the fields of one row together";
  }
  EXPECT_EQ(names, (std::set<std::string>{"alice", "bob", "carol"}));
}

TEST(RunScenario, IfTrueSkipsOrRunsAStep) {
  Seen seen;
  Script script;
  script.seen = &seen;
  const Report r = run(scenario(R"yaml(      - emit: ["admin-only", "{{ name }}"]
        ifTrue: "role == \"admin\""
      - emit: ["everyone", "{{ name }}"]
      - think: 0.01
        ifTrue: "not (role == \"admin\" or role == \"user\")"
)yaml", kUsersPayload, 3), script);
  EXPECT_EQ(r.total.counter(kVusersCompleted), 3u);
  EXPECT_EQ(seen.emitted("everyone").size(), 3u);
  ASSERT_EQ(seen.emitted("admin-only").size(), 1u);
  EXPECT_EQ(seen.emitted("admin-only")[0][1], "alice");
}

TEST(RunScenario, LoopOverAListOrALoadAllVariable) {
  Seen seen;
  Script script;
  script.seen = &seen;
  const std::string config = R"(  payload: { path: "rooms.csv", fields: [room, size], loadAll: true, name: rooms }
)";
  const Report r = run(scenario(R"(      - loop:
          - emit: ["join", "{{ $loopElement.room }}", "{{ $loopCount }}"]
          - loop:
              - emit: ["inner", "{{ $loopElement }}", "{{ $loopCount }}"]
            over: ["x", "y"]
          - emit: ["after-inner", "{{ $loopElement.size }}", "{{ $loopCount }}"]
        over: rooms
      - loop:
          - emit: ["count", "{{ $loopCount }}"]
        count: 2
)", config, 1), script);
  EXPECT_EQ(r.total.counter(kVusersCompleted), 1u);
  EXPECT_EQ(seen.emitted("join"), (std::vector<json>{{"join", "lobby", 0}, {"join", "kitchen", 1}}));
  EXPECT_EQ(seen.emitted("inner").size(), 4u);
  EXPECT_EQ(seen.emitted("inner")[1], (json{"inner", "y", 1}));
  EXPECT_EQ(seen.emitted("after-inner"), (std::vector<json>{{"after-inner", 1, 0}, {"after-inner", 2, 1}}))
      << "an inner loop leaves the outer loop's $loopElement and $loopCount as they were";
  EXPECT_EQ(seen.emitted("count"), (std::vector<json>{{"count", 0}, {"count", 1}}));
}

TEST(RunScenario, InnerLoopGoesOverAMemberOfTheOuterElement) {
  Seen seen;
  Script script;
  script.seen = &seen;
  const std::string config = R"(  variables:
    teams: [[{ name: "a", members: ["x", "y"] }, { name: "b", members: ["z"] }]]
)";
  const Report r = run(scenario(R"(      - loop:
          - loop:
              - emit: ["member", "{{ $loopElement }}"]
            over: "{{ $loopElement.members }}"
          - emit: ["team", "{{ $loopElement.name }}"]
        over: teams
)", config, 1), script);
  EXPECT_EQ(r.total.counter(kVusersCompleted), 1u);
  EXPECT_EQ(seen.emits, (std::vector<json>{{"member", "x"}, {"member", "y"}, {"team", "a"}, {"member", "z"}, {"team", "b"}}));
}

TEST(RunScenario, LoopOverAValueThatIsNotAListIsATemplateError) {
  const Script script;
  const Report r = run(scenario(R"(      - loop:
          - emit: ["x"]
        over: name
)", kUsersPayload, 2), script);
  EXPECT_EQ(r.total.counter("errors.template"), 2u);
}

TEST(RunScenario, BeforeRunsOnceFirstAndItsCapturesReachEveryUserAndAfter) {
  Seen seen;
  Script script;
  script.seen = &seen;
  script.ack = json::array({{{"room", "r-42"}}});
  const std::string before = R"(before:
  engine: socketio
  flow:
    - emit: ["create-room"]
      acknowledge:
        capture: { json: "$.0.room", as: "room" }
)";
  const std::string after = R"(after:
  engine: socketio
  flow:
    - emit: ["delete-room", "{{ room }}"]
)";
  const Report r = run(scenario("      - emit: [\"join\", \"{{ room }}\"]\n", before, 4, after), script);
  EXPECT_EQ(r.total.counter(kVusersCreated), 4u) << "the hooks are not users of the run";
  EXPECT_EQ(r.total.counter(kEmits), 4u) << "nor are their emits";
  EXPECT_EQ(seen.connects.size(), 6u);
  ASSERT_EQ(seen.emits.size(), 6u);
  EXPECT_EQ(seen.emits.front(), (json{"create-room"}));
  EXPECT_EQ(seen.emits.back(), (json{"delete-room", "r-42"}));
  EXPECT_EQ(seen.emitted("join").size(), 4u);
  for (const json& e : seen.emitted("join")) {
    EXPECT_EQ(e[1], "r-42");
  }
  EXPECT_EQ(r.meta["before"]["ok"], true);
  EXPECT_EQ(r.meta["after"]["ok"], true);
  EXPECT_TRUE(all_ok(r.checks));
}

TEST(RunScenario, FailedBeforeFlowStopsTheRunWithAFailedCheck) {
  Script script;
  script.connect_error = ConnError{ConnErrc::connect_refused, "refused"};
  const Report r = run(scenario("      - emit: [\"x\"]\n", "before:\n  engine: socketio\n  flow:\n    - think: 0.01\n"), script);
  EXPECT_EQ(r.total.counter(kVusersCreated), 0u);
  ASSERT_EQ(r.checks.size(), 1u);
  EXPECT_FALSE(r.checks[0].ok);
  EXPECT_NE(r.checks[0].threshold.text.find("before flow: errors.connect_refused"), std::string::npos);
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
