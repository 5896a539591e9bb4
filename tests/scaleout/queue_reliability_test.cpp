// The redis queue with real phasekit-worker processes against a real redis-server: 10,000 jobs through
// 4 workers, one of them killed with SIGKILL a fifth of the way through while it surely holds jobs: it
// runs 10 jobs, one per slot, that wait for a gate the test opens only after the kill. Every job must
// end exactly once (one result event each, and redis's own record of it done or failed); none lost,
// none completed twice.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <cstdio>
#include <thread>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "support/child_process.hpp"
#include "support/redis_server.hpp"
#include "support/run_process.hpp"  // lines_of

namespace phasekit {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kJobs = 10000;
constexpr int kSessions = 100;
constexpr int kWorkers = 4;
constexpr int kSlots = 10;        // WORKER_CONCURRENCY
constexpr int kSlow = kSlots;      // jobs that wait for the gate: they fill the killed worker's slots
constexpr int kWindow = 256;       // enqueues in flight

// Runs an io_context on its own thread; stops and joins it when it goes out of scope. Declare it after
// everything its handlers touch: an ASSERT's early return then stops it first, instead of leaving a
// joinable std::thread behind (std::terminate, and the test's redis-server and workers never stopped).
class IoThread {
 public:
  explicit IoThread(boost::asio::io_context& ioc)
      : ioc_(ioc), work_(boost::asio::make_work_guard(ioc)), thread_([&ioc] { ioc.run(); }) {}
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;
  ~IoThread() {
    work_.reset();
    ioc_.stop();
    thread_.join();
  }

 private:
  boost::asio::io_context& ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

class QueueReliability : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::RedisServer::available()) {
      GTEST_SKIP() << "redis-server is not installed (./scripts/setup.sh installs it)";
    }
    dir_ = std::filesystem::temp_directory_path() / ("phasekit-queue-" + std::to_string(::getpid()));
    // Outside /tmp, which a sandbox sees as its own empty tmpfs; / is visible read-only in it.
    // Where the sandboxes can see it: their /tmp, /var/tmp and /run are their own, the rest of the host
    // is theirs to read.
    gate_ = std::filesystem::path("/var/lib/phasekit-tests") / ("queue-gate-" + std::to_string(::getpid()));
    std::filesystem::create_directories(gate_);
    ::chmod(gate_.c_str(), 0755);
    std::filesystem::create_directories(dir_ / "workspaces");
    ::chmod(dir_.c_str(), 0711);
    ::chmod((dir_ / "workspaces").c_str(), 0711);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    std::filesystem::remove_all(gate_, ec);
    std::filesystem::remove(gate_.parent_path(), ec);  // when no other run uses it
  }

  std::map<std::string, std::string> worker_env(const test::RedisServer& redis) const {
    return {{"PATH", "/usr/local/bin:/usr/bin:/bin"},
            {"ENABLE_WORKER_MODE", "true"},
            {"REDIS_URL", redis.url()},
            {"WORKSPACE_ROOT", (dir_ / "workspaces").string()},
            {"ENABLE_CONTAINER_POOL", "true"},
            {"POOL_MIN_SIZE", "10"},
            {"WORKER_CONCURRENCY", std::to_string(kSlots)},
            {"BIND_ADDRESS", "127.0.0.1"},
            {"PORT", "0"},
            {"ADMIN_PORT", "0"},  // several workers at once: none on the default 3001
            {"LOG_LEVEL", "warn"}};
  }

  std::filesystem::path dir_;
  std::filesystem::path gate_;  // the slow jobs wait until gate_/open exists
};

TEST_F(QueueReliability, TenThousandJobsFourWorkersOneKilledEveryJobEndsExactlyOnce) {
  test::RedisServer redis;
  std::vector<std::unique_ptr<test::ChildProcess>> workers;
  auto start_worker = [&] {
    const auto n = std::to_string(workers.size());
    workers.push_back(std::make_unique<test::ChildProcess>(PHASEKIT_WORKER_BIN, std::vector<std::string>{},
                                                            worker_env(redis), (dir_ / ("worker-" + n + ".log")).string()));
  };
  auto workers_up = [&](std::size_t n) {
    return test::poll_until(
        [&] { return redis.cli({"SCARD", "phasekit:workers"}) == std::to_string(n) + "\n"; }, 60s);
  };

  // This test plays the orchestrator: the queue plugin as the orchestrator loads it.
  observe::LogSink logs(STDERR_FILENO, LogLevel::warn);
  observe::MetricsRegistry metrics;
  plugin_host::SystemClock clock;
  // What the handlers touch, declared before the io thread that runs them.
  std::mutex mutex;
  std::map<std::string, int> results;  // job id -> result events seen
  std::map<std::string, int> failures;
  std::string first_failure;  // the result of the first job that failed, to say why
  // The write_file jobs' throughput, from their first result to their last (the slow jobs excluded).
  std::optional<std::chrono::steady_clock::time_point> first_fast;
  std::chrono::steady_clock::time_point last_fast;
  std::atomic<int> queued{0};
  std::atomic<int> refused{0};
  std::function<void(int)> submit;
  boost::asio::io_context ioc;
  plugin_host::BasicHost host(logs, metrics, clock, ioc.get_executor());
  plugin_host::InstancePtr<plugin::QueueStrategy> queue;  // destroyed after the io thread has stopped
  const IoThread io(ioc);
  {
    const plugin_host::Loader loader({PHASEKIT_PLUGIN_DIR});
    queue = plugin_host::instantiate<plugin::QueueStrategy>(
        loader.find(PHK_KIND_QUEUE, "redis"), host,
        json{{"redis_url", redis.url()}, {"job_timeout_ms", 60000}}.dump());

    std::vector<std::string> sessions;
    for (int s = 0; s < kSessions; ++s) {
      sessions.push_back("s" + std::to_string(s));
    }
    for (int s = 0; s < kSlow; ++s) {
      sessions.push_back("slow" + std::to_string(s));
    }
    for (const auto& session : sessions) {
      queue->subscribe(session, [&](plugin::JobEvent e) {
        if (e.type != plugin::JobEventType::result) {
          return;
        }
        const json r = json::parse(e.data, nullptr, false);
        const std::lock_guard lock(mutex);
        ++results[e.job_id];
        if (e.job_id.rfind("job-", 0) == 0) {
          last_fast = std::chrono::steady_clock::now();
          if (!first_fast) {
            first_fast = last_fast;
          }
        }
        if (r.is_discarded() || r.contains("error")) {
          if (failures.empty()) {
            first_failure = e.data.substr(0, 500);
          }
          ++failures[e.job_id];
        }
      });
    }
    // Subscriptions are asynchronous: give the subscriber its channels before results can arrive.
    ASSERT_TRUE(test::poll_until([&] { return redis.cli({"PUBSUB", "NUMSUB", "phasekit:session:s99"})
                                                  .find("\n1") != std::string::npos; },
                                 10s));

    // Job i < kSlow waits for the gate (its own session); the others append their number to their session's file.
    auto job_of = [this](int i) {
      plugin::Job job;
      job.timeout_ms = 60000;
      if (i < kSlow) {
        job.id = "slow-" + std::to_string(i);
        job.user_id = "slow";
        job.session_id = "slow" + std::to_string(i);
        job.payload = json{{"tool", "shell"},
                           {"args", {{"command", "until [ -e " + (gate_ / "open").string() + " ]; do sleep 0.5; done"}}}}
                          .dump();
        return job;
      }
      i -= kSlow;
      job.id = "job-" + std::to_string(i);
      job.user_id = "u" + std::to_string(i % kSessions);
      job.session_id = "s" + std::to_string(i % kSessions);
      job.payload = json{{"tool", "write_file"},
                         {"args", {{"path", "log.txt"}, {"content", std::to_string(i) + "\n"}, {"append", true}}}}
                        .dump();
      return job;
    };
    // At most kWindow enqueues in flight, as an orchestrator's users would have them: 10,000 pipelined at
    // once can wait past the redis client's 3 s command timeout on a loaded 2-core machine.
    submit = [&](int i) {
      if (i < kSlow + kJobs) {
        queue->enqueue(job_of(i), [&, i](Status s) {
          (s.ok() ? queued : refused)++;
          if (i >= kSlow) {
            submit(i + kWindow);
          }
        });
      }
    };

    // Worker 0 alone first: it takes every slow job, one per slot, and holds them while it is killed.
    start_worker();
    ASSERT_TRUE(workers_up(1)) << workers[0]->log();
    for (int i = 0; i < kSlow; ++i) {
      submit(i);
    }
    const std::string pid = ":" + std::to_string(workers[0]->pid()) + ":";
    auto slow_jobs_running = [&] {
      int n = 0;
      for (const auto& w : test::lines_of(redis.cli({"SMEMBERS", "phasekit:workers"}))) {
        if (w.find(pid) == std::string::npos) {
          continue;
        }
        for (const auto& id : test::lines_of(redis.cli({"LRANGE", "phasekit:processing:" + w, "0", "-1"}))) {
          n += id.rfind("slow-", 0) == 0 &&
               redis.cli({"HMGET", "phasekit:job:" + id, "state", "worker"}) == "running\n" + w + "\n";
        }
      }
      return n;
    };
    ASSERT_TRUE(test::poll_until([&] { return slow_jobs_running() == kSlow; }, 60s)) << workers[0]->log();

    // The others, then the 10,000 writes; worker 0 is killed once a fifth of them are done.
    for (int i = 1; i < kWorkers; ++i) {
      start_worker();
    }
    ASSERT_TRUE(workers_up(kWorkers));
    for (int i = kSlow; i < kSlow + kWindow; ++i) {
      submit(i);
    }
    auto done_count = [&] {
      const std::lock_guard lock(mutex);
      return results.size();
    };
    ASSERT_TRUE(test::poll_until([&] { return done_count() >= kJobs / 5; }, 120s))
        << "only " << done_count() << " results; worker log:\n"
        << workers[1]->log();
    ASSERT_EQ(slow_jobs_running(), kSlow) << "worker 0 should still be running its slow jobs\n" << workers[0]->log();
    ASSERT_TRUE(workers[0]->running()) << workers[0]->log();
    workers[0]->stop(SIGKILL);
    std::ofstream(gate_ / "open").put('\n');  // the slow jobs, redelivered to the others, may now end
    ASSERT_TRUE(test::poll_until([&] { return queued + refused == kJobs + kSlow; }, 120s));
    ASSERT_EQ(refused.load(), 0);

    ASSERT_TRUE(test::poll_until([&] { return done_count() >= static_cast<std::size_t>(kJobs + kSlow); }, 240s))
        << "results for " << done_count() << " of " << kJobs + kSlow << " jobs\n"
        << workers[1]->log();
    {
      // For docs/capacity.md (bench/queue_throughput.sh): end-to-end throughput of the write_file jobs.
      const std::lock_guard lock(mutex);
      const double seconds = std::chrono::duration<double>(last_fast - first_fast.value()).count();
      std::printf("queue: %d write_file jobs in %.2f s = %.0f jobs/s end to end (%d workers x %d slots, one "
                  "SIGKILLed while it ran jobs)\n",
                  kJobs, seconds, kJobs / seconds, kWorkers, kSlots);
    }
    const std::lock_guard lock(mutex);
    for (const auto& [id, n] : results) {
      ASSERT_EQ(n, 1) << id << " completed " << n << " times";
    }
    EXPECT_TRUE(failures.empty()) << failures.size() << " jobs failed, e.g. " << failures.begin()->first << ": " << first_failure;
    const auto stats = redis.cli({"HGETALL", "phasekit:stats"});
    const auto lines = test::lines_of(stats);
    std::map<std::string, long> counters;
    for (std::size_t i = 0; i + 1 < lines.size(); i += 2) {
      counters[lines[i]] = std::stol(lines[i + 1]);
    }
    EXPECT_EQ(counters["done"] + counters["failed"], kJobs + kSlow) << stats;
    EXPECT_GE(counters["redelivered"], kSlow) << "the killed worker's slow jobs were not redelivered\n" << stats;
    EXPECT_EQ(redis.cli({"LLEN", "phasekit:jobs"}), "0\n");
    // Every job's own record says it ended.
    std::size_t unfinished = 0;
    for (int i = 0; i < kJobs; i += 97) {
      const auto state = redis.cli({"HGET", "phasekit:job:job-" + std::to_string(i), "state"});
      unfinished += (state != "done\n" && state != "failed\n") ? 1 : 0;
    }
    EXPECT_EQ(unfinished, 0u);
    // And the data: every write of a session is in its file (a redelivered one may be there twice).
    for (int s = 0; s < kSessions; s += 9) {
      std::ifstream in(dir_ / "workspaces" / "sessions" / ("s" + std::to_string(s)) / "log.txt");
      std::set<int> seen;
      for (int n; in >> n;) {
        seen.insert(n);
      }
      EXPECT_EQ(seen.size(), static_cast<std::size_t>(kJobs / kSessions)) << "session s" << s;
    }
  }
  for (auto& w : workers) {
    if (w->running()) {
      const int status = w->stop(SIGTERM, 30s);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a worker did not stop cleanly:\n" << w->log();
    }
  }
}

TEST_F(QueueReliability, MalformedJobRecordsEndFailedAndTheQueueGoesOn) {
  test::RedisServer redis;
  test::ChildProcess worker(PHASEKIT_WORKER_BIN, {}, worker_env(redis), (dir_ / "worker.log").string());
  observe::LogSink logs(STDERR_FILENO, LogLevel::warn);
  observe::MetricsRegistry metrics;
  plugin_host::SystemClock clock;
  std::mutex mutex;
  std::map<std::string, std::string> results;
  boost::asio::io_context ioc;
  plugin_host::BasicHost host(logs, metrics, clock, ioc.get_executor());
  plugin_host::InstancePtr<plugin::QueueStrategy> queue;  // destroyed after the io thread has stopped
  const IoThread io(ioc);
  const plugin_host::Loader loader({PHASEKIT_PLUGIN_DIR});
  queue = plugin_host::instantiate<plugin::QueueStrategy>(loader.find(PHK_KIND_QUEUE, "redis"), host,
                                                          json{{"redis_url", redis.url()}}.dump());
  queue->subscribe("s", [&](plugin::JobEvent e) {
    if (e.type == plugin::JobEventType::result) {
      const std::lock_guard lock(mutex);
      results[e.job_id] = e.data;
    }
  });
  ASSERT_TRUE(test::poll_until(
      [&] { return redis.cli({"PUBSUB", "NUMSUB", "phasekit:session:s"}).find("\n1") != std::string::npos; },
      10s));
  // Hand-written records: a timeout that is no number and no attempt, and an id with no record at all.
  redis.cli({"HSET", "phasekit:job:bad", "user", "u", "session", "s", "payload", "{{{", "timeout",
                           "soon", "state", "queued", "channel", "phasekit:session:s"});
  redis.cli({"LPUSH", "phasekit:jobs", "bad", "missing"});
  plugin::Job good;
  good.id = "good";
  good.user_id = "u";
  good.session_id = "s";
  good.payload = json{{"tool", "list_dir"}, {"args", json::object()}}.dump();
  good.timeout_ms = 10000;
  queue->enqueue(std::move(good), [](Status) {});
  auto result_of = [&](const std::string& id) {
    const std::lock_guard lock(mutex);
    const auto it = results.find(id);
    return it == results.end() ? json() : json::parse(it->second, nullptr, false);
  };
  ASSERT_TRUE(test::poll_until([&] { return !result_of("bad").is_null() && !result_of("good").is_null(); }, 30s))
      << worker.log();
  EXPECT_EQ(result_of("bad")["error"]["code"], "BAD_REQUEST");
  EXPECT_EQ(result_of("good")["exitCode"], 0) << result_of("good").dump();
  EXPECT_EQ(redis.cli({"HGET", "phasekit:job:bad", "state"}), "failed\n");
  EXPECT_EQ(redis.cli({"LLEN", "phasekit:jobs"}), "0\n");
  EXPECT_TRUE(worker.running()) << worker.log();
}

// ---- the ends of jobs after a redis restart or a lost subscriber ----
// A redis restart forgets up to its last second of writes (appendfsync everysec), and pub/sub delivers
// at most once. These tests make redis forget by hand what a restart would, and drop the connections a
// restart drops (CLIENT KILL), then check that every job still ends once (drills.redis_restart runs the
// real restart).

/// The queue plugin as an orchestrator loads it, with the results its sessions' sinks got.
class Orchestrator {
 public:
  explicit Orchestrator(const test::RedisServer& redis)
      : host_(logs_, metrics_, clock_, ioc_.get_executor()), io_(std::make_unique<IoThread>(ioc_)) {
    const plugin_host::Loader loader({PHASEKIT_PLUGIN_DIR});
    queue_ = plugin_host::instantiate<plugin::QueueStrategy>(loader.find(PHK_KIND_QUEUE, "redis"), host_,
                                                             json{{"redis_url", redis.url()}}.dump());
  }
  ~Orchestrator() { io_.reset(); }  // its handlers stop before what they touch goes
  Orchestrator(const Orchestrator&) = delete;
  Orchestrator& operator=(const Orchestrator&) = delete;

  /// Subscribes and waits until redis has the subscription.
  bool subscribe(const test::RedisServer& redis, const std::string& session) {
    queue_->subscribe(session, [this](plugin::JobEvent e) {
      const std::lock_guard lock(mutex_);
      if (e.type == plugin::JobEventType::result) {
        results_[e.job_id].push_back(e.data);
      } else if (e.type == plugin::JobEventType::redelivered) {
        notices_[e.job_id].push_back(e.data);
      }
    });
    return test::poll_until([&] { return redis.cli({"PUBSUB", "NUMSUB", "phasekit:session:" + session})
                                             .find("\n1") != std::string::npos; },
                            10s);
  }
  Status enqueue(const std::string& id, const std::string& session, const std::string& command) {
    plugin::Job job;
    job.id = id;
    job.user_id = "u";
    job.session_id = session;
    job.timeout_ms = 30000;
    job.payload = json{{"tool", "shell"}, {"args", {{"command", command}}}}.dump();
    std::promise<Status> queued;
    auto done = queued.get_future();
    queue_->enqueue(std::move(job), [&queued](Status s) { queued.set_value(std::move(s)); });
    return done.get();
  }
  /// The results the sinks got for `id`, as parsed JSON.
  std::vector<json> results(const std::string& id) { return parsed(results_, id); }
  /// The redelivery notices (JobEventType::redelivered) the sinks got for `id`.
  std::vector<json> notices(const std::string& id) { return parsed(notices_, id); }
  bool wait_result(const std::string& id, std::chrono::milliseconds deadline = 20s) {
    return test::poll_until([&] { return !results(id).empty(); }, deadline);
  }

 private:
  std::vector<json> parsed(std::map<std::string, std::vector<std::string>>& got, const std::string& id) {
    const std::lock_guard lock(mutex_);
    std::vector<json> out;
    for (const auto& data : got[id]) {
      out.push_back(json::parse(data, nullptr, false));
    }
    return out;
  }

  observe::LogSink logs_{STDERR_FILENO, LogLevel::warn};
  observe::MetricsRegistry metrics_;
  plugin_host::SystemClock clock_;
  std::mutex mutex_;
  std::map<std::string, std::vector<std::string>> results_;
  std::map<std::string, std::vector<std::string>> notices_;
  boost::asio::io_context ioc_;
  plugin_host::BasicHost host_;
  plugin_host::InstancePtr<plugin::QueueStrategy> queue_;  // destroyed after the io thread has stopped
  std::unique_ptr<IoThread> io_;
};

std::string hget(const test::RedisServer& redis, const std::string& key, const std::string& field) {
  std::string v = redis.cli({"HGET", key, field});
  while (!v.empty() && v.back() == '\n') {
    v.pop_back();
  }
  return v;
}

/// The session's conversation as the store keeps it (store=redis, no compression): one JSON per entry.
std::vector<json> conversation(const test::RedisServer& redis, const std::string& session) {
  std::vector<json> out;
  std::istringstream in(redis.cli({"LRANGE", "phasekit:conv:" + session, "0", "-1"}));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) {
      out.push_back(json::parse(line, nullptr, false));
    }
  }
  return out;
}

/// The history's tool results of call `id`.
std::vector<json> recorded_results(const test::RedisServer& redis, const std::string& session, const std::string& id) {
  std::vector<json> out;
  for (const json& e : conversation(redis, session)) {
    if (e.is_object() && e.value("role", "") == "tool" && e.contains("result") && e["result"].value("callId", "") == id) {
      out.push_back(e["result"]);
    }
  }
  return out;
}

/// The first `name` file under `root`, or an empty path.
std::filesystem::path find_under(const std::filesystem::path& root, const std::string& name) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec); !ec && it != std::filesystem::end(it);
       it.increment(ec)) {
    if (it->path().filename() == name) {
      return it->path();
    }
  }
  return {};
}

/// Lines of every `name` file under `root` (the sessions' folders), each a run's mark.
int lines_under(const std::filesystem::path& root, const std::string& name) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec); !ec && it != std::filesystem::end(it);
       it.increment(ec)) {
    if (it->path().filename() == name) {
      std::ifstream in(it->path());
      for (std::string line; std::getline(in, line);) {
        ++n;
      }
    }
  }
  return n;
}

TEST_F(QueueReliability, AJobRedisForgotFailsItsCallWithUnavailableOnceTheSubscriberIsBack) {
  test::RedisServer redis;  // no worker: the job stays queued until redis forgets it
  Orchestrator orch(redis);
  ASSERT_TRUE(orch.subscribe(redis, "s"));
  ASSERT_TRUE(orch.enqueue("forgotten", "s", "true").ok());
  ASSERT_EQ(hget(redis, "phasekit:job:forgotten", "state"), "queued");
  // What a restart that lost the enqueue leaves: no record, no id in the queue, connections dropped.
  redis.cli({"DEL", "phasekit:job:forgotten", "phasekit:jobs"});
  redis.cli({"CLIENT", "KILL", "TYPE", "pubsub"});
  ASSERT_TRUE(orch.wait_result("forgotten")) << "the call waits forever for a job redis no longer has";
  const auto results = orch.results("forgotten");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["error"]["code"], "UNAVAILABLE") << results[0].dump();
  EXPECT_EQ(results[0]["callId"], "forgotten");
  EXPECT_EQ(hget(redis, "phasekit:job:forgotten", "state"), "failed");  // it ended, once
}

TEST_F(QueueReliability, AResultPublishedWhileTheSubscriberWasAwayComesOnceItIsBack) {
  test::RedisServer redis;
  Orchestrator orch(redis);
  ASSERT_TRUE(orch.subscribe(redis, "s"));
  ASSERT_TRUE(orch.enqueue("missed", "s", "true").ok());
  ASSERT_TRUE(orch.enqueue("marker", "s", "true").ok());
  // The job ends as COMPLETE ends it, but its PUBLISH reached no one (the subscriber was away).
  const std::string data = json{{"callId", "missed"}, {"exitCode", 0}, {"output", "hi\n"}}.dump();
  const std::string envelope = json{{"t", "r"}, {"j", "missed"}, {"s", "s"}, {"d", data}}.dump();
  redis.cli({"LREM", "phasekit:jobs", "0", "missed"});
  redis.cli({"HSET", "phasekit:job:missed", "state", "done"});
  redis.cli({"SET", "phasekit:result:missed", envelope, "PX", "60000"});
  redis.cli({"CLIENT", "KILL", "TYPE", "pubsub"});
  ASSERT_TRUE(orch.wait_result("missed")) << "a result published while the subscriber was away never comes";
  ASSERT_EQ(orch.results("missed").size(), 1u);
  EXPECT_EQ(orch.results("missed")[0], json::parse(data));
  // Published again (another account, or the original arriving late): the sink still gets it once. The
  // marker's result comes after it on the same channel, so once the marker is there the copy was seen.
  redis.cli({"PUBLISH", "phasekit:session:s", envelope});
  redis.cli({"PUBLISH", "phasekit:session:s",
                           json{{"t", "r"}, {"j", "marker"}, {"s", "s"}, {"d", json{{"callId", "marker"}}.dump()}}.dump()});
  ASSERT_TRUE(orch.wait_result("marker"));
  EXPECT_EQ(orch.results("missed").size(), 1u);
}

TEST_F(QueueReliability, ACompletionRedisForgotDoesNotRunTheJobAgain) {
  test::RedisServer redis;
  test::ChildProcess worker(PHASEKIT_WORKER_BIN, {}, worker_env(redis), (dir_ / "worker.log").string());
  Orchestrator orch(redis);
  ASSERT_TRUE(orch.subscribe(redis, "r"));
  ASSERT_TRUE(orch.enqueue("once", "r", "echo ran >> runs.log").ok());
  ASSERT_TRUE(orch.wait_result("once")) << worker.log();
  ASSERT_EQ(orch.results("once")[0]["exitCode"], 0) << orch.results("once")[0].dump();
  const std::string by = hget(redis, "phasekit:job:once", "worker");
  ASSERT_FALSE(by.empty());
  // What a restart that lost the COMPLETE leaves: the job running on its worker, still on its list.
  redis.cli({"HSET", "phasekit:job:once", "state", "running"});
  redis.cli({"RPUSH", "phasekit:processing:" + by, "once"});
  redis.cli({"CLIENT", "KILL", "TYPE", "normal"});
  ASSERT_TRUE(test::poll_until([&] { return hget(redis, "phasekit:job:once", "state") == "done"; }, 20s))
      << worker.log();
  // A job sent after it runs after anything the worker handed back to the queue. (The kill dropped this
  // orchestrator's connection too: its enqueue is refused until it is back.)
  ASSERT_TRUE(test::poll_until([&] { return orch.enqueue("after", "r", "echo after >> after.log").ok(); }, 20s));
  ASSERT_TRUE(orch.wait_result("after")) << worker.log();
  EXPECT_EQ(lines_under(dir_ / "workspaces", "runs.log"), 1) << "the job ran again";
  EXPECT_EQ(orch.results("once").size(), 1u);
  EXPECT_EQ(redis.cli({"LLEN", "phasekit:processing:" + by}), "0\n");
  EXPECT_NE(worker.log().find("\"replayed\":1"), std::string::npos) << worker.log();
}

TEST_F(QueueReliability, AJobWhoseClaimRedisForgotStillEndsWithItsResult) {
  test::RedisServer redis;
  test::ChildProcess worker(PHASEKIT_WORKER_BIN, {}, worker_env(redis), (dir_ / "worker.log").string());
  Orchestrator orch(redis);
  ASSERT_TRUE(orch.subscribe(redis, "c"));
  ASSERT_TRUE(orch.enqueue("claimed", "c", "until [ -e " + (gate_ / "open").string() + " ]; do sleep 0.1; done; echo done").ok());
  ASSERT_TRUE(test::poll_until([&] { return hget(redis, "phasekit:job:claimed", "state") == "running"; }, 20s))
      << worker.log();
  // What a restart that lost the claim leaves: the job queued again under the same attempt, while the
  // worker runs it.
  redis.cli({"HSET", "phasekit:job:claimed", "state", "queued", "worker", ""});
  std::ofstream(gate_ / "open").put('\n');
  ASSERT_TRUE(orch.wait_result("claimed")) << "the run's completion was refused: " << worker.log();
  EXPECT_EQ(orch.results("claimed")[0]["exitCode"], 0) << orch.results("claimed")[0].dump();
  EXPECT_EQ(hget(redis, "phasekit:job:claimed", "state"), "done");
  EXPECT_EQ(redis.cli({"LLEN", "phasekit:jobs"}), "0\n");
}

TEST_F(QueueReliability, AJobWhoseClaimAndTakeRedisForgotIsClaimedAgainNotRunTwice) {
  test::RedisServer redis;
  test::ChildProcess worker(PHASEKIT_WORKER_BIN, {}, worker_env(redis), (dir_ / "worker.log").string());
  Orchestrator orch(redis);
  ASSERT_TRUE(orch.subscribe(redis, "c"));
  ASSERT_TRUE(orch.enqueue("twice", "c", "until [ -e " + (gate_ / "open").string() + " ]; do sleep 0.1; done").ok());
  ASSERT_TRUE(test::poll_until([&] { return hget(redis, "phasekit:job:twice", "state") == "running"; }, 20s))
      << worker.log();
  const std::string by = hget(redis, "phasekit:job:twice", "worker");
  // What a restart that lost the take and the claim leaves: the id back in the queue, the job queued
  // under the same attempt, while the worker runs it; and every connection dropped.
  redis.cli({"LREM", "phasekit:processing:" + by, "0", "twice"});
  redis.cli({"HSET", "phasekit:job:twice", "state", "queued", "worker", ""});
  redis.cli({"RPUSH", "phasekit:jobs", "twice"});
  redis.cli({"CLIENT", "KILL", "TYPE", "normal"});
  // Claimed again by the worker that runs it, before anyone could take it from the queue.
  ASSERT_TRUE(test::poll_until([&] {
    return hget(redis, "phasekit:job:twice", "state") == "running" &&
           redis.cli({"LLEN", "phasekit:jobs"}) == "0\n";
  }, 20s)) << worker.log();
  std::ofstream(gate_ / "open").put('\n');
  ASSERT_TRUE(orch.wait_result("twice")) << worker.log();
  EXPECT_EQ(orch.results("twice").size(), 1u);
  EXPECT_EQ(orch.results("twice")[0]["exitCode"], 0) << orch.results("twice")[0].dump();
  EXPECT_EQ(hget(redis, "phasekit:job:twice", "state"), "done");
  EXPECT_NE(worker.log().find("\"reclaimed\":1"), std::string::npos) << worker.log();
  EXPECT_EQ(worker.log().find("queue.result_dropped"), std::string::npos) << "it ran twice: " << worker.log();
}

TEST_F(QueueReliability, TwoWorkersThatRanAJobUnderOneAttemptTellTheUserItWasRedelivered) {
  // A restart that lost a claim, and another worker that took the job before the one running it could
  // reclaim it: the command runs twice under one attempt. The user must hear of it as a redelivery.
  test::RedisServer redis;
  auto env = worker_env(redis);
  env["WORKER_CONCURRENCY"] = "1";  // while it runs the job, A takes nothing: only B can take it again
  test::ChildProcess a(PHASEKIT_WORKER_BIN, {}, env, (dir_ / "worker-a.log").string());
  Orchestrator orch(redis);
  redis.cli({"HSET", "phasekit:sess:d", "user", "u"});  // a stored session: results go to its history
  ASSERT_TRUE(orch.subscribe(redis, "d"));
  ASSERT_TRUE(orch.enqueue("both", "d", "echo ran >> runs.log; until [ -e " + (gate_ / "open").string() +
                                            " ]; do sleep 0.1; done; echo done").ok());
  ASSERT_TRUE(test::poll_until([&] { return hget(redis, "phasekit:job:both", "state") == "running"; }, 20s))
      << a.log();
  const std::string by_a = hget(redis, "phasekit:job:both", "worker");
  // B on its own volume: which run commits the session's files first is not what this test is about.
  auto env_b = worker_env(redis);
  env_b["WORKSPACE_ROOT"] = (dir_ / "workspaces-b").string();
  test::ChildProcess b(PHASEKIT_WORKER_BIN, {}, env_b, (dir_ / "worker-b.log").string());
  ASSERT_TRUE(test::poll_until([&] { return redis.cli({"SCARD", "phasekit:workers"}) == "2\n"; }, 20s))
      << b.log();
  // What the restart leaves, as A does not hear of it yet: the job queued again under attempt 1.
  redis.cli({"HSET", "phasekit:job:both", "state", "queued", "worker", ""});
  redis.cli({"RPUSH", "phasekit:jobs", "both"});
  ASSERT_TRUE(test::poll_until([&] {
    const std::string by = hget(redis, "phasekit:job:both", "worker");
    return hget(redis, "phasekit:job:both", "state") == "running" && !by.empty() && by != by_a;
  }, 20s)) << b.log();
  ASSERT_TRUE(test::poll_until([&] { return lines_under(dir_, "runs.log") == 2; }, 20s)) << "both run it";
  // The connections a restart drops: A reconnects, recovers, and finds B running its job.
  redis.cli({"CLIENT", "KILL", "TYPE", "normal"});
  ASSERT_TRUE(test::poll_until([&] { return hget(redis, "phasekit:job:both", "attempt") == "2"; }, 20s)) << a.log();
  std::ofstream(gate_ / "open").put('\n');
  ASSERT_TRUE(orch.wait_result("both")) << a.log() << b.log();
  ASSERT_TRUE(test::poll_until([&] { return a.log().find("queue.result_dropped") != std::string::npos; }, 20s))
      << "A's run ended the job too: " << a.log();
  const auto results = orch.results("both");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["exitCode"], 0) << results[0].dump() << b.log();
  EXPECT_EQ(results[0].value("attempt", 0), 2) << "ran twice, said once: " << results[0].dump();
  EXPECT_EQ(hget(redis, "phasekit:stats", "redelivered"), "1");
  EXPECT_NE(a.log().find("\"doubled\":1"), std::string::npos) << a.log();
  // The history says what the user was told, once: A's run, which lost the job to B's, records nothing.
  const auto recorded = recorded_results(redis, "d", "both");
  ASSERT_EQ(recorded.size(), 1u) << redis.cli({"LRANGE", "phasekit:conv:d", "0", "-1"});
  EXPECT_EQ(recorded[0].value("attempt", 0), 2) << recorded[0].dump();
}

TEST_F(QueueReliability, AJobRunAgainAfterItsResultWentOutIsSaidAsARedelivery) {
  // A restart lost A's claim; B took the job and ended it, while A's run of it went on: the user had
  // B's result (attempt 1) when A finds out, and must hear that the command ran twice.
  test::RedisServer redis;
  auto env = worker_env(redis);
  env["WORKER_CONCURRENCY"] = "1";
  test::ChildProcess a(PHASEKIT_WORKER_BIN, {}, env, (dir_ / "worker-a.log").string());
  Orchestrator orch(redis);
  ASSERT_TRUE(orch.subscribe(redis, "n"));
  // Each run waits for a `go` file in its own workspace, so the test ends B's before A's.
  ASSERT_TRUE(orch.enqueue("again", "n", "echo ran >> runs.log; until [ -e go ]; do sleep 0.1; done; echo done").ok());
  ASSERT_TRUE(test::poll_until([&] { return lines_under(dir_ / "workspaces", "runs.log") == 1; }, 20s)) << a.log();
  auto env_b = worker_env(redis);
  env_b["WORKSPACE_ROOT"] = (dir_ / "workspaces-b").string();
  test::ChildProcess b(PHASEKIT_WORKER_BIN, {}, env_b, (dir_ / "worker-b.log").string());
  ASSERT_TRUE(test::poll_until([&] { return redis.cli({"SCARD", "phasekit:workers"}) == "2\n"; }, 20s))
      << b.log();
  redis.cli({"HSET", "phasekit:job:again", "state", "queued", "worker", ""});
  redis.cli({"RPUSH", "phasekit:jobs", "again"});
  ASSERT_TRUE(test::poll_until([&] { return !find_under(dir_ / "workspaces-b", "runs.log").empty(); }, 20s)) << b.log();
  std::ofstream(find_under(dir_ / "workspaces-b", "runs.log").parent_path() / "go").put('\n');
  ASSERT_TRUE(orch.wait_result("again")) << b.log();
  ASSERT_EQ(orch.results("again")[0].value("attempt", 1), 1) << "B's run said a redelivery nobody knew of yet";
  EXPECT_TRUE(orch.notices("again").empty());
  // The connections a restart drops: A reconnects, recovers, and finds the job it runs ended by B.
  redis.cli({"CLIENT", "KILL", "TYPE", "normal"});
  ASSERT_TRUE(test::poll_until([&] { return !orch.notices("again").empty(); }, 20s))
      << "the second run is not said: " << a.log();
  const auto notice = orch.notices("again")[0];
  EXPECT_EQ(notice.value("callId", ""), "again") << notice.dump();
  EXPECT_EQ(notice.value("attempt", 0), 2) << notice.dump();
  EXPECT_EQ(hget(redis, "phasekit:job:again", "attempt"), "2");
  EXPECT_EQ(hget(redis, "phasekit:stats", "redelivered"), "1");
  EXPECT_NE(a.log().find("\"doubled_after_end\":1"), std::string::npos) << a.log();
  // A's run ends, and changes nothing: one result, and B's still the job's.
  std::ofstream(find_under(dir_ / "workspaces", "runs.log").parent_path() / "go").put('\n');
  ASSERT_TRUE(test::poll_until([&] { return a.log().find("queue.result_dropped") != std::string::npos; }, 20s))
      << a.log();
  EXPECT_EQ(orch.results("again").size(), 1u);
  EXPECT_EQ(orch.notices("again").size(), 1u);
}

TEST_F(QueueReliability, AfterARedisRestartTheWorkerRunningAJobReclaimsItBeforeAnotherTakesIt) {
  test::RedisServer redis;
  Orchestrator orch(redis);
  ASSERT_TRUE(orch.subscribe(redis, "e"));
  ASSERT_TRUE(orch.enqueue("kept", "e", "echo ran >> runs.log; until [ -e " + (gate_ / "open").string() +
                                            " ]; do sleep 0.1; done; echo done").ok());
  // The snapshot the restart comes back with: the job queued, before any worker claimed it.
  ASSERT_EQ(redis.cli({"SAVE"}), "OK\n");
  auto env = worker_env(redis);
  env["WORKER_CONCURRENCY"] = "1";
  test::ChildProcess a(PHASEKIT_WORKER_BIN, {}, env, (dir_ / "worker-a.log").string());
  ASSERT_TRUE(test::poll_until([&] { return lines_under(dir_ / "workspaces", "runs.log") == 1; }, 20s)) << a.log();
  test::ChildProcess b(PHASEKIT_WORKER_BIN, {}, worker_env(redis), (dir_ / "worker-b.log").string());
  ASSERT_TRUE(test::poll_until([&] { return redis.cli({"SCARD", "phasekit:workers"}) == "2\n"; }, 20s))
      << b.log();
  // A is slow to reconnect (stopped for the restart, well within its lease): B is back first, and
  // the job whose claim the restart lost waits in the queue.
  ASSERT_EQ(::kill(a.pid(), SIGSTOP), 0);
  redis.kill();
  redis.restart();
  ASSERT_EQ(hget(redis, "phasekit:job:kept", "state"), "queued");  // the claim is gone with the restart
  ASSERT_TRUE(test::poll_until([&] { return b.log().find("queue.redis_restarted") != std::string::npos; }, 20s))
      << b.log();
  // B is back, its take connection too (A's is not: A is stopped). For 2 s of B's JOB_LEASE_MS hold,
  // the job must stay where the restart left it.
  ASSERT_TRUE(test::poll_until(
      [&] { return redis.cli({"CLIENT", "LIST"}).find("name=queue-take") != std::string::npos; }, 20s));
  EXPECT_FALSE(test::poll_until([&] { return hget(redis, "phasekit:job:kept", "state") != "queued"; }, 2s))
      << "B took the job A runs: " << b.log();
  // Nor does a worker started after the restart take it: it cannot know the restart but from redis.
  test::ChildProcess c(PHASEKIT_WORKER_BIN, {}, worker_env(redis), (dir_ / "worker-c.log").string());
  ASSERT_TRUE(test::poll_until([&] { return c.log().find("queue.redis_restarted") != std::string::npos; }, 20s))
      << c.log();
  EXPECT_FALSE(test::poll_until([&] { return hget(redis, "phasekit:job:kept", "state") != "queued"; }, 1s))
      << "C took the job A runs: " << c.log();
  ASSERT_EQ(::kill(a.pid(), SIGCONT), 0);
  // B holds off; A reconnects and claims its job again.
  ASSERT_TRUE(test::poll_until([&] { return a.log().find("\"reclaimed\":1") != std::string::npos; }, 20s))
      << a.log() << b.log();
  std::ofstream(gate_ / "open").put('\n');
  ASSERT_TRUE(orch.wait_result("kept", 30s)) << a.log() << b.log();
  const auto results = orch.results("kept");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["exitCode"], 0) << results[0].dump();
  EXPECT_FALSE(results[0].contains("attempt")) << results[0].dump();
  EXPECT_EQ(lines_under(dir_ / "workspaces", "runs.log"), 1) << "B or C ran it too: " << b.log() << c.log();
}

}  // namespace
}  // namespace phasekit
