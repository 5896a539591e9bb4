// What the audit log costs per tool call, for each store (issue 19): records appended one at a time
// (each waits for the last: a call that ends alone) and 64 at a time through AuditBatcher (calls that
// end together: one write carries them). Counters per record:
//   records/s     records written per second of wall time
//   cpu_us        CPU of this process (the plugin's threads included) per record
//   server_cpu_us CPU of the store's server (redis-server; postgres and its backends) per record
// BM_ResultAlone: what a call that ends alone writes, per call: its history entry only (entry_only: no
// audit log), the entry then its record (entry_then_audit), or both in one write (together: what
// JobLifecycle does, StoreStrategy::append_result). The audit log's cost is together - entry_only.
// BM_Results64: the same for 64 calls that end at once (entry_only or together), per call.
// BM_AuditAdded: together - entry_only as a paired difference (blocks of each alternate in one run), the
// figure to quote: the separate benchmarks above drift apart between runs on this VM.
// Compare cpu_us + server_cpu_us with the CPU of one approved call (bench/toolcall_cost.sh).
//   build/bench/audit_bench [--benchmark_filter=postgres]
#include <benchmark/benchmark.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "phasekit/app/audit_batcher.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "support/postgres_server.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
namespace host = phasekit::plugin_host;
using phasekit::Status;
using phasekit::plugin::AuditRecord;

/// CPU seconds of this process so far (every thread).
double process_cpu() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// CPU seconds of the process at `proc` (/proc/<pid>) to the nanosecond: the sum of its threads' time on
/// a CPU (schedstat). `ticks` (its utime + stime, counted in 10 ms clock ticks) when schedstat is not
/// there. A block of 64 calls spends about a clock tick of the server's CPU, so counted in ticks its
/// share jumps by whole ticks, and the difference of two blocks swung by ±10 µs a call between runs.
double on_cpu(const std::filesystem::path& proc, double ticks) {
  double total = 0;
  bool any = false;
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator(proc / "task", error)) {
    std::ifstream in(task.path() / "schedstat");
    unsigned long long ns = 0;
    if (in >> ns) {
      total += static_cast<double>(ns) / 1e9;
      any = true;
    }
  }
  return any ? total : ticks;
}

/// CPU seconds of `pid` and of its children that are still running (postgres' backends).
double server_cpu(pid_t pid) {
  if (pid <= 0) {
    return 0;
  }
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double total = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    if (!std::isdigit(static_cast<unsigned char>(entry.path().filename().string()[0]))) {
      continue;
    }
    std::ifstream in(entry.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) {
      continue;
    }
    const auto close = line.rfind(')');
    if (close == std::string::npos) {
      continue;
    }
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    long long ppid = 0;
    long long skip = 0;
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    rest >> state >> ppid;
    for (int i = 0; i < 9; ++i) {
      rest >> skip;
    }
    rest >> utime >> stime;
    const std::string name = entry.path().filename().string();
    long long self = 0;
    std::from_chars(name.data(), name.data() + name.size(), self);
    if (self == pid || ppid == pid) {
      total += on_cpu(entry.path(), static_cast<double>(utime + stime) / tick);
    }
  }
  return total;
}

/// A store of one kind, with its server when it has one, on an io_context of its own thread.
class Rig {
 public:
  explicit Rig(const std::string& kind) {
    std::string config = R"({"conversation_max_entries": 8)";
    if (kind == "sqlite") {
      folder_ = std::filesystem::temp_directory_path() / ("phasekit-audit-bench-" + std::to_string(::getpid()));
      std::filesystem::create_directories(folder_);
      config += R"(, "store_path": ")" + (folder_ / "store.db").string() + "\"";
    } else if (kind == "redis") {
      redis_.emplace();
      config += R"(, "redis_url": ")" + redis_->url() + "\"";
      server_ = redis_->pid();
    } else if (kind == "postgres") {
      postgres_.emplace();
      config += R"(, "postgres_url": ")" + postgres_->url() + R"(", "pool_size": 4)";
      server_ = postgres_->pid();
    }
    config += "}";
    host_ = std::make_unique<host::BasicHost>(logs_, metrics_, clock_, ioc_.get_executor());
    thread_ = std::thread([this] { ioc_.run(); });
    store_ = host::instantiate<phasekit::plugin::StoreStrategy>(
        host::Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_STORE, kind), *host_, config);
    batcher_ = std::make_shared<phasekit::app::AuditBatcher>(*store_);
    // A remote store answers UNAVAILABLE until it has connected.
    for (int i = 0; i < 200 && !append_one(record(0)).ok(); ++i) {
      std::this_thread::sleep_for(50ms);
    }
  }
  ~Rig() {
    store_.reset();
    guard_.reset();
    thread_.join();
    if (!folder_.empty()) {
      std::filesystem::remove_all(folder_);
    }
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  AuditRecord record(std::uint64_t i) const {
    AuditRecord r;
    r.call_id = "call-" + std::to_string(i) + "-" + std::to_string(::getpid());
    r.user_id = "user-" + std::to_string(i % 50);
    r.session_id = "s-" + std::to_string(i % 500);
    r.instance = "orchestrator-1";
    r.tool = "shell";
    r.args = R"({"command":"ls -la /workspace/project && cat README.md | head -n 20"})";
    r.approved = true;
    r.outcome = "ok";
    r.exit_code = 0;
    r.duration_ms = 4;
    r.output_bytes = 1200;
    r.requested_unix_ms = 1'765'000'000'000 + static_cast<std::int64_t>(i);
    r.finished_unix_ms = r.requested_unix_ms + 5;
    return r;
  }

  Status append_one(AuditRecord r) {
    std::promise<Status> done;
    auto f = done.get_future();
    store_->append_audit({std::move(r)}, [&done](Status s) { done.set_value(std::move(s)); });
    return f.get();
  }

  /// What a call that ends alone writes: its history entry alone (`Write::entry`, as before the
  /// audit log), the entry then its record (`entry_then_audit`), or both in one write (`together`,
  /// StoreStrategy::append_result, what JobLifecycle does).
  enum class Write { entry, entry_then_audit, together };
  static std::string entry_of(const AuditRecord& r) {
    return R"({"role":"tool","result":{"callId":")" + r.call_id + R"(","exitCode":0,"durationMs":4,"output":")" +
           std::string(200, 'x') + R"("}})";
  }
  Status result_one(std::uint64_t i, Write how) {
    AuditRecord r = record(i);
    const std::string session = r.session_id;
    std::string entry = entry_of(r);
    std::promise<Status> done;
    auto f = done.get_future();
    auto set = [&done](Status s) { done.set_value(std::move(s)); };
    if (how == Write::together) {
      store_->append_result(session, std::move(entry), std::move(r), set);
      return f.get();
    }
    store_->append_conversation(session, std::move(entry), set);
    Status s = f.get();
    if (s.ok() && how == Write::entry_then_audit) {
      std::promise<Status> audited;
      auto g = audited.get_future();
      batcher_->add(std::move(r), [&audited](Status a) { audited.set_value(std::move(a)); });
      s = g.get();
    }
    return s;
  }

  /// `n` calls ending at once: each writes its entry alone (`Write::entry`) or with its record
  /// (`together`); waits for all of them.
  void results_at_once(std::uint64_t first, int n, Write how) {
    std::atomic<int> left{n};
    std::promise<void> all;
    auto one_done = [&](Status) {
      if (--left == 0) {
        all.set_value();
      }
    };
    for (int i = 0; i < n; ++i) {
      AuditRecord r = record(first + static_cast<std::uint64_t>(i));
      const std::string session = r.session_id;
      if (how == Write::together) {
        store_->append_result(session, entry_of(r), std::move(r), one_done);
      } else {
        store_->append_conversation(session, entry_of(r), one_done);
      }
    }
    all.get_future().wait();
  }

  /// `n` records added at once through the batcher; waits for all of them.
  void append_batched(std::uint64_t first, int n) {
    std::atomic<int> left{n};
    std::promise<void> all;
    for (int i = 0; i < n; ++i) {
      batcher_->add(record(first + static_cast<std::uint64_t>(i)), [&](Status) {
        if (--left == 0) {
          all.set_value();
        }
      });
    }
    all.get_future().wait();
  }

  [[nodiscard]] pid_t server() const { return server_; }
  [[nodiscard]] std::size_t writes() const { return batcher_->writes(); }

 private:
  phasekit::observe::LogSink logs_{[](std::string_view) {}, phasekit::LogLevel::off};
  phasekit::observe::MetricsRegistry metrics_;
  host::SystemClock clock_;
  boost::asio::io_context ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_{ioc_.get_executor()};
  std::unique_ptr<host::BasicHost> host_;
  std::thread thread_;
  std::filesystem::path folder_;
  std::optional<phasekit::test::RedisServer> redis_;
  std::optional<phasekit::test::PostgresServer> postgres_;
  pid_t server_ = -1;
  host::InstancePtr<phasekit::plugin::StoreStrategy> store_;
  std::shared_ptr<phasekit::app::AuditBatcher> batcher_;
};

void report(benchmark::State& state, std::uint64_t records, double cpu, double server, double wall) {
  state.counters["records/s"] = static_cast<double>(records) / wall;
  state.counters["cpu_us"] = cpu * 1e6 / static_cast<double>(records);
  state.counters["server_cpu_us"] = server * 1e6 / static_cast<double>(records);
}

/// Runs `step(first record's index)` once per iteration; each writes `per_step` records (or calls), and
/// the counters are per record. `step` returns false when a write failed.
template <class Step>
void measure(benchmark::State& state, Rig& rig, std::uint64_t first, std::uint64_t per_step, Step step) {
  std::uint64_t i = first;
  const double cpu0 = process_cpu();
  const double server0 = server_cpu(rig.server());
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (!step(i)) {
      state.SkipWithError("a write failed");
      return;
    }
    i += per_step;
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report(state, i - first, process_cpu() - cpu0, server_cpu(rig.server()) - server0, wall);
}

void BM_AuditOneAtATime(benchmark::State& state, const std::string& kind) {
  Rig rig(kind);
  measure(state, rig, 1'000'000, 1, [&](std::uint64_t i) { return rig.append_one(rig.record(i)).ok(); });
}

/// A call that ends alone: its result's writes, one call after another (Rig::Write).
void BM_ResultAlone(benchmark::State& state, const std::string& kind, Rig::Write how) {
  Rig rig(kind);
  measure(state, rig, 3'000'000, 1, [&](std::uint64_t i) { return rig.result_one(i, how).ok(); });
}

/// 64 calls that end at once (Rig::results_at_once), per call.
void BM_Results64(benchmark::State& state, const std::string& kind, Rig::Write how) {
  Rig rig(kind);
  measure(state, rig, 4'000'000, 64, [&](std::uint64_t i) {
    rig.results_at_once(i, 64, how);
    return true;
  });
}

void BM_AuditBatched64(benchmark::State& state, const std::string& kind) {
  Rig rig(kind);
  const std::size_t writes0 = rig.writes();
  measure(state, rig, 2'000'000, 64, [&](std::uint64_t i) {
    rig.append_batched(i, 64);
    return true;
  });
  state.counters["records_per_write"] =
      static_cast<double>(state.iterations() * 64) / static_cast<double>(std::max<std::size_t>(1, rig.writes() - writes0));
}

/// What the audit log adds to a result's write, as a paired difference: blocks of 64 calls that write
/// the entry alone and blocks that write it with its record (together) alternate, their order swapped
/// every iteration, so the drift of this VM's speed (tens of µs a write between runs: waking an idle
/// vCPU) falls on both sides. `at_once`: 1 (each call waits for the last) or 64 (one burst a block).
/// Counters per call, this process and the store's server together: entry_cpu_us, together_cpu_us,
/// added_cpu_us (their difference).
void BM_AuditAdded(benchmark::State& state, const std::string& kind, int at_once) {
  static constexpr int kBlock = 64;
  Rig rig(kind);
  std::uint64_t i = 5'000'000;
  double spent[2] = {0, 0};  // [entry, together]
  const auto block = [&](Rig::Write how) {
    const double cpu0 = process_cpu() + server_cpu(rig.server());
    for (int done = 0; done < kBlock; done += at_once) {
      if (at_once == 1) {
        if (!rig.result_one(i, how).ok()) {
          return false;
        }
      } else {
        rig.results_at_once(i, at_once, how);
      }
      i += static_cast<std::uint64_t>(at_once);
    }
    spent[how == Rig::Write::together ? 1 : 0] += process_cpu() + server_cpu(rig.server()) - cpu0;
    return true;
  };
  bool together_first = false;
  for (auto _ : state) {
    const Rig::Write first = together_first ? Rig::Write::together : Rig::Write::entry;
    const Rig::Write second = together_first ? Rig::Write::entry : Rig::Write::together;
    if (!block(first) || !block(second)) {
      state.SkipWithError("a write failed");
      return;
    }
    together_first = !together_first;
  }
  const double calls = static_cast<double>(state.iterations()) * kBlock;
  state.counters["entry_cpu_us"] = spent[0] * 1e6 / calls;
  state.counters["together_cpu_us"] = spent[1] * 1e6 / calls;
  state.counters["added_cpu_us"] = (spent[1] - spent[0]) * 1e6 / calls;
}

}  // namespace

BENCHMARK_CAPTURE(BM_AuditAdded, memory_alone, std::string("memory"), 1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AuditAdded, sqlite_alone, std::string("sqlite"), 1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AuditAdded, redis_alone, std::string("redis"), 1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AuditAdded, postgres_alone, std::string("postgres"), 1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AuditAdded, memory_64, std::string("memory"), 64)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AuditAdded, sqlite_64, std::string("sqlite"), 64)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AuditAdded, redis_64, std::string("redis"), 64)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AuditAdded, postgres_64, std::string("postgres"), 64)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AuditOneAtATime, memory, std::string("memory"))->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_AuditOneAtATime, sqlite, std::string("sqlite"))->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_AuditOneAtATime, redis, std::string("redis"))->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_AuditOneAtATime, postgres, std::string("postgres"))->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_AuditBatched64, memory, std::string("memory"))->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_AuditBatched64, sqlite, std::string("sqlite"))->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_AuditBatched64, redis, std::string("redis"))->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_AuditBatched64, postgres, std::string("postgres"))->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, memory_entry_only, std::string("memory"), Rig::Write::entry)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, memory_entry_then_audit, std::string("memory"), Rig::Write::entry_then_audit)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, memory_together, std::string("memory"), Rig::Write::together)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, sqlite_entry_only, std::string("sqlite"), Rig::Write::entry)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, sqlite_entry_then_audit, std::string("sqlite"), Rig::Write::entry_then_audit)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, sqlite_together, std::string("sqlite"), Rig::Write::together)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, redis_entry_only, std::string("redis"), Rig::Write::entry)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, redis_entry_then_audit, std::string("redis"), Rig::Write::entry_then_audit)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, redis_together, std::string("redis"), Rig::Write::together)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, postgres_entry_only, std::string("postgres"), Rig::Write::entry)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, postgres_entry_then_audit, std::string("postgres"), Rig::Write::entry_then_audit)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ResultAlone, postgres_together, std::string("postgres"), Rig::Write::together)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Results64, memory_entry_only, std::string("memory"), Rig::Write::entry)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Results64, memory_together, std::string("memory"), Rig::Write::together)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Results64, sqlite_entry_only, std::string("sqlite"), Rig::Write::entry)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Results64, sqlite_together, std::string("sqlite"), Rig::Write::together)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Results64, redis_entry_only, std::string("redis"), Rig::Write::entry)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Results64, redis_together, std::string("redis"), Rig::Write::together)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Results64, postgres_entry_only, std::string("postgres"), Rig::Write::entry)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Results64, postgres_together, std::string("postgres"), Rig::Write::together)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
