// The whole tool-call flow without a socket: the built-in plugins, a real process backend, and a
// channel that records what the client would receive.
#include "phasekit/app/tool_service.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <map>
#include <optional>

#include "phasekit/backend/process_backend.hpp"
#include "phasekit/bytes.hpp"
#include "support/backend_fixtures.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"

namespace phasekit::app {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

/// Records what the client would receive. Every payload must be JSON text as it is (a strict dump():
/// a string that is not UTF-8 would throw, or reach the client mangled); `unencodable` counts those
/// that are not.
class RecordingChannel final : public ClientChannel {
 public:
  void emit(std::string event, json payload) override {
    try {
      (void)payload.dump();
    } catch (const json::exception&) {
      ++unencodable;
    }
    events.emplace_back(std::move(event), std::move(payload));
  }
  void emit_recoverable(std::string event, json payload, std::string offset) override {
    offsets.emplace_back(event, std::move(offset));
    emit(std::move(event), std::move(payload));
  }
  void close(std::string reason) override { closed = reason; }
  [[nodiscard]] std::vector<json> named(const std::string& name) const {
    std::vector<json> out;
    for (const auto& [e, p] : events) {
      if (e == name) {
        out.push_back(p);
      }
    }
    return out;
  }
  std::vector<std::pair<std::string, json>> events;
  std::vector<std::pair<std::string, std::string>> offsets;  // event, offset: what a client keeps the last of
  std::string closed;
  int unencodable = 0;
};

class ToolServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (std::filesystem::temp_directory_path() / ("phasekit-service-" + std::to_string(::getpid()))).string();
    backend::ProcessOptions options;
    options.workspace_root = root_;
    options.sandbox = backend::SandboxKind::namespaces;
    options.limits = test::test_limits();
    if (::geteuid() == 0) {
      options.run_as_uid = options.run_as_gid = 65534;
    }
    driver_ = std::make_unique<backend::ProcessDriver>(ioc_.get_executor(), options, logs_.logger("test"));
    host_ = std::make_unique<plugin_host::BasicHost>(logs_, metrics_, clock_, ioc_.get_executor(), driver_.get());
    const auto config = config::Config::load(config_inputs());
    plugins_ = plugin_host::load_plugins(config, *host_, plugin_host::Loader({}));
    adjust(plugins_);
    ServiceSettings settings = make_settings();
    settings.backend_uid = options.run_as_uid;
    settings.backend_gid = options.run_as_gid;
    service_ = std::make_shared<ToolService>(settings, plugins_, *host_);
    service_->start();
  }

  void TearDown() override {
    bool down = false;
    service_->shutdown([&] { down = true; });
    EXPECT_TRUE(run_until([&] { return down; }));
    service_.reset();
    std::filesystem::remove_all(root_);
  }

  virtual config::Inputs config_inputs() { return {}; }
  /// A subclass may swap a plugin for one of its own before the service starts.
  virtual void adjust(plugin_host::PluginSet&) {}

  virtual ServiceSettings make_settings() {
    ServiceSettings settings;
    settings.stream_threshold_bytes = 100;
    settings.session_grace = 0ms;
    return settings;
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds deadline = 20s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred() && std::chrono::steady_clock::now() < until) {
      if (ioc_.stopped()) {
        ioc_.restart();
      }
      ioc_.run_one_for(20ms);
    }
    return pred();
  }

  struct Client {
    std::shared_ptr<RecordingChannel> channel = std::make_shared<RecordingChannel>();
    SessionPtr session;
  };

  Client connect(const std::string& user) {
    Client c;
    c.session = service_->open_session(user, c.channel);
    return c;
  }

  /// The client goes away; with no grace period its session ends at once.
  void disconnect(const Client& c) {
    const std::size_t before = service_->session_count();
    service_->on_disconnect(c.session, c.channel, "test");
    EXPECT_TRUE(run_until([&] { return service_->session_count() < before; }));
  }

  json call(const Client& c, const std::string& event, json args) {
    std::optional<json> reply;
    service_->on_event(c.session, event, std::move(args), [&](json r) { reply = std::move(r); });
    EXPECT_TRUE(run_until([&] { return reply.has_value(); })) << event;
    return reply.value_or(json());
  }

  json run_tool(const Client& c, json message) {
    const json ack = call(c, "message", json::array({std::move(message)}));
    EXPECT_EQ(ack["ok"], true) << ack.dump();
    const std::string id = ack["callId"];
    EXPECT_EQ(call(c, "tool:approval", json::array({{{"callId", id}, {"approved", true}}}))["ok"], true);
    json result;
    EXPECT_TRUE(run_until([&] {
      for (const auto& r : c.channel->named("tool:result")) {
        if (r["callId"] == id) {
          result = r;
          return true;
        }
      }
      return false;
    }));
    return result;
  }

  std::string root_;
  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  plugin_host::SystemClock clock_;
  boost::asio::io_context ioc_;
  std::unique_ptr<backend::ProcessDriver> driver_;
  std::unique_ptr<plugin_host::BasicHost> host_;
  plugin_host::PluginSet plugins_;
  std::shared_ptr<ToolService> service_;
};

TEST_F(ToolServiceTest, MessageRequestApprovalResult) {
  const Client alice = connect("alice");
  const json ack = call(alice, "message", json::array({"echo hello"}));
  ASSERT_EQ(ack["ok"], true) << ack.dump();
  const std::string id = ack["callId"];
  const auto requests = alice.channel->named("tool:request");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0], (json{{"callId", id}, {"tool", "shell"}, {"args", {{"command", "echo hello"}}}}));
  EXPECT_EQ(call(alice, "tool:approval", json::array({{{"callId", id}, {"approved", true}}})),
            (json{{"ok", true}, {"callId", id}}));
  ASSERT_TRUE(run_until([&] { return !alice.channel->named("tool:result").empty(); }));
  const json result = alice.channel->named("tool:result")[0];
  EXPECT_EQ(result["callId"], id);
  EXPECT_EQ(result["exitCode"], 0);
  EXPECT_EQ(result["output"], "hello\n");
  EXPECT_EQ(result["truncated"], false);
  EXPECT_TRUE(result["durationMs"].is_number_integer());
}

TEST_F(ToolServiceTest, ACallRunAgainAfterItsResultIsSaidAndKeptInTheHistory) {
  // The queue's notice (queue=redis: a worker that lost the job found out it ran it too, after another
  // worker's result went out) reaches the user as tool:redelivered and stays in the history.
  const Client c = connect("u");
  const json first = run_tool(c, "true");
  const std::string id = first["callId"];
  const std::string session = c.session->id();
  c.session->on_job_event({id, session, plugin::JobEventType::redelivered, R"({"callId":"x","attempt":"2"})"});
  c.session->on_job_event({id, session, plugin::JobEventType::redelivered, "not json"});
  c.session->on_job_event({id, session, plugin::JobEventType::redelivered, json{{"callId", id}, {"attempt", 2}}.dump()});
  ASSERT_TRUE(run_until([&] { return !c.channel->named("tool:redelivered").empty(); }));
  const auto notices = c.channel->named("tool:redelivered");
  ASSERT_EQ(notices.size(), 1u) << "a malformed notice went out";
  EXPECT_EQ(notices[0], (json{{"callId", id}, {"attempt", 2}}));
  EXPECT_EQ(c.channel->named("tool:result").size(), 1u);
  json history;
  ASSERT_TRUE(run_until([&] {
    history = call(c, "session:history", json::array());
    return history["entries"].size() == 3;  // the message, its result, the notice
  })) << history.dump();
  EXPECT_EQ(history["entries"][2]["role"], "tool");
  EXPECT_EQ(history["entries"][2]["redelivered"], (json{{"callId", id}, {"attempt", 2}})) << history.dump();
}

TEST_F(ToolServiceTest, ShellStatePersistsAndFileToolsShareTheWorkspace) {
  const Client c = connect("u");
  EXPECT_EQ(run_tool(c, "mkdir -p a/b && cd a/b && export X=42")["exitCode"], 0);
  EXPECT_EQ(run_tool(c, "echo $X > x.txt; pwd")["output"].get<std::string>().substr(0, 1), "/");
  const json read = run_tool(c, json{{"tool", "read_file"}, {"args", {{"path", "a/b/x.txt"}}}});
  EXPECT_EQ(read["output"]["content"], "42\n") << read.dump();
  const json escape = run_tool(c, json{{"tool", "read_file"}, {"args", {{"path", "../../etc/passwd"}}}});
  EXPECT_EQ(escape["error"]["code"], "BAD_REQUEST") << escape.dump();
}

TEST_F(ToolServiceTest, DenialGivesADeniedResultAndFreesTheSlot) {
  const Client c = connect("u");
  const std::string id = call(c, "message", json::array({"rm -rf /"}))["callId"];
  EXPECT_EQ(call(c, "tool:approval", json::array({{{"callId", id}, {"approved", false}}}))["ok"], true);
  const auto results = c.channel->named("tool:result");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["denied"], true);
  EXPECT_EQ(call(c, "tool:approval", json::array({{{"callId", id}, {"approved", true}}}))["code"], "NOT_FOUND");
}

TEST_F(ToolServiceTest, SixthRequestOfAUserIsRefusedAtOnceAndOthersAreNotDisturbed) {
  const Client a1 = connect("alice");
  const Client a2 = connect("alice");  // the limit is per user, across connections
  const Client b = connect("bob");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(call(i % 2 == 0 ? a1 : a2, "message", json::array({"true"}))["ok"], true) << i;
  }
  const json refused = call(a2, "message", json::array({"true"}));
  EXPECT_EQ(refused["ok"], false);
  EXPECT_EQ(refused["code"], "TOO_MANY_REQUESTS");
  EXPECT_EQ(run_tool(b, "echo bob")["output"], "bob\n");
  // Finishing one of alice's calls frees a slot.
  const std::string first = a1.channel->named("tool:request")[0]["callId"];
  EXPECT_EQ(call(a1, "tool:approval", json::array({{{"callId", first}, {"approved", false}}}))["ok"], true);
  EXPECT_EQ(call(a2, "message", json::array({"true"}))["ok"], true);
}

TEST_F(ToolServiceTest, AnotherUserCannotApproveACall) {
  const Client alice = connect("alice");
  const Client mallory = connect("mallory");
  const std::string id = call(alice, "message", json::array({"echo mine"}))["callId"];
  const json stolen = call(mallory, "tool:approval", json::array({{{"callId", id}, {"approved", true}}}));
  EXPECT_EQ(stolen["code"], "NOT_FOUND");
  EXPECT_TRUE(mallory.channel->named("tool:result").empty());
  EXPECT_TRUE(alice.channel->named("tool:result").empty()) << "nothing ran";
  EXPECT_EQ(call(alice, "tool:approval", json::array({{{"callId", id}, {"approved", true}}}))["ok"], true);
  ASSERT_TRUE(run_until([&] { return !alice.channel->named("tool:result").empty(); }));
  EXPECT_EQ(alice.channel->named("tool:result")[0]["output"], "mine\n");
}

TEST_F(ToolServiceTest, LargeOutputStreamsAsChunksBeforeTheResult) {
  const Client c = connect("u");
  const json result = run_tool(c, "seq 1 2000");
  EXPECT_EQ(result["streamed"], true);
  EXPECT_EQ(result["output"], "");
  std::string streamed;
  std::int64_t expected_seq = 0;
  for (const auto& chunk : c.channel->named("tool:output")) {
    EXPECT_EQ(chunk["seq"], expected_seq++);
    streamed += chunk["chunk"].get<std::string>();
  }
  std::string want;
  for (int i = 1; i <= 2000; ++i) {
    want += std::to_string(i) + "\n";
  }
  EXPECT_EQ(streamed, want);
  EXPECT_EQ(result["outputBytes"], want.size());
}

TEST_F(ToolServiceTest, MalformedEventsGetBadRequest) {
  const Client c = connect("u");
  EXPECT_EQ(call(c, "frobnicate", json::array())["code"], "BAD_REQUEST");
  EXPECT_EQ(call(c, "message", json::array())["code"], "BAD_REQUEST");
  EXPECT_EQ(call(c, "message", json::array({json{{"tool", "nope"}}}))["code"], "BAD_REQUEST");
  EXPECT_EQ(call(c, "tool:approval", json::array({"callId"}))["code"], "BAD_REQUEST");
  EXPECT_EQ(call(c, "tool:approval", json::array({{{"callId", "x"}, {"approved", "yes"}}}))["code"], "BAD_REQUEST");
  EXPECT_EQ(call(c, "tool:approval", json::array({{{"callId", "x"}, {"approved", true}}}))["code"], "NOT_FOUND");
  // Without an ack, the error arrives as an `error` event.
  service_->on_event(c.session, "frobnicate", json::array(), nullptr);
  ASSERT_TRUE(run_until([&] { return !c.channel->named("error").empty(); }));
  EXPECT_EQ(c.channel->named("error")[0]["code"], "BAD_REQUEST");
}

class ToolServiceShortTimeout : public ToolServiceTest {
 protected:
  ServiceSettings make_settings() override {
    ServiceSettings settings = ToolServiceTest::make_settings();
    settings.job_timeout = 300ms;
    return settings;
  }
};

TEST_F(ToolServiceShortTimeout, TimeoutKillsTheCommandNotTheSession) {
  const Client c = connect("u");
  run_tool(c, "cd /tmp");
  const json result = run_tool(c, "sleep 20");
  EXPECT_EQ(result["timedOut"], true) << result.dump();
  EXPECT_EQ(result["error"]["code"], "TIMEOUT");
  EXPECT_LT(result["durationMs"].get<int>(), 5000);
  EXPECT_EQ(run_tool(c, "pwd")["output"], "/tmp\n") << "the shell session survives";
}

TEST_F(ToolServiceTest, ConversationIsInTheStore) {
  const Client c = connect("u");
  run_tool(c, "echo stored");
  EXPECT_GE(plugins_.store->stats().conversation_entries, 2u);
}

// ---- Issue 15: the server under attack -----------------------------------------------------------

std::string bytes_of(const json& value) {
  std::string out;
  EXPECT_TRUE(bytes::from_json(value, out)) << value.dump();
  return out;
}

// Finding 3: bytes that are not UTF-8 in output, streamed chunks and file names reached the client
// as strings nlohmann cannot encode (and, with store=redis, ended the process). Each now travels
// byte-safe: a string when it is UTF-8, {"base64": …} when not, and comes back exact.
TEST_F(ToolServiceTest, BytesThatAreNotUtf8ReachTheClientExactAndAsJson) {
  const Client c = connect("u");
  const json plain = run_tool(c, "printf 'a\\377b'");
  EXPECT_EQ(plain["output"], (json{{"base64", bytes::base64_encode("a\xff" "b")}})) << plain["output"].dump(-1, ' ', false, json::error_handler_t::replace);
  EXPECT_EQ(run_tool(c, "printf 'caf\\303\\251'")["output"], "caf\xc3\xa9") << "UTF-8 stays a string";

  // Streamed (threshold 100): 300 bytes 0xff, then 300 two-byte characters the pipe may cut anywhere.
  const json raw = run_tool(c, "head -c 300 /dev/zero | tr '\\0' '\\377'");
  EXPECT_EQ(raw["streamed"], true);
  std::string streamed;
  for (const auto& chunk : c.channel->named("tool:output")) {
    streamed += bytes_of(chunk["chunk"]);
  }
  EXPECT_EQ(streamed, std::string(300, '\xff'));
  const std::size_t before = c.channel->named("tool:output").size();
  const json text = run_tool(c, "for i in $(seq 1 300); do printf '\\303\\251'; done");
  EXPECT_EQ(text["streamed"], true);
  std::string accents;
  const auto chunks = c.channel->named("tool:output");
  for (std::size_t i = before; i < chunks.size(); ++i) {
    EXPECT_TRUE(chunks[i]["chunk"].is_string()) << "a character cut in two waits for its other half";
    accents += bytes_of(chunks[i]["chunk"]);
  }
  std::string want;
  for (int i = 0; i < 300; ++i) {
    want += "\xc3\xa9";
  }
  EXPECT_EQ(accents, want);

  // File names: list_dir gives them byte-safe, read_file takes them back in the same form.
  EXPECT_EQ(run_tool(c, "printf hi > $'n\\377'")["exitCode"], 0);
  const json listed = run_tool(c, json{{"tool", "list_dir"}, {"args", json::object()}});
  ASSERT_TRUE(listed["output"]["entries"].is_array()) << listed.dump();
  json name;
  for (const auto& e : listed["output"]["entries"]) {
    if (bytes_of(e["name"]) == "n\xff") {
      name = e["name"];
    }
  }
  EXPECT_EQ(name, (json{{"base64", bytes::base64_encode("n\xff")}}));
  const json read = run_tool(c, json{{"tool", "read_file"}, {"args", {{"path", name}}}});
  EXPECT_EQ(read["output"]["content"], "hi") << read.dump();
  EXPECT_EQ(read["output"]["path"], name);
  EXPECT_EQ(c.channel->unencodable, 0);
}

class ToolServiceUserCaps : public ToolServiceTest {
 protected:
  ServiceSettings make_settings() override {
    ServiceSettings settings = ToolServiceTest::make_settings();
    settings.max_sessions_per_user = 2;
    settings.max_backends_per_user = 1;
    return settings;
  }
};

// Finding 4: every session keeps its backend, so one user with many sessions held every backend.
TEST_F(ToolServiceUserCaps, SessionsPerUserAreCappedAndTheNextIsRefusedWithResourceExhausted) {
  const Client a1 = connect("alice");
  const Client a2 = connect("alice");
  ASSERT_TRUE(a1.session && a2.session);
  EXPECT_EQ(service_->open_session("alice", std::make_shared<RecordingChannel>()), nullptr);
  EXPECT_EQ(service_->refused_session().code(), Code::resource_exhausted);
  EXPECT_NE(connect("bob").session, nullptr) << "another user is not disturbed";
  // Through CONNECT (AUTH_MODE=none: the user is the connection, so the cap is per connection id).
  std::vector<SessionPtr> held;  // as the transport holds its sessions
  for (int i = 0; i < 2; ++i) {
    service_->connect(json::object(), "conn-1", std::make_shared<RecordingChannel>(),
                      [&](Status, SessionPtr s) { held.push_back(std::move(s)); });
  }
  std::optional<Status> third;
  service_->connect(json::object(), "conn-1", std::make_shared<RecordingChannel>(),
                    [&](Status s, SessionPtr) { third = std::move(s); });
  ASSERT_TRUE(run_until([&] { return third.has_value() && held.size() == 2; }));
  EXPECT_TRUE(held[0] && held[1]);
  EXPECT_EQ(third->code(), Code::resource_exhausted);
  EXPECT_NE(third->message().find("MAX_SESSIONS_PER_USER"), std::string::npos) << third->message();
  // A session that ends gives its place back.
  disconnect(a1);
  EXPECT_NE(connect("alice").session, nullptr);
}

TEST_F(ToolServiceUserCaps, BackendsPerUserAreCappedAndFreedWhenTheSessionEnds) {
  const Client a1 = connect("alice");
  const Client a2 = connect("alice");
  const Client bob = connect("bob");
  EXPECT_EQ(run_tool(a1, "echo one")["output"], "one\n");  // a1 keeps its backend from now on
  const json refused = run_tool(a2, "echo two");
  EXPECT_EQ(refused["error"]["code"], "RESOURCE_EXHAUSTED") << refused.dump();
  EXPECT_NE(refused["error"]["message"].get<std::string>().find("MAX_BACKENDS_PER_USER"), std::string::npos);
  EXPECT_EQ(run_tool(bob, "echo bob")["output"], "bob\n") << "the next user still gets a backend";
  EXPECT_EQ(run_tool(a1, "echo again")["output"], "again\n") << "the session that holds one goes on";
  disconnect(a1);
  EXPECT_EQ(run_tool(a2, "echo two")["output"], "two\n");
}

/// A remote queue whose jobs nobody runs: the test settles them as the redis queue's reaper does, with a
/// result no run produced (or as a worker does, with one marked audited).
class SettlingQueue final : public plugin::QueueStrategy {
 public:
  explicit SettlingQueue(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}
  [[nodiscard]] bool remote() const noexcept override { return true; }
  void enqueue(plugin::Job job, std::function<void(Status)> queued) noexcept override {
    jobs.push_back(std::move(job));
    boost::asio::post(ex_, [queued = std::move(queued)] { queued(Status()); });
  }
  void consume(unsigned, JobHandler) noexcept override {}
  void set_concurrency(unsigned) noexcept override {}
  void subscribe(std::string session, EventSink sink) noexcept override { sinks[session] = std::move(sink); }
  void unsubscribe(std::string_view session) noexcept override { sinks.erase(std::string(session)); }
  [[nodiscard]] plugin::QueueStats stats() const noexcept override { return {}; }
  void async_shutdown(std::function<void()> done) noexcept override { boost::asio::post(ex_, std::move(done)); }

  std::vector<plugin::Job> jobs;
  std::map<std::string, EventSink> sinks;

 private:
  boost::asio::any_io_executor ex_;
};

class ToolServiceQueueSettled : public ToolServiceTest {
 protected:
  void adjust(plugin_host::PluginSet& plugins) override {
    plugins.queue = plugin_host::InstancePtr<plugin::QueueStrategy>(
        new SettlingQueue(ioc_.get_executor()),
        plugin_host::InstanceDeleter<plugin::QueueStrategy>{[](void* p) { delete static_cast<SettlingQueue*>(p); }, {}});
    queue_ = static_cast<SettlingQueue*>(plugins.queue.get());
  }

  /// The audit log of the service's store.
  std::vector<plugin::AuditRecord> audit() {
    std::optional<plugin::AuditPage> page;
    plugins_.store->read_audit({}, [&](Status, plugin::AuditPage p) { page = std::move(p); });
    EXPECT_TRUE(run_until([&] { return page.has_value(); }));
    return page ? page->records : std::vector<plugin::AuditRecord>{};
  }

  SettlingQueue* queue_ = nullptr;
};

TEST_F(ToolServiceQueueSettled, AResultTheQueueSettledWithoutARunIsAuditedAndKeptBeforeTheUserHearsOfIt) {
  const Client alice = connect("alice");
  const json ack = call(alice, "message", json::array({"sleep 999"}));
  const std::string id = ack["callId"];
  ASSERT_EQ(call(alice, "tool:approval", json::array({{{"callId", id}, {"approved", true}}}))["ok"], true);
  ASSERT_EQ(queue_->jobs.size(), 1u);
  const std::string session = queue_->jobs[0].session_id;
  ASSERT_EQ(queue_->sinks.count(session), 1u);
  // What the redis queue's reaper publishes when the job's workers died JOB_MAX_ATTEMPTS times.
  const json reaped{{"callId", id}, {"exitCode", nullptr}, {"output", ""}, {"truncated", false}, {"durationMs", 0},
                    {"error", {{"code", "UNAVAILABLE"}, {"message", "its worker stopped 3 times while running it"}}}};
  queue_->sinks[session](plugin::JobEvent{id, session, plugin::JobEventType::result, reaped.dump()});
  ASSERT_TRUE(run_until([&] { return !alice.channel->named("tool:result").empty(); }));
  EXPECT_EQ(alice.channel->named("tool:result")[0], reaped);
  const auto records = audit();
  ASSERT_EQ(records.size(), 1u) << "the user heard of a call the audit log does not have";
  EXPECT_EQ(records[0].call_id, id);
  EXPECT_EQ(records[0].user_id, "alice");
  EXPECT_EQ(records[0].outcome, "UNAVAILABLE");
  EXPECT_TRUE(records[0].approved);
  EXPECT_EQ(json::parse(records[0].args), json({{"command", "sleep 999"}}));
  const json history = call(alice, "session:history", json::array({json::object()}));
  EXPECT_NE(history.dump().find("its worker stopped 3 times"), std::string::npos) << history.dump();

  // A result a run published (marked audited) is not written twice, and the mark does not reach the user.
  const json ack2 = call(alice, "message", json::array({"echo ran"}));
  const std::string id2 = ack2["callId"];
  ASSERT_EQ(call(alice, "tool:approval", json::array({{{"callId", id2}, {"approved", true}}}))["ok"], true);
  const json ran{{"callId", id2}, {"exitCode", 0}, {"output", "ran\n"}, {"truncated", false}, {"durationMs", 3}};
  json marked = ran;
  marked["audited"] = true;
  queue_->sinks[session](plugin::JobEvent{id2, session, plugin::JobEventType::result, marked.dump()});
  ASSERT_TRUE(run_until([&] { return alice.channel->named("tool:result").size() == 2; }));
  EXPECT_EQ(alice.channel->named("tool:result")[1], ran);
  EXPECT_EQ(audit().size(), 1u);
}

class ToolServiceHistoryCaps : public ToolServiceTest {
 protected:
  config::Inputs config_inputs() override {
    config::Inputs inputs;
    inputs.env = {{"HISTORY_MAX_BYTES", "1048576"}};
    return inputs;
  }
  ServiceSettings make_settings() override {
    ServiceSettings settings = ToolServiceTest::make_settings();
    settings.history_page_bytes = 262144;
    return settings;
  }
};

// Finding 6: 40 denied 500 KiB messages grew the process by 68 MB, and session:history answered all
// of them at once. The store keeps HISTORY_MAX_BYTES; session:history answers pages.
TEST_F(ToolServiceHistoryCaps, ConversationIsCappedAndHistoryComesInBoundedPages) {
  const Client c = connect("u");
  const std::string big(500 * 1024, 'x');
  for (int i = 0; i < 40; ++i) {
    const json write{{"tool", "write_file"}, {"args", {{"path", "f" + std::to_string(i)}, {"content", big}}}};
    const json ack = call(c, "message", json::array({write}));
    ASSERT_EQ(ack["ok"], true) << i;
    EXPECT_EQ(call(c, "tool:approval", json::array({{{"callId", ack["callId"]}, {"approved", false}}}))["ok"], true);
  }
  EXPECT_LE(plugins_.store->stats().bytes, 1048576u + big.size() + 1024) << "HISTORY_MAX_BYTES, plus the newest entry";

  json page = call(c, "session:history", json::array());
  ASSERT_EQ(page["ok"], true) << page.dump().substr(0, 200);
  EXPECT_EQ(page["total"], 80);
  EXPECT_GT(page["dropped"].get<int>(), 70);
  std::size_t kept = 0;
  int pages = 0;
  while (true) {
    ASSERT_LE(page["entries"].dump().size(), 262144u + big.size() + 1024) << "a page holds HISTORY_PAGE_BYTES, or one entry";
    ASSERT_FALSE(page["entries"].empty());
    kept += page["entries"].size();
    ++pages;
    if (page["next"].is_null()) {
      break;
    }
    page = call(c, "session:history", json::array({{{"before", page["next"]}, {"limit", 100}}}));
    ASSERT_EQ(page["ok"], true);
  }
  EXPECT_EQ(kept + page["dropped"].get<std::size_t>(), 80u);
  EXPECT_GT(pages, 1);
  EXPECT_EQ(call(c, "session:history", json::array({{{"limit", 0}}}))["code"], "BAD_REQUEST");
  EXPECT_EQ(call(c, "session:history", json::array({{{"before", -1}}}))["code"], "BAD_REQUEST");
  EXPECT_EQ(call(c, "session:history", json::array({{{"cursor", "x"}}}))["code"], "BAD_REQUEST");
}

// Socket.IO connection state recovery: a socket that broke took with it what was written to it since
// the client's last event. The client comes back with its pid and the offset of the last event it
// got, and is sent the tool:results after it, once.
class ToolServiceRecovery : public ToolServiceTest {
 protected:
  ServiceSettings make_settings() override {
    ServiceSettings settings = ToolServiceTest::make_settings();
    settings.session_grace = 60s;  // the session waits for its client
    return settings;
  }

  /// Connects as Socket.IO's client reconnects: {pid, offset} in its auth.
  Client reconnect(const Client& before, const std::string& offset) {
    Client c;
    std::optional<Status> status;
    service_->connect(json{{"pid", before.session->id()}, {"offset", offset}}, "conn-2", c.channel,
                      [&](Status s, SessionPtr session) {
                        c.session = std::move(session);
                        status = std::move(s);
                      });
    EXPECT_TRUE(run_until([&] { return status.has_value(); }));
    EXPECT_TRUE(status && status->ok());
    return c;
  }
};

/// The offset the channel got with `event` for `call_id` (what socket.io-client would keep).
std::string offset_of(const RecordingChannel& channel, const std::string& event, const std::string& call_id) {
  const auto results = channel.named(event);
  std::size_t n = 0;
  for (const auto& [e, offset] : channel.offsets) {
    if (e == event && n < results.size() && results[n++]["callId"] == call_id) {
      return offset;
    }
  }
  ADD_FAILURE() << "no " << event << " for " << call_id;
  return {};
}

TEST_F(ToolServiceRecovery, AClientBackWithItsLastOffsetIsSentTheResultsItMissedAndNoOthers) {
  const Client first = connect("alice");
  const json a = run_tool(first, "echo a");
  const json b = run_tool(first, "echo b");  // written to a socket that broke: the client never saw it
  const Client back = reconnect(first, offset_of(*first.channel, "tool:result", a["callId"]));
  ASSERT_EQ(back.session, first.session) << "the session was not resumed";
  ASSERT_TRUE(run_until([&] { return !back.channel->named("tool:result").empty(); }))
      << "the result the broken socket took is never sent again";
  const auto results = back.channel->named("tool:result");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0], b);
  // The next call's result comes once, and a client that got everything is sent nothing again.
  const json c = run_tool(back, "echo c");
  EXPECT_EQ(c["output"], "c\n");
  EXPECT_EQ(back.channel->named("tool:result").size(), 2u);
  const Client again = reconnect(back, offset_of(*back.channel, "tool:result", c["callId"]));
  const json d = run_tool(again, "echo d");
  EXPECT_EQ(call(again, "session:history", json::array())["ok"], true);  // the replay has answered
  ASSERT_EQ(again.channel->named("tool:result").size(), 1u) << again.channel->named("tool:result")[0].dump();
  EXPECT_EQ(again.channel->named("tool:result")[0], d);
}

TEST_F(ToolServiceRecovery, AClientThatSawOnlyTheRequestGetsItsResult) {
  const Client first = connect("alice");
  const json ack = call(first, "message", json::array({"echo late"}));
  const std::string id = ack["callId"];
  const std::string offset = offset_of(*first.channel, "tool:request", id);
  EXPECT_EQ(offset, "q:" + id + ";" + id);  // the request, and its call outstanding
  EXPECT_EQ(call(first, "tool:approval", json::array({{{"callId", id}, {"approved", true}}}))["ok"], true);
  ASSERT_TRUE(run_until([&] { return !first.channel->named("tool:result").empty(); }));  // the broken socket's
  const Client back = reconnect(first, offset);
  ASSERT_TRUE(run_until([&] { return !back.channel->named("tool:result").empty(); }));
  EXPECT_EQ(back.channel->named("tool:result")[0]["output"], "late\n");
}

TEST_F(ToolServiceRecovery, AnOffsetTheConversationDoesNotHoldReplaysNothing) {
  const Client first = connect("alice");
  run_tool(first, "echo a");
  const Client back = reconnect(first, "r:call-forged;");
  const Client again = reconnect(back, "not an offset,,;;");
  const json b = run_tool(again, "echo b");
  // A store round trip issued after the replays' reads: they have answered by then.
  EXPECT_EQ(call(again, "session:history", json::array())["ok"], true);
  EXPECT_TRUE(back.channel->named("tool:result").empty());
  ASSERT_EQ(again.channel->named("tool:result").size(), 1u) << again.channel->named("tool:result")[0].dump();
  EXPECT_EQ(again.channel->named("tool:result")[0], b);
}

TEST_F(ToolServiceRecovery, AClientGivenANewSessionTakesNothingOfItsOffsetAlong) {
  Client fresh;
  std::optional<Status> status;
  service_->connect(json{{"pid", "s-gone"}, {"offset", "r:call-x;call-y"}}, "conn-3", fresh.channel,
                    [&](Status s, SessionPtr session) {
                      fresh.session = std::move(session);
                      status = std::move(s);
                    });
  ASSERT_TRUE(run_until([&] { return status.has_value(); }));
  ASSERT_TRUE(status->ok());
  const json a = run_tool(fresh, "echo a");
  EXPECT_EQ(offset_of(*fresh.channel, "tool:result", a["callId"]), "r:" + a["callId"].get<std::string>() + ";")
      << "the new session's offsets list calls of another";
}

TEST_F(ToolServiceRecovery, TheOldSocketClosingAfterAResumeDoesNotCutTheNewOne) {
  const Client first = connect("alice");
  run_tool(first, "echo a");
  const Client back = reconnect(first, offset_of(*first.channel, "tool:result", first.channel->named("tool:result")[0]["callId"]));
  // The broken socket's close arrives only now (its ping timed out after the client was back).
  service_->on_disconnect(first.session, first.channel, "ping timeout");
  const json b = run_tool(back, "echo b");
  EXPECT_EQ(b["output"], "b\n") << "the resumed connection lost its results to the old socket's close";
}

}  // namespace
}  // namespace phasekit::app
