// Throughput of one phasekit::redis::Client connection with 1, 16 and 256 commands in flight (GET of a
// 16-byte value; each completion issues the next command). Uses REDIS_BENCH_URL when set (e.g.
// redis://127.0.0.1:6379), else starts /usr/bin/redis-server itself on a free loopback port; skips
// when neither is possible.
//   build/bench/redis_client_bench --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "phasekit/redis/client.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace phasekit;

class NullLogger final : public Logger {
 public:
  bool enabled(LogLevel level) const noexcept override { return level >= LogLevel::warn; }
  void write(LogLevel, std::string_view, std::span<const LogField>) noexcept override {}
};

struct Setup {
  std::unique_ptr<test::RedisServer> server;
  std::string url;
  std::string skip;
  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{ioc.get_executor()};
  std::thread thread;
  NullLogger log;
  std::shared_ptr<redis::Client> client;

  Setup() {
    if (const char* env = std::getenv("REDIS_BENCH_URL"); env != nullptr && *env != '\0') {
      url = env;
    } else if (test::RedisServer::available()) {
      server = std::make_unique<test::RedisServer>();
      url = server->url();
    } else {
      skip = "set REDIS_BENCH_URL or install redis-server";
      return;
    }
    redis::ClientOptions options;
    if (Status s = redis::parse_url(url, options.endpoint); !s) {
      skip = s.message();
      return;
    }
    options.name = "bench";
    options.command_timeout = std::chrono::seconds(30);
    thread = std::thread([this] { ioc.run(); });
    client = redis::Client::create(ioc.get_executor(), options, log);
    client->start();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!client->connected() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!client->connected()) {
      skip = "could not connect to " + url;
    }
  }
  ~Setup() {
    if (client) {
      client->stop();
    }
    guard.reset();
    ioc.stop();
    if (thread.joinable()) {
      thread.join();
    }
  }
};

Setup& setup() {
  static Setup s;
  return s;
}

/// A closed loop: `window` commands in flight until `total` have completed.
struct Loop : std::enable_shared_from_this<Loop> {
  redis::Client& client;
  const long total;
  std::atomic<long> issued{0};
  std::atomic<long> completed{0};
  std::atomic<long> failed{0};
  std::mutex mu;
  std::condition_variable cv;

  Loop(redis::Client& c, long n) : client(c), total(n) {}
  void issue() {
    if (issued.fetch_add(1) >= total) {
      return;
    }
    client.command({"GET", "bench:key"}, [self = shared_from_this()](Status s, redis::Reply) {
      if (!s.ok()) {
        self->failed.fetch_add(1);
      }
      if (self->completed.fetch_add(1) + 1 == self->total) {
        const std::lock_guard lock(self->mu);
        self->cv.notify_all();
      } else {
        self->issue();
      }
    });
  }
  void wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return completed.load() == total; });
  }
};

void BM_InFlight(benchmark::State& state) {
  Setup& s = setup();
  if (!s.skip.empty()) {
    state.SkipWithError(s.skip.c_str());
    return;
  }
  {
    auto loop = std::make_shared<Loop>(*s.client, 1);
    s.client->command({"SET", "bench:key", "0123456789abcdef"}, [loop](Status, redis::Reply) {
      loop->completed = 1;
      loop->cv.notify_all();
    });
    loop->wait();
  }
  const long window = state.range(0);
  const long batch = window == 1 ? 2000 : 20000;
  long failures = 0;
  for (auto _ : state) {
    auto loop = std::make_shared<Loop>(*s.client, batch);
    for (long i = 0; i < window; ++i) {
      loop->issue();
    }
    loop->wait();
    failures += loop->failed.load();
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["failed"] = static_cast<double>(failures);
}

BENCHMARK(BM_InFlight)->Arg(1)->Arg(16)->Arg(256)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
