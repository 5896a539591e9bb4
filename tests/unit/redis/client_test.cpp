// The client against a real redis-server started by the test (tests/support/redis_server.hpp).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <thread>

#include "redis_test_util.hpp"

namespace phasekit::redis {
namespace {

using namespace std::chrono_literals;
using testing::CaptureLogger;
using testing::Result;
using testing::IoThreads;
using testing::options_for;
using testing::run;
using testing::wait_until;
using test::RedisServer;

TEST(RedisClient, RoundTripsGetSetIncrLpushBlmove) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  auto client = testing::connected_client(io, options_for(server.url(), "store"), log);

  EXPECT_EQ(run(*client, {"SET", "k", "v1"}).reply, Reply::status("OK"));
  EXPECT_EQ(run(*client, {"GET", "k"}).reply, Reply::string("v1"));
  EXPECT_TRUE(run(*client, {"GET", "missing"}).reply.is_nil());
  EXPECT_EQ(run(*client, {"INCR", "n"}).reply, Reply::integer(1));
  EXPECT_EQ(run(*client, {"INCR", "n"}).reply, Reply::integer(2));
  EXPECT_EQ(run(*client, {"LPUSH", "q:jobs", "a", "b"}).reply, Reply::integer(2));
  // The reliable-queue move, with a block time and a per-command timeout above it.
  const Result moved = run(*client, {"BLMOVE", "q:jobs", "q:proc", "RIGHT", "LEFT", "1"}, 3000ms);
  ASSERT_TRUE(moved.status.ok()) << moved.status.message();
  EXPECT_EQ(moved.reply, Reply::string("a"));
  const Result lrange = run(*client, {"LRANGE", "q:proc", "0", "-1"});
  EXPECT_EQ(lrange.reply, Reply::array({Reply::string("a")}));
  // An empty list: BLMOVE blocks for its 0.1 s and answers nil, well within the command timeout.
  const Result empty = run(*client, {"BLMOVE", "none", "q:proc", "RIGHT", "LEFT", "0.1"}, 2000ms);
  ASSERT_TRUE(empty.status.ok()) << empty.status.message();
  EXPECT_TRUE(empty.reply.is_nil());
  // CLIENT SETNAME from options.name.
  EXPECT_EQ(run(*client, {"CLIENT", "GETNAME"}).reply, Reply::string("store"));
  client->stop();
}

TEST(RedisClient, ValuesAreBinarySafeUpToMebibytes) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  auto client = testing::connected_client(io, options_for(server.url()), log);

  const std::string nuls("a\0b\r\n\0\xff", 7);
  EXPECT_TRUE(run(*client, {"SET", std::string("key\0with nul", 12), nuls}).status.ok());
  EXPECT_EQ(run(*client, {"GET", std::string("key\0with nul", 12)}).reply, Reply::string(nuls));

  std::string big(2 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>(i * 131 % 251);
  }
  EXPECT_EQ(run(*client, {"SET", "big", big}).reply, Reply::status("OK"));
  const Result got = run(*client, {"GET", "big"});
  ASSERT_TRUE(got.reply.is_string());
  EXPECT_EQ(got.reply.str().size(), big.size());
  EXPECT_TRUE(got.reply.str() == big);
  client->stop();
}

TEST(RedisClient, HundredThousandCommandsInFlightFromFourThreadsAreAnsweredInOrder) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io(2);
  CaptureLogger log;
  auto options = options_for(server.url());
  options.command_timeout = 30s;
  auto client = testing::connected_client(io, options, log);

  constexpr int kThreads = 4;
  constexpr int kPerThread = 25000;
  std::vector<std::vector<long long>> seen(kThreads, std::vector<long long>(kPerThread, -1));
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = "counter:" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        client->command({"INCR", key}, [&, t, i](Status s, Reply r) {
          if (!s.ok()) {
            failed.fetch_add(1);
          }
          seen[t][i] = r.integer();
          done.fetch_add(1);
        });
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  ASSERT_TRUE(wait_until([&] { return done.load() == kThreads * kPerThread; }, 60s)) << done.load();
  EXPECT_EQ(failed.load(), 0);
  // Each thread's i-th INCR on its own key must have read i+1: a reply paired with the wrong command
  // would show up here.
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      ASSERT_EQ(seen[t][i], i + 1) << "thread " << t << " command " << i;
    }
  }
  client->stop();
}

TEST(RedisClient, PipelineRepliesInOrderWithErrorRepliesInPlace) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  auto client = testing::connected_client(io, options_for(server.url()), log);

  std::promise<std::pair<Status, std::vector<Reply>>> promise;
  client->pipeline({{"SET", "a", "1"}, {"LPUSH", "a", "x"}, {"INCR", "a"}, {"GET", "a"}, {"NOSUCHCOMMAND"}},
                   [&](Status s, std::vector<Reply> replies) { promise.set_value({std::move(s), std::move(replies)}); });
  auto future = promise.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  auto [status, replies] = future.get();
  ASSERT_TRUE(status.ok()) << status.message();
  ASSERT_EQ(replies.size(), 5u);
  EXPECT_EQ(replies[0], Reply::status("OK"));
  EXPECT_TRUE(replies[1].is_error());
  EXPECT_NE(replies[1].str().find("WRONGTYPE"), std::string::npos);
  EXPECT_EQ(replies[2], Reply::integer(2));
  EXPECT_EQ(replies[3], Reply::string("2"));
  EXPECT_TRUE(replies[4].is_error());

  std::promise<std::size_t> empty;
  client->pipeline({}, [&](Status s, std::vector<Reply> r) { empty.set_value(s.ok() ? r.size() : 99); });
  EXPECT_EQ(empty.get_future().get(), 0u);
  client->stop();
}

TEST(RedisClient, AnErrorReplyIsAnOkStatusWithAnErrorReply) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  auto client = testing::connected_client(io, options_for(server.url()), log);

  const Result r = run(*client, {"SET", "k"});  // wrong number of arguments
  EXPECT_TRUE(r.status.ok());
  ASSERT_TRUE(r.reply.is_error());
  EXPECT_NE(r.reply.str().find("wrong number of arguments"), std::string::npos) << r.reply.str();
  EXPECT_EQ(reply_status(r.status, r.reply).code(), Code::internal);
  // The connection is fine afterwards.
  EXPECT_EQ(run(*client, {"PING"}).reply, Reply::status("PONG"));
  EXPECT_EQ(run(*client, {}).status.code(), Code::bad_request);
  EXPECT_TRUE(client->connected());
  client->stop();
}

TEST(RedisClient, ACommandTimeoutFailsItAndItsNeighboursThenTheClientReconnectsByItself) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  auto client = testing::connected_client(io, options_for(server.url(), "victim"), log);
  std::atomic<int> ups{0};
  std::atomic<int> downs{0};
  client->on_state([&](bool up) { (up ? ups : downs).fetch_add(1); });

  // The server stops answering until the test lets it go on: a SIGSTOP, not a CLIENT PAUSE of fixed
  // length that a slow machine could outlast before the timeout fired.
  ASSERT_EQ(::kill(server.pid(), SIGSTOP), 0);
  struct Continue {
    pid_t pid;
    ~Continue() { ::kill(pid, SIGCONT); }
  } continue_at_exit{server.pid()};
  // Two commands stuck behind it: the short one times out; the long one loses its connection.
  std::promise<Result> long_one;
  client->command({"GET", "a"}, 10s, [&](Status s, Reply r) { long_one.set_value({std::move(s), std::move(r)}); });
  const auto t0 = std::chrono::steady_clock::now();
  const Result short_one = run(*client, {"GET", "b"}, 200ms);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(short_one.status.code(), Code::timeout) << short_one.status.message();
  EXPECT_EQ(short_one.status.message(), "redis GET got no reply within 200 ms");
  EXPECT_LT(waited, 2s) << "its own 200 ms, not its neighbour's 10 s nor a sweep's second";
  auto f = long_one.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  const Result lost = f.get();
  EXPECT_EQ(lost.status.code(), Code::unavailable);
  EXPECT_EQ(lost.status.message(), "redis connection reset: GET got no reply within 200 ms");
  EXPECT_TRUE(wait_until([&] { return downs.load() == 1; }));

  // Back by itself once the server answers again (the handshake waits for it).
  ASSERT_EQ(::kill(server.pid(), SIGCONT), 0);
  ASSERT_TRUE(wait_until([&] { return client->connected(); }, 10s));
  EXPECT_EQ(run(*client, {"PING"}).reply, Reply::status("PONG"));
  EXPECT_TRUE(wait_until([&] { return ups.load() == 1; }));
  client->stop();
}

TEST(RedisClient, ServerKilledFailsFastAndTheClientReconnectsAfterARestart) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  auto client = testing::connected_client(io, options_for(server.url()), log);
  std::atomic<int> ups{0};
  std::atomic<int> downs{0};
  client->on_state([&](bool up) { (up ? ups : downs).fetch_add(1); });

  std::promise<Result> blocked;
  client->command({"BLMOVE", "empty", "dst", "RIGHT", "LEFT", "10"}, 15s,
                  [&](Status s, Reply r) { blocked.set_value({std::move(s), std::move(r)}); });
  ASSERT_TRUE(wait_until([&] { return client->pending() == 1; }));
  server.kill();

  auto f = blocked.get_future();
  ASSERT_EQ(f.wait_for(3s), std::future_status::ready) << "the pending command must fail fast";
  EXPECT_EQ(f.get().status.code(), Code::unavailable);
  ASSERT_TRUE(wait_until([&] { return !client->connected(); }, 3s));
  EXPECT_TRUE(wait_until([&] { return downs.load() == 1; }));

  const auto t0 = std::chrono::steady_clock::now();
  const Result refused = run(*client, {"GET", "k"});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  EXPECT_EQ(refused.status.code(), Code::unavailable);
  EXPECT_TRUE(refused.status.message().starts_with("redis not connected: ")) << refused.status.message();

  server.restart();
  ASSERT_TRUE(wait_until([&] { return client->connected(); }, 10s)) << log.all();
  EXPECT_EQ(run(*client, {"SET", "k", "again"}).reply, Reply::status("OK"));
  EXPECT_TRUE(wait_until([&] { return ups.load() == 1; }));
  EXPECT_TRUE(log.contains("redis connection lost"));
  client->stop();
}

TEST(RedisClient, AuthWithThePasswordWorksAndAWrongOneIsAClearErrorThatNeverLogsIt) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server({"--requirepass", "s3cr3t-pw"});
  IoThreads io;
  CaptureLogger log;
  const std::string base = "127.0.0.1:" + std::to_string(server.port());

  auto good = testing::connected_client(io, options_for("redis://:s3cr3t-pw@" + base + "/2"), log);
  EXPECT_EQ(run(*good, {"SET", "k", "v"}).reply, Reply::status("OK"));
  auto acl = testing::connected_client(io, options_for("redis://default:s3cr3t-pw@" + base + "/2"), log);
  EXPECT_EQ(run(*acl, {"GET", "k"}).reply, Reply::string("v"));  // same db 2

  auto wrong = Client::create(io.executor(), options_for("redis://:wr0ng-pw@" + base), log);
  wrong->start();
  ASSERT_TRUE(wait_until([&] { return log.contains("WRONGPASS"); })) << log.all();
  const Result r = run(*wrong, {"GET", "k"});
  EXPECT_EQ(r.status.code(), Code::unavailable);
  EXPECT_NE(r.status.message().find("WRONGPASS"), std::string::npos) << r.status.message();
  EXPECT_FALSE(wrong->connected());

  auto none = Client::create(io.executor(), options_for("redis://" + base), log);
  none->start();
  ASSERT_TRUE(wait_until([&] { return log.contains("NOAUTH"); })) << log.all();

  wrong->stop();
  none->stop();
  good->stop();
  acl->stop();
  const std::string all = log.all();
  EXPECT_EQ(all.find("s3cr3t-pw"), std::string::npos) << all;
  EXPECT_EQ(all.find("wr0ng-pw"), std::string::npos) << all;
  EXPECT_EQ(r.status.message().find("wr0ng-pw"), std::string::npos);
}

TEST(RedisClient, UnixSocketAndDatabaseSelection) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  auto unix_client = testing::connected_client(io, options_for("unix://" + server.unix_socket() + "?db=3"), log);
  EXPECT_EQ(run(*unix_client, {"SET", "where", "db3"}).reply, Reply::status("OK"));
  auto tcp3 = testing::connected_client(io, options_for(server.url() + "/3"), log);
  auto tcp0 = testing::connected_client(io, options_for(server.url()), log);
  EXPECT_EQ(run(*tcp3, {"GET", "where"}).reply, Reply::string("db3"));
  EXPECT_TRUE(run(*tcp0, {"GET", "where"}).reply.is_nil());
  unix_client->stop();
  tcp3->stop();
  tcp0->stop();
}

TEST(RedisClient, NotStartedOrOverMaxPendingFailsAtOnceAndCompletionsArePosted) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  auto options = options_for(server.url());
  options.max_pending = 10;
  auto client = Client::create(io.executor(), options, log);

  std::promise<std::pair<Status, bool>> early;
  client->command({"PING"}, [&](Status s, Reply) { early.set_value({std::move(s), io.runs_in_io_thread()}); });
  auto [status, on_io_thread] = early.get_future().get();
  EXPECT_EQ(status.code(), Code::unavailable);
  EXPECT_EQ(status.message(), "redis not connected: client not started");
  EXPECT_TRUE(on_io_thread) << "completions are posted to the executor, never run inside the call";

  client->start();
  ASSERT_TRUE(wait_until([&] { return client->connected(); }));
  // A blocking command holds the connection; 9 more fit, the 11th is refused at once.
  std::atomic<int> unavailable{0};
  std::atomic<int> completed{0};
  client->command({"BLMOVE", "empty", "dst", "RIGHT", "LEFT", "0"}, 0ms, [&](Status, Reply) { completed++; });
  for (int i = 0; i < 15; ++i) {
    client->command({"GET", "k"}, [&](Status s, Reply) {
      if (s.code() == Code::unavailable && s.message().find("max_pending") != std::string::npos) {
        unavailable++;
      }
      completed++;
    });
  }
  ASSERT_TRUE(wait_until([&] { return unavailable.load() == 6; })) << unavailable.load();
  EXPECT_EQ(client->pending(), 10u);
  client->stop();
  EXPECT_TRUE(wait_until([&] { return completed.load() == 16; }));
}

TEST(RedisClient, StopWithCommandsPendingCompletesEachExactlyOnceUnavailable) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  CaptureLogger log;
  constexpr int kCommands = 1000;
  std::array<std::atomic<int>, kCommands + 1> calls{};
  std::atomic<int> unavailable{0};
  {
    IoThreads io;
    auto client = testing::connected_client(io, options_for(server.url()), log);
    // Everything queues behind a blocking BLMOVE (no timeout) on the same connection.
    auto record = [&](int i) {
      return [&, i](Status s, Reply) {
        calls[i]++;
        if (s.code() == Code::unavailable && s.message() == "redis client stopped") {
          unavailable++;
        }
      };
    };
    client->command({"BLMOVE", "empty", "dst", "RIGHT", "LEFT", "0"}, 0ms, record(kCommands));
    for (int i = 0; i < kCommands; ++i) {
      client->command({"SET", "k" + std::to_string(i), "v"}, 0ms, record(i));
    }
    ASSERT_TRUE(wait_until([&] { return client->pending() == kCommands + 1; }));
    client->stop();
    client->stop();  // idempotent
    std::atomic<int> after{0};
    client->command({"PING"}, [&](Status s, Reply) { after = s.code() == Code::unavailable ? 1 : 2; });
    io.drain();  // every posted completion has run once this returns
    EXPECT_EQ(after.load(), 1);
  }
  EXPECT_EQ(unavailable.load(), kCommands + 1);
  for (int i = 0; i <= kCommands; ++i) {
    ASSERT_EQ(calls[i].load(), 1) << "command " << i;
  }
}

/// A TCP peer that answers every connection with fixed bytes: not a Redis server.
class FakeServer {
 public:
  explicit FakeServer(std::string answer) : answer_(std::move(answer)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
    for (int c : clients_) {
      ::close(c);
    }
    ::close(fd_);
  }
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        continue;
      }
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        continue;
      }
      char buf[512];
      (void)::recv(c, buf, sizeof buf, 0);  // the client's PING
      (void)::send(c, answer_.data(), answer_.size(), MSG_NOSIGNAL);
      clients_.push_back(c);
      accepted_++;
    }
  }
  std::string answer_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::vector<int> clients_;
  std::thread thread_;
};

TEST(RedisClient, GarbageFromAPeerIsAConnectionErrorNotACrash) {
  struct Case {
    std::string answer;
    std::string logged;
  };
  const std::vector<Case> cases{
      {"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "Protocol error"},
      {"*20000000\r\n", "arrays of more than 1048576 elements"},
      {"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "nested multi bulk"},
      {"+PONG\r\n+PONG\r\n", "a reply no command waits for"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.logged);
    FakeServer fake(c.answer);
    IoThreads io;
    CaptureLogger log;
    auto options = options_for("redis://127.0.0.1:" + std::to_string(fake.port()));
    options.name.clear();  // handshake = PING
    auto client = Client::create(io.executor(), options, log);
    client->start();
    ASSERT_TRUE(wait_until([&] { return log.contains(c.logged); })) << log.all();
    if (c.answer != "+PONG\r\n+PONG\r\n") {
      EXPECT_FALSE(client->connected());
      const Result r = run(*client, {"GET", "k"});
      EXPECT_EQ(r.status.code(), Code::unavailable);
      EXPECT_NE(r.status.message().find("protocol error"), std::string::npos) << r.status.message();
    }
    // It keeps trying (with backoff), as it would against a real server that came back.
    EXPECT_TRUE(wait_until([&] { return fake.accepted() >= 2; }));
    client->stop();
  }
}

}  // namespace
}  // namespace phasekit::redis
