#pragma once
// Helpers for the Redis client tests: an io_context on its own threads, a logger that keeps its lines,
// synchronous wrappers with deadlines, and a condition wait with a deadline (no sleeps for luck).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "phasekit/redis/client.hpp"
#include "support/redis_server.hpp"

namespace phasekit::redis::testing {

#define PHASEKIT_REQUIRE_REDIS_SERVER()                                                                         \
  do {                                                                                                           \
    if (!::phasekit::test::RedisServer::available()) {                                                           \
      GTEST_SKIP() << "redis-server is not installed (" << ::phasekit::test::RedisServer::kBinary                 \
                   << "); install it with scripts/setup.sh or apt-get install redis-server";                      \
    }                                                                                                            \
  } while (false)

/// Waits until pred() holds, checking every 2 ms, for at most `deadline`.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) {
      return pred();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

class IoThreads {
 public:
  explicit IoThreads(int n = 2) : guard_(boost::asio::make_work_guard(ioc_)) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
  }
  ~IoThreads() {
    ioc_.stop();
    join();
  }
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;
  boost::asio::any_io_executor executor() { return ioc_.get_executor(); }
  /// Lets the threads finish every queued handler and return (the clients must be stopped first).
  void drain() {
    guard_.reset();
    join();
  }
  bool runs_in_io_thread() const {
    for (const auto& t : threads_) {
      if (t.get_id() == std::this_thread::get_id()) {
        return true;
      }
    }
    return false;
  }

 private:
  void join() {
    for (auto& t : threads_) {
      if (t.joinable()) {
        t.join();
      }
    }
  }
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

/// Keeps every line (message and fields) so tests can look for text, or for text that must be absent.
class CaptureLogger final : public Logger {
 public:
  bool enabled(LogLevel) const noexcept override { return true; }
  void write(LogLevel, std::string_view msg, std::span<const LogField> fields) noexcept override {
    std::string line(msg);
    for (const LogField& f : fields) {
      line += " ";
      line += f.key();
      line += "=";
      switch (f.type()) {
        case LogField::Type::integer: line += std::to_string(f.integer()); break;
        case LogField::Type::unsigned_integer: line += std::to_string(f.unsigned_integer()); break;
        case LogField::Type::real: line += std::to_string(f.real()); break;
        case LogField::Type::boolean: line += f.boolean() ? "true" : "false"; break;
        case LogField::Type::text:
        case LogField::Type::secret: line += f.text(); break;
      }
    }
    const std::lock_guard lock(mu_);
    lines_.push_back(std::move(line));
  }
  std::string all() const {
    const std::lock_guard lock(mu_);
    std::string out;
    for (const auto& l : lines_) {
      out += l;
      out += '\n';
    }
    return out;
  }
  bool contains(std::string_view text) const { return all().find(text) != std::string::npos; }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

struct Result {
  Status status;
  Reply reply;
};

/// Runs one command and waits (at most `deadline`) for its completion.
inline Result run(Client& client, std::vector<std::string> argv,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(3000),
                  std::chrono::milliseconds deadline = std::chrono::seconds(15)) {
  auto promise = std::make_shared<std::promise<Result>>();
  auto future = promise->get_future();
  client.command(std::move(argv), timeout, [promise](Status s, Reply r) {
    promise->set_value(Result{std::move(s), std::move(r)});
  });
  if (future.wait_for(deadline) != std::future_status::ready) {
    ADD_FAILURE() << "no completion within " << deadline.count() << " ms";
    return Result{Status(Code::internal, "test deadline"), Reply{}};
  }
  return future.get();
}

inline ClientOptions options_for(const std::string& url, std::string name = "test") {
  ClientOptions o;
  const Status s = parse_url(url, o.endpoint);
  EXPECT_TRUE(s.ok()) << s.message();
  o.name = std::move(name);
  o.backoff_initial = std::chrono::milliseconds(20);
  o.backoff_max = std::chrono::milliseconds(300);
  return o;
}

/// Creates, starts and waits for the connection.
inline std::shared_ptr<Client> connected_client(IoThreads& io, ClientOptions options, Logger& log) {
  auto client = Client::create(io.executor(), std::move(options), log);
  client->start();
  EXPECT_TRUE(wait_until([&] { return client->connected(); })) << "client did not connect";
  return client;
}

}  // namespace phasekit::redis::testing
