// One tool call through JobLifecycle under both tenures: held (the orchestrator's sessions) and leased
// (phasekit-worker). The store and the pool are fakes that record what was asked of them and in which
// order; backends are real sandboxed processes where a call has to run, and absent where it must not.
#include "phasekit/app/job_lifecycle.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "phasekit/app/session_state.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/bytes.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "support/backend_fixtures.hpp"
#include "support/redis_server.hpp"

namespace phasekit::app {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

/// Sessions and conversations in memory; every answer posted, as a real store's is. `order` is shared
/// with the test's sink and done, so a test can read the sequence of writes and publications.
class FakeStore final : public plugin::StoreStrategy {
 public:
  FakeStore(boost::asio::any_io_executor executor, std::vector<std::string>& order)
      : executor_(std::move(executor)), order_(order) {}

  [[nodiscard]] bool shared() const noexcept override { return true; }
  [[nodiscard]] bool reachable() const noexcept override { return true; }
  void put_session(plugin::SessionRecord record, std::function<void(Status)> done) noexcept override {
    order_.push_back("put");
    sessions[record.id] = std::move(record);
    answer(std::move(done), Status());
  }
  void update_session(std::string id, plugin::SessionUpdate update, std::function<void(Status)> done) noexcept override {
    order_.push_back("update");
    ++updates;
    const auto it = sessions.find(id);
    if (it == sessions.end()) {
      answer(std::move(done), Status(Code::not_found, "no such session"));
      return;
    }
    plugin::apply(it->second, std::move(update));
    answer(std::move(done), Status());
  }
  void get_session(std::string id, std::function<void(Status, plugin::SessionRecord)> done) noexcept override {
    order_.push_back("get");
    Status status = fail_get;
    plugin::SessionRecord record;
    if (status.ok()) {
      const auto it = sessions.find(id);
      if (it == sessions.end()) {
        status = Status(Code::not_found, "no such session");
      } else {
        record = it->second;
        if (forget_after_get) {
          sessions.erase(it);  // the session ends while the job that read it runs
        }
      }
    }
    boost::asio::post(executor_, [done = std::move(done), status, record = std::move(record)]() mutable {
      done(status, std::move(record));
    });
  }
  void remove_session(std::string id, std::function<void(Status)> done) noexcept override {
    sessions.erase(id);
    answer(std::move(done), Status());
  }
  void append_conversation(std::string session_id, std::string entry,
                           std::function<void(Status)> done) noexcept override {
    order_.push_back("append");
    if (fail_next(done)) {
      return;
    }
    conversations[session_id].push_back(std::move(entry));
    answer(std::move(done), Status());
  }
  /// One write, "result" in the order: both stored, or (a failure from fail_appends) neither.
  void append_result(std::string session_id, std::string entry, plugin::AuditRecord record,
                     std::function<void(Status)> done) noexcept override {
    order_.push_back("result");
    if (fail_next(done)) {
      return;
    }
    conversations[session_id].push_back(std::move(entry));
    audit.push_back(std::move(record));
    answer(std::move(done), Status());
  }
  void read_conversation(std::string session_id, plugin::ConversationRange,
                         std::function<void(Status, plugin::ConversationPage)> done) noexcept override {
    plugin::ConversationPage page;
    page.entries = conversations[session_id];
    page.total = page.entries.size();
    boost::asio::post(executor_, [done = std::move(done), page = std::move(page)]() mutable {
      done(Status(), std::move(page));
    });
  }
  void append_audit(std::vector<plugin::AuditRecord> records, std::function<void(Status)> done) noexcept override {
    order_.push_back("audit");
    for (auto& r : records) {
      audit.push_back(std::move(r));
    }
    answer(std::move(done), Status());
  }
  void read_audit(plugin::AuditQuery, std::function<void(Status, plugin::AuditPage)> done) noexcept override {
    plugin::AuditPage page;
    page.records = audit;
    boost::asio::post(executor_, [done = std::move(done), page = std::move(page)]() mutable {
      done(Status(), std::move(page));
    });
  }
  [[nodiscard]] plugin::StoreStats stats() const noexcept override { return {}; }
  void async_shutdown(std::function<void()> done) noexcept override { boost::asio::post(executor_, std::move(done)); }

  std::map<std::string, plugin::SessionRecord> sessions;
  std::map<std::string, std::vector<std::string>> conversations;
  std::vector<plugin::AuditRecord> audit;
  Status fail_get;                // not OK: get_session answers this
  bool forget_after_get = false;  // get_session removes the record it answered with
  std::vector<Status> fail_appends;  // the next appends (results too) answer these, in order, and store nothing
  int updates = 0;

 private:
  void answer(std::function<void(Status)> done, Status s) {
    boost::asio::post(executor_, [done = std::move(done), s] { done(s); });
  }
  /// Answers `done` with the next of fail_appends; false when none is left.
  bool fail_next(std::function<void(Status)>& done) {
    if (fail_appends.empty()) {
      return false;
    }
    const Status failure = fail_appends.front();
    fail_appends.erase(fail_appends.begin());
    answer(std::move(done), failure);
    return true;
  }

  boost::asio::any_io_executor executor_;
  std::vector<std::string>& order_;
};

/// A backend the pool might hand out that is not a shell.
class PlainBackend final : public plugin::Backend {
 public:
  [[nodiscard]] std::string_view id() const noexcept override { return "plain"; }
  [[nodiscard]] bool alive() const noexcept override { return true; }
};

/// A cold backend from the driver per acquire, destroyed on release; or `fail`, or a PlainBackend.
class FakePool final : public plugin::PoolStrategy {
 public:
  FakePool(boost::asio::any_io_executor executor, plugin::BackendDriver* driver)
      : executor_(std::move(executor)), driver_(driver) {}

  void acquire(plugin::AcquireRequest, AcquireHandler done) noexcept override {
    ++acquired;
    if (!fail.ok() || plain || driver_ == nullptr) {
      const Status s = fail.ok() && !plain ? Status(Code::unavailable, "no driver") : fail;
      plugin::BackendPtr backend = plain ? std::make_shared<PlainBackend>() : nullptr;
      boost::asio::post(executor_, [done = std::move(done), s, backend] { done(s, plugin::Lease{backend}); });
      return;
    }
    driver_->create([this, done = std::move(done)](Status s, plugin::BackendPtr b) {
      if (s.ok()) {
        ++live;
      }
      boost::asio::post(executor_, [done, s, b] { done(s, plugin::Lease{b, plugin::AcquireSource::cold}); });
    });
  }
  void release(plugin::BackendPtr backend, bool) noexcept override {
    ++released;
    if (backend && driver_ != nullptr && std::dynamic_pointer_cast<PlainBackend>(backend) == nullptr) {
      driver_->destroy(std::move(backend), [this] { --live; });
    }
  }
  [[nodiscard]] plugin::PoolStats stats() const noexcept override { return {}; }
  void resize(std::uint64_t) noexcept override {}
  void async_shutdown(std::function<void()> done) noexcept override { boost::asio::post(executor_, std::move(done)); }

  Status fail;         // not OK: every acquire answers this
  bool plain = false;  // hand out a backend that cannot run tools
  int acquired = 0;
  int released = 0;
  int live = 0;

 private:
  boost::asio::any_io_executor executor_;
  plugin::BackendDriver* driver_;
};

class NoCompression final : public plugin::CompressionStrategy {
 public:
  Status compress(std::string_view in, std::string& out) noexcept override {
    out.assign(in);
    return {};
  }
  Status decompress(std::string_view in, std::string& out) noexcept override {
    out.assign(in);
    return {};
  }
};

plugin::SessionRecord record(const std::string& id, const std::string& user, const std::string& cwd = "") {
  plugin::SessionRecord r;
  r.id = id;
  r.user_id = user;
  r.status = "active";
  r.cwd = cwd;
  return r;
}

struct Outcome {
  std::vector<json> results;  // tool:result bodies published
  std::vector<Status> done;   // every call of done
};

class JobLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // WORKSPACE_ROOT of the sessions' folders; the backends' workspaces are the fixture's, on the same
    // filesystem (/tmp), so files move between them by rename(2) as in production.
    root_ = (std::filesystem::temp_directory_path() / ("phasekit-lifecycle-" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    env_ = test::make_backend_env(test::BackendKind::process, ioc_.get_executor(), logs_.logger("test"));
    host_ = std::make_unique<plugin_host::BasicHost>(logs_, metrics_, clock_, ioc_.get_executor(), env_.driver.get());
    store_ = std::make_unique<FakeStore>(ioc_.get_executor(), order_);
    pool_ = std::make_unique<FakePool>(ioc_.get_executor(), env_.skip_reason.empty() ? env_.driver.get() : nullptr);
  }

  /// store=redis against a real redis-server, with `session` of `user` in it; false when there is none.
  bool use_redis_store(const std::string& session, const std::string& user) {
    if (!test::RedisServer::available()) {
      return false;
    }
    redis_.emplace();
    redis_store_ = plugin_host::instantiate<plugin::StoreStrategy>(
        plugin_host::Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_STORE, "redis"), *host_,
        R"({"redis_url": ")" + redis_->url() + "\"}");
    // The redis client fails fast (UNAVAILABLE) until it has connected: retry with a deadline.
    std::optional<Status> put;
    EXPECT_TRUE(run_until([&] {
      put.reset();
      redis_store_->put_session(record(session, user), [&](Status s) { put = std::move(s); });
      return run_until([&] { return put.has_value(); }) && put->code() != Code::unavailable;
    }));
    return put && put->ok();
  }

  void TearDown() override {
    for (auto& [id, hold] : holds_) {
      boost::asio::post(hold->strand, [this, hold = hold] { lifecycle_->end(hold); });
    }
    EXPECT_TRUE(run_until([&] { return pool_->live == 0; })) << pool_->live << " backends still alive";
    holds_.clear();
    lifecycle_.reset();
    redis_store_.reset();
    pool_.reset();
    env_.teardown();
    std::filesystem::remove_all(root_);
  }

  /// For tests where a call has to run: a real backend.
  [[nodiscard]] bool backends_here() const { return env_.skip_reason.empty(); }

  void make_lifecycle(Tenure tenure, bool persist) {
    LifecycleOptions options;
    options.tenure = tenure;
    options.persist = persist;
    if (::geteuid() == 0) {
      options.limits.backend_uid = options.limits.backend_gid = 65534;  // as the fixture's backends run
    }
    options.workspace_root = root_;
    options.instance_id = "instance-1";
    plugin::StoreStrategy& store = redis_store_ ? *redis_store_ : static_cast<plugin::StoreStrategy&>(*store_);
    lifecycle_ = std::make_shared<JobLifecycle>(options, *pool_, store, compression_, *host_, logs_.logger("test"),
                                                [this](const std::string& id) -> HoldPtr {
                                                  const auto it = holds_.find(id);
                                                  return it == holds_.end() ? nullptr : it->second;
                                                });
  }

  /// A session this process holds, as the orchestrator's Session keeps it.
  HoldPtr hold_session(const std::string& id, const std::string& user) {
    auto hold = std::make_shared<SessionHold>(id, user, boost::asio::make_strand(ioc_.get_executor()));
    hold->stored = true;
    holds_[id] = hold;
    store_->sessions[id] = record(id, user);
    return hold;
  }

  static plugin::Job job(const std::string& session, const std::string& user, const json& payload,
                         const std::string& id = "call-1") {
    plugin::Job j;
    j.id = id;
    j.user_id = user;
    j.session_id = session;
    j.payload = payload.is_string() ? payload.get<std::string>() : payload.dump();
    j.timeout_ms = 20000;
    return j;
  }

  static json shell(const std::string& command) {
    return json{{"tool", "shell"}, {"args", {{"command", command}}}};
  }

  /// Runs one job; the outcome is filled as its result and done arrive.
  void start(plugin::Job j, Outcome& out) {
    lifecycle_->run(
        std::move(j),
        [this, &out](plugin::JobEvent e) {
          if (e.type == plugin::JobEventType::result) {
            order_.push_back("publish");
            out.results.push_back(json::parse(e.data));
          }
        },
        [this, &out](Status s) {
          order_.push_back("done");
          out.done.push_back(std::move(s));
        });
  }

  Outcome run_job(plugin::Job j) {
    Outcome out;
    start(std::move(j), out);
    EXPECT_TRUE(run_until([&] { return !out.done.empty(); }));
    run_for(20ms);  // a second done or result would show here
    EXPECT_EQ(out.done.size(), 1u);
    EXPECT_EQ(out.results.size(), 1u);
    return out;
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds deadline = 20s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred() && std::chrono::steady_clock::now() < until) {
      if (ioc_.stopped()) {
        ioc_.restart();
      }
      ioc_.run_one_for(10ms);
    }
    return pred();
  }

  void run_for(std::chrono::milliseconds d) {
    run_until([] { return false; }, d);
  }

  /// On the hold's strand, as the Session calls it.
  template <class F>
  void on_strand(const HoldPtr& hold, F f) {
    bool ran = false;
    boost::asio::post(hold->strand, [&] {
      f();
      ran = true;
    });
    ASSERT_TRUE(run_until([&] { return ran; }));
  }

  [[nodiscard]] std::vector<std::string> conversation(const std::string& session) const {
    const auto it = store_->conversations.find(session);
    return it == store_->conversations.end() ? std::vector<std::string>{} : it->second;
  }

  /// Where the last "publish" stands in order_, and the last of `what` before it.
  [[nodiscard]] std::ptrdiff_t last(const std::string& what) const {
    const auto it = std::find(order_.rbegin(), order_.rend(), what);
    return it == order_.rend() ? -1 : static_cast<std::ptrdiff_t>(order_.rend() - it - 1);
  }

  std::string root_;
  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  plugin_host::SystemClock clock_;
  boost::asio::io_context ioc_;
  test::BackendEnv env_;
  std::unique_ptr<plugin_host::BasicHost> host_;
  std::vector<std::string> order_;
  std::unique_ptr<FakeStore> store_;
  std::unique_ptr<FakePool> pool_;
  NoCompression compression_;
  std::map<std::string, HoldPtr> holds_;
  std::shared_ptr<JobLifecycle> lifecycle_;
  std::optional<test::RedisServer> redis_;
  plugin_host::InstancePtr<plugin::StoreStrategy> redis_store_;  // set: the lifecycle uses store=redis
};

// ---- Tenure::leased (phasekit-worker) -------------------------------------------------------------

TEST_F(JobLifecycleTest, Leased_SessionComesOverFromFolderAndRecordAndGoesBackBeforeThePublish) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::leased, false);  // a leased backend always persists
  store_->sessions["s1"] = record("s1", "alice");

  const Outcome first = run_job(job("s1", "alice", shell("mkdir -p a/b && cd a/b && export X=42 && echo one > f.txt")));
  EXPECT_EQ(first.results[0]["exitCode"], 0) << first.results[0].dump();
  EXPECT_TRUE(first.done[0].ok());
  // Saved, then appended, then published, then done.
  EXPECT_EQ(order_, (std::vector<std::string>{"get", "update", "result", "publish", "done"}));
  const plugin::SessionRecord& saved = store_->sessions["s1"];
  EXPECT_EQ(saved.cwd, "a/b");
  EXPECT_NE(std::find(saved.env.begin(), saved.env.end(), std::pair<std::string, std::string>{"X", "42"}),
            saved.env.end());
  EXPECT_EQ(saved.workspace, session_folder(root_, "s1"));
  EXPECT_EQ(saved.backend, "");
  EXPECT_EQ(saved.history, (std::vector<std::string>{"mkdir -p a/b && cd a/b && export X=42 && echo one > f.txt"}));
  EXPECT_EQ(saved.status, "active") << "a worker does not write the orchestrator's fields";
  EXPECT_TRUE(std::filesystem::exists(session_folder(root_, "s1") + "/a/b/f.txt"));
  EXPECT_EQ(pool_->released, 1);

  // The next job, on another backend, finds the files, the cwd and the exports.
  const Outcome second = run_job(job("s1", "alice", shell("printf '%s|%s|' \"${PWD#$HOME/}\" \"$X\"; cat f.txt"), "call-2"));
  EXPECT_EQ(second.results[0]["output"], "a/b|42|one\n") << second.results[0].dump();
  EXPECT_EQ(pool_->acquired, 2);
  EXPECT_EQ(pool_->released, 2);
  EXPECT_EQ(conversation("s1").size(), 2u);
}

TEST_F(JobLifecycleTest, Leased_TheHistoryAndTheResultSayTheAttemptTheQueueConfirms) {
  // Another worker's recovery raised the job's attempt while this run went on (both ran it under one
  // attempt): what the history keeps must say so, as the user's result does.
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::leased, true);
  store_->sessions["s1"] = record("s1", "alice");
  plugin::Job j = job("s1", "alice", shell("true"));
  int asked = 0;
  j.confirm = [this, &asked](std::function<void(std::uint32_t)> answer) {
    ++asked;
    order_.push_back("confirm");
    boost::asio::post(ioc_, [answer = std::move(answer)] { answer(2); });
  };
  const Outcome out = run_job(std::move(j));
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(out.results[0].value("attempt", 0), 2) << out.results[0].dump();
  ASSERT_EQ(conversation("s1").size(), 1u);
  EXPECT_EQ(json::parse(conversation("s1")[0])["result"].value("attempt", 0), 2) << conversation("s1")[0];
  EXPECT_LT(last("confirm"), last("result"));
}

TEST_F(JobLifecycleTest, Leased_ARunTheQueueNoLongerConfirmsRecordsAndPublishesNothing) {
  // The lease went, or another run holds the job now: this one's result is not its to record.
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::leased, true);
  store_->sessions["s1"] = record("s1", "alice");
  plugin::Job j = job("s1", "alice", shell("true"));
  j.confirm = [this](std::function<void(std::uint32_t)> answer) {
    boost::asio::post(ioc_, [answer = std::move(answer)] { answer(0); });
  };
  Outcome out;
  start(std::move(j), out);
  ASSERT_TRUE(run_until([&] { return !out.done.empty(); }));
  run_for(20ms);
  EXPECT_EQ(out.done[0].code(), Code::unavailable) << out.done[0].message();
  EXPECT_TRUE(out.results.empty());
  EXPECT_TRUE(conversation("s1").empty());
}

TEST_F(JobLifecycleTest, Leased_AnotherUsersSessionIsRefusedAndNothingOfItTouched) {
  make_lifecycle(Tenure::leased, true);
  store_->sessions["s1"] = record("s1", "alice", "x");
  const Outcome out = run_job(job("s1", "mallory", shell("cat secret")));
  EXPECT_EQ(out.done[0].code(), Code::unauthorized);
  EXPECT_EQ(out.results[0]["error"]["code"], "UNAUTHORIZED");
  EXPECT_EQ(out.results[0]["callId"], "call-1");
  EXPECT_EQ(pool_->acquired, 0);
  EXPECT_EQ(order_, (std::vector<std::string>{"get", "audit", "publish", "done"}));
  EXPECT_TRUE(conversation("s1").empty());
  EXPECT_EQ(store_->sessions["s1"].cwd, "x");
}

TEST_F(JobLifecycleTest, Leased_StoreUnavailableFailsTheJobBeforeABackendIsTaken) {
  make_lifecycle(Tenure::leased, true);
  store_->fail_get = Status(Code::unavailable, "redis is down");
  const Outcome out = run_job(job("s1", "alice", shell("echo hi")));
  EXPECT_EQ(out.done[0].code(), Code::unavailable);
  EXPECT_EQ(out.results[0]["error"]["message"], "session store: redis is down");
  EXPECT_EQ(pool_->acquired, 0);
  EXPECT_EQ(order_, (std::vector<std::string>{"get", "audit", "publish", "done"}));
}

TEST_F(JobLifecycleTest, Leased_AcquireFailureIsAppendedAndPublishedAndSavesNothing) {
  make_lifecycle(Tenure::leased, true);
  store_->sessions["s1"] = record("s1", "alice", "x");
  pool_->fail = Status(Code::timeout, "no backend within 5000 ms");
  const Outcome out = run_job(job("s1", "alice", shell("echo hi")));
  EXPECT_EQ(out.done[0].code(), Code::timeout);
  EXPECT_EQ(out.results[0]["error"]["code"], "TIMEOUT");
  EXPECT_EQ(order_, (std::vector<std::string>{"get", "result", "publish", "done"}));
  EXPECT_EQ(store_->updates, 0);
  EXPECT_EQ(pool_->released, 0);
}

TEST_F(JobLifecycleTest, Leased_MalformedJobReadsAndWritesNothing) {
  make_lifecycle(Tenure::leased, true);
  for (const json& payload : {json("{not json"), json(json::array({1, 2}).dump()), json(json{{"args", 1}}.dump())}) {
    order_.clear();
    const Outcome out = run_job(job("s1", "alice", payload));
    EXPECT_EQ(out.done[0].code(), Code::bad_request) << payload;
    EXPECT_EQ(out.results[0]["error"]["message"], "malformed job");
    EXPECT_EQ(order_, (std::vector<std::string>{"audit", "publish", "done"})) << payload;
  }
  EXPECT_EQ(pool_->acquired, 0);
}

TEST_F(JobLifecycleTest, Leased_BackendThatCannotRunToolsFailsAndItsLeaseGoesBack) {
  make_lifecycle(Tenure::leased, true);
  store_->sessions["s1"] = record("s1", "alice");
  pool_->plain = true;
  const Outcome out = run_job(job("s1", "alice", shell("echo hi")));
  EXPECT_EQ(out.done[0].code(), Code::internal);
  EXPECT_EQ(pool_->acquired, 1);
  EXPECT_EQ(pool_->released, 1);
}

TEST_F(JobLifecycleTest, Leased_SessionEndedWhileTheJobRanIsNotWrittenBack) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::leased, true);
  store_->sessions["s1"] = record("s1", "alice");
  store_->forget_after_get = true;
  const Outcome out = run_job(job("s1", "alice", shell("echo kept > f.txt; cd /tmp")));
  EXPECT_TRUE(out.done[0].ok()) << out.done[0].message();
  EXPECT_EQ(out.results[0]["exitCode"], 0);
  EXPECT_EQ(store_->sessions.count("s1"), 0u) << "an update does not make the record again";
  EXPECT_EQ(order_, (std::vector<std::string>{"get", "update", "result", "publish", "done"}));
  EXPECT_TRUE(std::filesystem::exists(session_folder(root_, "s1") + "/f.txt")) << "the files are parked";
  EXPECT_EQ(pool_->released, 1);
}

TEST_F(JobLifecycleTest, Leased_UnknownSessionRunsWithoutRecordOrConversation) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::leased, true);
  const Outcome out = run_job(job("gone", "alice", shell("echo hi")));
  EXPECT_EQ(out.results[0]["output"], "hi\n");
  EXPECT_EQ(order_, (std::vector<std::string>{"get", "audit", "publish", "done"}));
  EXPECT_TRUE(store_->sessions.empty());
  EXPECT_EQ(pool_->released, 1);
}

// ---- Tenure::held (the orchestrator) --------------------------------------------------------------

TEST_F(JobLifecycleTest, Held_OneBackendForTheSessionsCallsAndStateSavedBeforeThePublish) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::held, true);
  const HoldPtr hold = hold_session("s1", "alice");
  const Outcome first = run_job(job("s1", "alice", shell("mkdir -p w && cd w && export Y=7")));
  EXPECT_TRUE(first.done[0].ok());
  // The record names the backend as soon as the session has it, then the call's state before the publish.
  EXPECT_EQ(order_, (std::vector<std::string>{"update", "update", "result", "publish", "done"}));
  const plugin::SessionRecord& saved = store_->sessions["s1"];
  EXPECT_EQ(saved.cwd, "w");
  EXPECT_EQ(saved.instance, "instance-1");
  EXPECT_EQ(saved.status, "active");
  EXPECT_FALSE(saved.backend.empty());
  EXPECT_EQ(saved.history.size(), 1u);

  const Outcome second = run_job(job("s1", "alice", shell("printf '%s|%s' \"${PWD#$HOME/}\" \"$Y\""), "call-2"));
  EXPECT_EQ(second.results[0]["output"], "w|7");
  EXPECT_EQ(pool_->acquired, 1) << "the session keeps its backend";
  EXPECT_EQ(pool_->released, 0);
  EXPECT_LT(last("update"), last("result"));
  EXPECT_LT(last("result"), last("publish"));
  EXPECT_LT(last("publish"), last("done"));
}

TEST_F(JobLifecycleTest, Held_WithoutPersistNothingIsSavedAndTheConversationStillIs) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::held, false);
  hold_session("s1", "alice");
  const Outcome out = run_job(job("s1", "alice", shell("cd /tmp && echo hi")));
  EXPECT_EQ(out.results[0]["output"], "hi\n");
  EXPECT_EQ(order_, (std::vector<std::string>{"result", "publish", "done"}));
  EXPECT_EQ(store_->updates, 0);
  EXPECT_EQ(conversation("s1").size(), 1u);
}

TEST_F(JobLifecycleTest, Held_AResultWaitsForAStoreThatDroppedItsConnectionAndIsInTheHistoryOnce) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::held, false);
  hold_session("s1", "alice");
  // What redis going away for a moment looks like: the client was not connected, then the breaker was open.
  store_->fail_appends = {Status(Code::unavailable, "redis not connected: connection lost"),
                          Status(Code::unavailable, "circuit breaker redis is open")};
  const Outcome out = run_job(job("s1", "alice", shell("echo hi")));
  EXPECT_EQ(out.results[0]["output"], "hi\n");
  EXPECT_EQ(order_, (std::vector<std::string>{"result", "result", "result", "publish", "done"}));
  ASSERT_EQ(conversation("s1").size(), 1u) << "a result the user saw is missing from the history";
  EXPECT_EQ(json::parse(conversation("s1")[0])["result"]["callId"], "call-1");
}

TEST_F(JobLifecycleTest, Held_ACallThatRanIsInTheAuditLogWithWhoWhatAndHowItEndedBeforeItsResult) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::held, false);
  hold_session("s1", "alice");
  json payload = shell("echo hi; exit 3");
  payload["requested"] = 1'765'000'000'000;
  run_job(job("s1", "alice", payload));
  ASSERT_EQ(store_->audit.size(), 1u);
  const plugin::AuditRecord& a = store_->audit[0];
  EXPECT_EQ(a.call_id, "call-1");
  EXPECT_EQ(a.user_id, "alice");
  EXPECT_EQ(a.session_id, "s1");
  EXPECT_EQ(a.instance, "instance-1");
  EXPECT_EQ(a.tool, "shell");
  EXPECT_EQ(json::parse(a.args), json({{"command", "echo hi; exit 3"}}));
  EXPECT_FALSE(a.args_truncated);
  EXPECT_TRUE(a.approved);
  EXPECT_EQ(a.outcome, "ok");
  EXPECT_EQ(a.exit_code, 3);
  EXPECT_EQ(a.output_bytes, 3u);
  EXPECT_EQ(a.attempt, 1u);
  EXPECT_EQ(a.requested_unix_ms, 1'765'000'000'000);
  EXPECT_GT(a.finished_unix_ms, a.requested_unix_ms);
  EXPECT_LT(last("result"), last("publish")) << "the result went out before its audit record was written";

  // Arguments past 4 KiB are cut, at a character, and said to be.
  run_job(job("s1", "alice", shell("echo " + std::string(5000, 'x') + " \u00e9"), "call-2"));
  ASSERT_EQ(store_->audit.size(), 2u);
  EXPECT_LE(store_->audit[1].args.size(), plugin::kAuditArgsMost);
  EXPECT_TRUE(store_->audit[1].args_truncated);
}

TEST_F(JobLifecycleTest, Held_AResultTheStoreRefusesForGoodIsPublishedWithoutWaiting) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::held, false);
  hold_session("s1", "alice");
  store_->fail_appends = {Status(Code::internal, "redis: OOM command not allowed")};
  const Outcome out = run_job(job("s1", "alice", shell("echo hi")));
  EXPECT_EQ(out.results[0]["output"], "hi\n");
  EXPECT_EQ(order_, (std::vector<std::string>{"result", "audit", "publish", "done"}))
      << "an error that will not pass was retried, or the audit record was not tried alone";
  EXPECT_TRUE(conversation("s1").empty());
  ASSERT_EQ(store_->audit.size(), 1u) << "the call the user heard of is missing from the audit log";
  EXPECT_EQ(store_->audit[0].call_id, "call-1");
}

TEST_F(JobLifecycleTest, Held_AcquireFailureFailsEveryCallWaitingForIt) {
  make_lifecycle(Tenure::held, true);
  hold_session("s1", "alice");
  pool_->fail = Status(Code::unavailable, "pool exhausted");
  Outcome a;
  Outcome b;
  start(job("s1", "alice", shell("echo a"), "call-a"), a);
  start(job("s1", "alice", shell("echo b"), "call-b"), b);
  ASSERT_TRUE(run_until([&] { return !a.done.empty() && !b.done.empty(); }));
  EXPECT_EQ(pool_->acquired, 1) << "one acquire for the calls waiting";
  EXPECT_EQ(a.done[0].code(), Code::unavailable);
  EXPECT_EQ(b.done[0].code(), Code::unavailable);
  EXPECT_EQ(b.results[0]["error"]["message"], "pool exhausted");
  EXPECT_EQ(conversation("s1").size(), 2u);
  EXPECT_EQ(store_->updates, 0);
}

TEST_F(JobLifecycleTest, Held_SessionGoneBeforeTheJobRanIsUnavailableAndNotAppended) {
  make_lifecycle(Tenure::held, true);
  const Outcome out = run_job(job("nobody-holds-this", "alice", shell("echo hi")));
  EXPECT_EQ(out.done[0].code(), Code::unavailable);
  EXPECT_EQ(out.results[0]["error"]["message"], "session ended before the job ran");
  EXPECT_EQ(order_, (std::vector<std::string>{"audit", "publish", "done"}));
  EXPECT_EQ(pool_->acquired, 0);
}

TEST_F(JobLifecycleTest, Held_MalformedJobReadsAndWritesNothing) {
  make_lifecycle(Tenure::held, true);
  hold_session("s1", "alice");
  const Outcome out = run_job(job("s1", "alice", json("[")));
  EXPECT_EQ(out.done[0].code(), Code::bad_request);
  EXPECT_EQ(order_, (std::vector<std::string>{"audit", "publish", "done"}));
  EXPECT_EQ(pool_->acquired, 0);
}

TEST_F(JobLifecycleTest, Held_SessionEndedMidRunPublishesOnceAndSavesNothingAfter) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::held, true);
  const HoldPtr hold = hold_session("s1", "alice");
  Outcome out;
  start(job("s1", "alice", shell("touch started; sleep 15; echo late")), out);
  ASSERT_TRUE(run_until([&] {
    return hold->backend && std::filesystem::exists(hold->workspace + "/started");
  }));
  const int updates_before = store_->updates;
  on_strand(hold, [&] { lifecycle_->end(hold); });
  ASSERT_TRUE(run_until([&] { return !out.done.empty(); }));
  run_for(20ms);
  ASSERT_EQ(out.done.size(), 1u);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(store_->updates, updates_before) << "nothing of an ended session is saved";
  EXPECT_EQ(pool_->released, 1) << "the backend goes back once, by the end";
  EXPECT_LT(out.results[0]["durationMs"].get<int>(), 10000) << out.results[0].dump();

  // Calls after the end fail without a backend.
  const Outcome after = run_job(job("s1", "alice", shell("echo hi"), "call-2"));
  EXPECT_EQ(after.done[0].code(), Code::unavailable);
  EXPECT_EQ(pool_->acquired, 1);
}

TEST_F(JobLifecycleTest, Held_ParkedSessionGetsItsFilesAndStateOnItsNextBackend) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::held, true);
  const HoldPtr hold = hold_session("s1", "alice");
  run_job(job("s1", "alice", shell("mkdir -p d && cd d && export Z=9 && echo hi > f")));
  bool parked = false;
  on_strand(hold, [&] { parked = lifecycle_->park(hold); });
  ASSERT_TRUE(parked);
  EXPECT_EQ(pool_->released, 1);
  EXPECT_TRUE(std::filesystem::exists(session_folder(root_, "s1") + "/d/f"));
  EXPECT_TRUE(hold->restore);
  EXPECT_EQ(hold->workspace, session_folder(root_, "s1"));

  const Outcome next = run_job(job("s1", "alice", shell("printf '%s|%s|' \"${PWD#$HOME/}\" \"$Z\"; cat f"), "call-2"));
  EXPECT_EQ(next.results[0]["output"], "d|9|hi\n") << next.results[0].dump();
  EXPECT_EQ(pool_->acquired, 2);
  EXPECT_FALSE(std::filesystem::exists(session_folder(root_, "s1"))) << "the emptied folder is removed";
  EXPECT_EQ(store_->sessions["s1"].workspace, hold->workspace);
  EXPECT_NE(hold->workspace, session_folder(root_, "s1"));
}

TEST_F(JobLifecycleTest, Held_ParkWithoutPersistKeepsTheBackend) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::held, false);
  const HoldPtr hold = hold_session("s1", "alice");
  run_job(job("s1", "alice", shell("echo hi > f")));
  bool parked = true;
  on_strand(hold, [&] { parked = lifecycle_->park(hold); });
  EXPECT_FALSE(parked);
  EXPECT_EQ(pool_->released, 0);
}

TEST_F(JobLifecycleTest, JobsInFlightCountsFromRunUntilDone) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  make_lifecycle(Tenure::held, false);
  hold_session("s1", "alice");
  Outcome out;
  start(job("s1", "alice", shell("echo hi")), out);
  EXPECT_EQ(lifecycle_->in_flight(), 1u);
  ASSERT_TRUE(run_until([&] { return !out.done.empty(); }));
  EXPECT_EQ(lifecycle_->in_flight(), 0u);
}

// ---- Issue 15, finding 3: bytes that are not UTF-8 in a session's exports and cwd, with store=redis --
// Saving them threw nlohmann's type_error inside the store's noexcept update_session: the orchestrator
// (held) or the worker (leased, once per redelivery of the job) ended. Now they go to redis byte-safe
// and come back exact on the next backend.

class JobLifecycleRedis : public JobLifecycleTest, public ::testing::WithParamInterface<Tenure> {};

TEST_P(JobLifecycleRedis, ExportsAndCwdThatAreNotUtf8SurviveTheStoreAndComeBackExact) {
  if (!backends_here()) {
    GTEST_SKIP() << env_.skip_reason;
  }
  if (!use_redis_store("s1", "alice")) {
    GTEST_SKIP() << "redis-server is not installed (./scripts/setup.sh installs it)";
  }
  const bool held = GetParam() == Tenure::held;
  make_lifecycle(GetParam(), true);
  HoldPtr hold;
  if (held) {
    hold = hold_session("s1", "alice");
  }
  const Outcome first = run_job(job("s1", "alice", shell("mkdir $'d\\376' && cd $'d\\376' && export X=$'\\377'")));
  ASSERT_EQ(first.results[0]["exitCode"], 0) << bytes::dump(first.results[0]);
  if (held) {
    // Next call on a fresh backend, as after a disconnect or on another instance.
    on_strand(hold, [&] { ASSERT_TRUE(lifecycle_->park(hold)); });
  }
  const Outcome second = run_job(job("s1", "alice", shell("printf '%s|' \"$X\"; basename \"$PWD\""), "call-2"));
  std::string output;
  ASSERT_TRUE(bytes::from_json(second.results[0]["output"], output)) << bytes::dump(second.results[0]);
  EXPECT_EQ(output, "\xff|d\xfe\n");
  EXPECT_EQ(second.results[0]["output"], (json{{"base64", bytes::base64_encode("\xff|d\xfe\n")}}));
}

INSTANTIATE_TEST_SUITE_P(Tenures, JobLifecycleRedis, ::testing::Values(Tenure::held, Tenure::leased),
                         [](const auto& p) { return p.param == Tenure::held ? "Held" : "Leased"; });

}  // namespace
}  // namespace phasekit::app
