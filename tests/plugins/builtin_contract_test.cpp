// The built-in plugins through the same loader path as file plugins, and what each promises.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <map>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"

namespace phasekit::plugin_host {
namespace {

using namespace std::chrono_literals;

/// A backend driver that makes in-memory backends, counting what it was asked.
class FakeDriver final : public plugin::BackendDriver {
 public:
  explicit FakeDriver(boost::asio::io_context& ioc) : ioc_(ioc) {}
  class FakeBackend final : public plugin::Backend {
   public:
    explicit FakeBackend(std::string id) : id_(std::move(id)) {}
    [[nodiscard]] std::string_view id() const noexcept override { return id_; }
    [[nodiscard]] bool alive() const noexcept override { return true; }

   private:
    std::string id_;
  };
  [[nodiscard]] std::string_view name() const noexcept override { return "fake"; }
  void create(std::function<void(Status, plugin::BackendPtr)> done) noexcept override {
    ++created;
    const std::string id = "b" + std::to_string(created);
    boost::asio::post(ioc_, [done = std::move(done), id] { done(Status(), std::make_shared<FakeBackend>(id)); });
  }
  void reset(plugin::BackendPtr, std::function<void(Status)> done) noexcept override {
    boost::asio::post(ioc_, [done = std::move(done)] { done(Status()); });
  }
  void check(plugin::BackendPtr, std::function<void(Status)> done) noexcept override {
    boost::asio::post(ioc_, [done = std::move(done)] { done(Status()); });
  }
  void destroy(plugin::BackendPtr, std::function<void()> done) noexcept override {
    ++destroyed;
    boost::asio::post(ioc_, std::move(done));
  }
  int created = 0;
  int destroyed = 0;

 private:
  boost::asio::io_context& ioc_;
};

class Builtins : public ::testing::Test {
 protected:
  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds deadline = 5s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred() && std::chrono::steady_clock::now() < until) {
      if (ioc_.stopped()) {
        ioc_.restart();  // run_one_for stops the context whenever it runs out of work
      }
      ioc_.run_one_for(10ms);
    }
    return pred();
  }

  template <class T>
  InstancePtr<T> make(phk_kind kind, std::string_view name, std::string_view json = "{}") {
    return instantiate<T>(Loader({}).find(kind, name), host_, json);
  }

  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  SystemClock clock_;
  boost::asio::io_context ioc_;
  FakeDriver driver_{ioc_};
  BasicHost host_{logs_, metrics_, clock_, ioc_.get_executor(), &driver_};
};

TEST_F(Builtins, EveryBuiltinRefusesAnUnknownOption) {
  for (const auto& [kind, name] : std::vector<std::pair<phk_kind, const char*>>{{PHK_KIND_POOL, "none"},
                                                                               {PHK_KIND_QUEUE, "inproc"},
                                                                               {PHK_KIND_STORE, "memory"},
                                                                               {PHK_KIND_COMPRESSION, "none"},
                                                                               {PHK_KIND_AUTOSCALER, "none"}}) {
    const Candidate c = Loader({}).find(kind, name);
    try {
      void* p = create_instance(c, &host_, R"({"bogus": 1})");
      c.descriptor->destroy(p);
      ADD_FAILURE() << name << " accepted an unknown option";
    } catch (const LoadError& e) {
      EXPECT_NE(std::string(e.what()).find("bogus: unknown key"), std::string::npos) << e.what();
    }
  }
}

TEST_F(Builtins, PoolNone_ColdBackendPerAcquireDestroyedOnRelease) {
  auto pool = make<plugin::PoolStrategy>(PHK_KIND_POOL, "none", R"({"max_size": 2})");
  std::vector<plugin::Lease> leases;
  std::vector<Status> statuses;
  for (int i = 0; i < 3; ++i) {
    pool->acquire({"u", "s"}, [&](Status s, plugin::Lease l) {
      statuses.push_back(s);
      leases.push_back(std::move(l));
    });
  }
  ASSERT_TRUE(run_until([&] { return statuses.size() == 3; }));
  int ok = 0;
  for (std::size_t i = 0; i < statuses.size(); ++i) {
    if (statuses[i].ok()) {
      ++ok;
      ASSERT_TRUE(leases[i].backend);
      EXPECT_EQ(leases[i].source, plugin::AcquireSource::cold);
    } else {
      EXPECT_EQ(statuses[i].code(), Code::unavailable);
      EXPECT_EQ(statuses[i].message(), "all 2 backends are in use");
    }
  }
  EXPECT_EQ(ok, 2) << "max_size is respected";
  EXPECT_EQ(pool->stats().active, 2u);
  for (auto& l : leases) {
    if (l.backend) {
      pool->release(l.backend, true);
    }
  }
  leases.clear();
  ASSERT_TRUE(run_until([&] { return pool->stats().total == 0; }));
  EXPECT_EQ(driver_.destroyed, 2);
  EXPECT_EQ(pool->stats().acquired_cold, 2u);
  bool down = false;
  pool->async_shutdown([&] { down = true; });
  ASSERT_TRUE(run_until([&] { return down; }));
  Status after;
  bool called = false;
  pool->acquire({"u", "s"}, [&](Status s, plugin::Lease) {
    after = s;
    called = true;
  });
  ASSERT_TRUE(run_until([&] { return called; }));
  EXPECT_EQ(after.code(), Code::unavailable);
}

TEST_F(Builtins, PoolNone_WithoutADriverIsUnavailable) {
  BasicHost no_backends{logs_, metrics_, clock_, ioc_.get_executor(), nullptr};
  auto pool = instantiate<plugin::PoolStrategy>(Loader({}).find(PHK_KIND_POOL, "none"), no_backends, "{}");
  Status got;
  bool called = false;
  pool->acquire({"u", "s"}, [&](Status s, plugin::Lease) {
    got = s;
    called = true;
  });
  ASSERT_TRUE(run_until([&] { return called; }));
  EXPECT_EQ(got.code(), Code::unavailable);
}

TEST_F(Builtins, QueueInproc_RunsEveryJobOnceWithinConcurrencyAndDeliversEvents) {
  auto queue = make<plugin::QueueStrategy>(PHK_KIND_QUEUE, "inproc");
  std::vector<plugin::JobEvent> events;
  queue->subscribe("s1", [&](plugin::JobEvent e) { events.push_back(std::move(e)); });
  int queued = 0;
  for (int i = 0; i < 20; ++i) {
    queue->enqueue({"job" + std::to_string(i), "u", i % 2 == 0 ? "s1" : "s2", "{}", 1000, 1, 0, {}, {}}, [&](Status s) {
      EXPECT_TRUE(s.ok());
      ++queued;
    });
  }
  ASSERT_TRUE(run_until([&] { return queued == 20; }));
  EXPECT_EQ(queue->stats().depth, 20u) << "nothing runs before consume()";

  int running = 0;
  int max_running = 0;
  std::map<std::string, int> runs;
  std::vector<plugin::QueueStrategy::JobDone> pending;
  queue->consume(3, [&](plugin::Job job, plugin::QueueStrategy::EventSink sink, plugin::QueueStrategy::JobDone done) {
    ++running;
    max_running = std::max(max_running, running);
    ++runs[job.id];
    sink({job.id, job.session_id, plugin::JobEventType::result, R"({"exitCode":0})"});
    pending.push_back(std::move(done));
  });
  // Hold every job until three run at once (or all have started): only the limit can stop a fourth.
  ASSERT_TRUE(run_until([&] {
    if (pending.size() >= 3 || (runs.size() == 20 && !pending.empty())) {
      auto done = std::move(pending.front());
      pending.erase(pending.begin());
      --running;
      done(Status());
      done(Status(Code::internal, "a second call is ignored"));
    }
    return runs.size() == 20 && running == 0;
  }));
  EXPECT_EQ(max_running, 3);
  for (const auto& [id, n] : runs) {
    EXPECT_EQ(n, 1) << id;
  }
  const auto stats = queue->stats();
  EXPECT_EQ(stats.completed, 20u);
  EXPECT_EQ(stats.failed, 0u);
  ASSERT_TRUE(run_until([&] { return events.size() == 10; }));
  for (const auto& e : events) {
    EXPECT_EQ(e.session_id, "s1") << "only the subscribed session's events";
  }
}

TEST_F(Builtins, QueueInproc_RefusesBeyondCapacityAndAfterShutdown) {
  auto queue = make<plugin::QueueStrategy>(PHK_KIND_QUEUE, "inproc", R"({"capacity": 2})");
  std::vector<Status> got;
  for (int i = 0; i < 3; ++i) {
    queue->enqueue({"j" + std::to_string(i), "u", "s", "{}", 1000, 1, 0, {}, {}}, [&](Status s) { got.push_back(s); });
  }
  ASSERT_TRUE(run_until([&] { return got.size() == 3; }));
  EXPECT_TRUE(got[0].ok());
  EXPECT_TRUE(got[1].ok());
  EXPECT_EQ(got[2].code(), Code::unavailable);
  EXPECT_EQ(queue->stats().rejected, 1u);

  // Shutdown waits for the acknowledged jobs to finish.
  std::vector<plugin::QueueStrategy::JobDone> pending;
  queue->consume(1, [&](plugin::Job, plugin::QueueStrategy::EventSink, plugin::QueueStrategy::JobDone done) {
    pending.push_back(std::move(done));
  });
  ASSERT_TRUE(run_until([&] { return pending.size() == 1; }));
  bool down = false;
  queue->async_shutdown([&] { down = true; });
  int finished = 0;
  ASSERT_TRUE(run_until([&] {
    EXPECT_FALSE(down && finished < 2) << "shut down with a job unfinished";
    if (!pending.empty()) {
      auto done = std::move(pending.front());
      pending.erase(pending.begin());
      ++finished;
      done(Status());
    }
    return down;
  }));
  EXPECT_EQ(finished, 2);
  Status late;
  bool called = false;
  queue->enqueue({"late", "u", "s", "{}", 1000, 1, 0, {}, {}}, [&](Status s) {
    late = s;
    called = true;
  });
  ASSERT_TRUE(run_until([&] { return called; }));
  EXPECT_EQ(late.code(), Code::unavailable);
}

TEST_F(Builtins, StoreMemory_KeepsSessionsAndConversationsUntilRemoved) {
  auto store = make<plugin::StoreStrategy>(PHK_KIND_STORE, "memory");
  plugin::SessionRecord record;
  record.id = "s1";
  record.user_id = "u1";
  record.status = "active";
  record.cwd = "work";
  record.env = {{"A", "1"}};
  record.history = {"cd work"};
  record.updated_unix_ms = 42;
  int done = 0;
  store->put_session(record, [&](Status s) {
    EXPECT_TRUE(s.ok());
    ++done;
  });
  store->append_conversation("s1", "first", [&](Status s) {
    EXPECT_TRUE(s.ok());
    ++done;
  });
  store->append_conversation("s1", "second", [&](Status) { ++done; });
  ASSERT_TRUE(run_until([&] { return done == 3; }));

  plugin::SessionRecord got;
  std::vector<std::string> conversation;
  store->get_session("s1", [&](Status s, plugin::SessionRecord r) {
    EXPECT_TRUE(s.ok());
    got = std::move(r);
    ++done;
  });
  store->read_conversation("s1", {}, [&](Status, plugin::ConversationPage page) {
    conversation = std::move(page.entries);
    ++done;
  });
  ASSERT_TRUE(run_until([&] { return done == 5; }));
  EXPECT_EQ(got, record);
  EXPECT_EQ(conversation, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(store->stats().conversation_entries, 2u);
  EXPECT_EQ(store->stats().bytes, 11u);

  // Partial writes: the status half leaves the shell half alone, and the other way round.
  plugin::SessionUpdate status_only;
  status_only.status = "detached";
  status_only.instance = "host:2";
  status_only.updated_unix_ms = 50;
  plugin::SessionUpdate shell_only;
  shell_only.shell = true;
  shell_only.cwd = "work/sub";
  shell_only.history = {"cd work", "cd sub"};
  shell_only.updated_unix_ms = 60;
  Status unknown;
  store->update_session("s1", status_only, [&](Status s) {
    EXPECT_TRUE(s.ok());
    ++done;
  });
  store->update_session("s1", shell_only, [&](Status s) {
    EXPECT_TRUE(s.ok());
    ++done;
  });
  store->update_session("nobody", status_only, [&](Status s) {
    unknown = s;
    ++done;
  });
  store->get_session("s1", [&](Status, plugin::SessionRecord r) {
    got = std::move(r);
    ++done;
  });
  ASSERT_TRUE(run_until([&] { return done == 9; }));
  EXPECT_EQ(unknown.code(), Code::not_found);
  EXPECT_EQ(got.status, "detached");
  EXPECT_EQ(got.instance, "host:2");
  EXPECT_EQ(got.cwd, "work/sub");
  EXPECT_EQ(got.env, (std::vector<std::pair<std::string, std::string>>{}));
  EXPECT_EQ(got.history, (std::vector<std::string>{"cd work", "cd sub"}));
  EXPECT_EQ(got.user_id, "u1");
  EXPECT_EQ(got.updated_unix_ms, 60);
  done = 5;

  store->remove_session("s1", [&](Status s) {
    EXPECT_TRUE(s.ok());
    ++done;
  });
  Status missing;
  store->get_session("s1", [&](Status s, plugin::SessionRecord) {
    missing = s;
    ++done;
  });
  ASSERT_TRUE(run_until([&] { return done == 7; }));
  EXPECT_EQ(missing.code(), Code::not_found);
  EXPECT_EQ(store->stats().sessions, 0u);
  EXPECT_EQ(store->stats().bytes, 0u);
}

TEST_F(Builtins, CompressionNone_RoundTripsBytesUnchanged) {
  auto c = make<plugin::CompressionStrategy>(PHK_KIND_COMPRESSION, "none");
  const std::string data("binary\0data\xff", 12);
  std::string packed;
  std::string unpacked;
  ASSERT_TRUE(c->compress(data, packed).ok());
  ASSERT_TRUE(c->decompress(packed, unpacked).ok());
  EXPECT_EQ(unpacked, data);
}

TEST_F(Builtins, AutoscalerNone_KeepsTheCurrentCount) {
  auto a = make<plugin::AutoscalerStrategy>(PHK_KIND_AUTOSCALER, "none");
  plugin::ScaleInput in;
  in.current_replicas = 4;
  EXPECT_EQ(a->evaluate(in).desired_replicas, 4);
  EXPECT_EQ(a->evaluate(in).limited_by, "scalingDisabled");
  in.current_replicas = 0;
  EXPECT_EQ(a->evaluate(in).desired_replicas, 0);
}

}  // namespace
}  // namespace phasekit::plugin_host
