#pragma once
// An asynchronous Redis client on Boost.Asio: one TCP (TLS with rediss://, or unix socket) connection,
// many commands in flight, replies matched to commands in order. hiredis is used only as the RESP codec.
//
// Semantics (the queue and store plugins rely on them):
// * Thread-safe: every member may be called from any thread.
// * Completions are always posted to the executor given to create(), never run inside the call.
// * Every command completes exactly once.
// * Errors. A Redis error reply ("-ERR …", "-WRONGTYPE …") is NOT a transport failure: the command
//   completes with an OK Status and reply.is_error() true, reply.str() holding the text (so one failed
//   command of a pipeline does not hide the replies of the others). Use reply_status() to fold both
//   into one Status. The Status is not OK only for transport problems:
//     UNAVAILABLE  not connected ("redis not connected: <reason>"), connection lost while waiting,
//                  over max_pending, client stopped, or another command of the connection timed out;
//     TIMEOUT      no reply within the command's timeout. The connection is then closed and opened
//                  again (a late reply would be paired with the wrong command); every other command
//                  waiting on it completes UNAVAILABLE;
//     BAD_REQUEST  an empty argv.
// * No queueing while down: a command issued while disconnected fails at once. Callers sit behind a
//   circuit breaker and must fail fast; the client reconnects on its own (backoff with full jitter).
// * Blocking commands (BLMOVE, BRPOP …) hold up every command behind them on the connection: give them
//   their own Client, with a timeout above their block time.
// * Destroying the last reference to the Client stops it (as stop() does).
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "phasekit/plugin/log.hpp"
#include "phasekit/redis/reply.hpp"
#include "phasekit/redis/url.hpp"
#include "phasekit/status.hpp"

namespace phasekit::redis {

struct ClientOptions {
  Endpoint endpoint;
  std::string name;                                  // CLIENT SETNAME and log lines ("queue", "store")
  std::chrono::milliseconds connect_timeout{2000};   // connect + AUTH/SELECT/SETNAME
  std::chrono::milliseconds command_timeout{3000};   // default per command
  std::chrono::milliseconds backoff_initial{100};    // reconnect: doubles with full jitter up to backoff_max
  std::chrono::milliseconds backoff_max{5000};
  std::size_t max_pending = 100000;                  // commands queued or awaiting a reply; beyond: UNAVAILABLE at once
};

namespace detail {
class ClientImpl;
}

class Client : public std::enable_shared_from_this<Client> {
 public:
  using Done = std::function<void(Status, Reply)>;
  using PipelineDone = std::function<void(Status, std::vector<Reply>)>;

  static std::shared_ptr<Client> create(boost::asio::any_io_executor ex, ClientOptions options, Logger& log);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Connects (AUTH, SELECT, CLIENT SETNAME as the endpoint says) and reconnects forever with backoff until
  /// stop(). Returns at once; watch connected() or on_state().
  void start();
  /// Closes the connection; every pending command completes UNAVAILABLE ("redis client stopped").
  /// No callback is posted after stop() returns (those posted before may still run). Idempotent; the
  /// client cannot be started again.
  void stop();

  /// Encodes `argv` before it returns (the caller may reuse or drop it at once) and keeps only its name.
  void command(const std::vector<std::string>& argv, Done done);  // options.command_timeout
  /// timeout: for a blocking command, its block time plus a margin; 0 or less: no timeout (BLMOVE … 0).
  void command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, Done done);
  /// Written in one go, replies in order. done gets OK with one Reply per command (error replies included),
  /// or the first transport failure and no replies. Empty: OK with no replies. One timeout for all:
  /// options.command_timeout.
  void pipeline(std::vector<std::vector<std::string>> commands, PipelineDone done);

  /// True between a completed handshake and the next disconnect.
  [[nodiscard]] bool connected() const noexcept;
  /// listener(true) after each successful connect (handshake done), listener(false) after each
  /// disconnect (including stop()). Posted like completions, in order.
  void on_state(std::function<void(bool connected)> listener);

  /// Commands queued or awaiting a reply (for metrics).
  [[nodiscard]] std::size_t pending() const;

 private:
  explicit Client(std::shared_ptr<detail::ClientImpl> impl);
  std::shared_ptr<detail::ClientImpl> impl_;
};

}  // namespace phasekit::redis
