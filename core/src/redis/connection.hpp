#pragma once
// Internal: one Redis connection with its lifecycle (connect, handshake, read loop, write queue,
// reconnect with backoff). ClientImpl and SubscriberImpl derive from it and decide what replies mean.
//
// Concurrency: I/O handlers run on a strand; the state they share with the public calls (which may come
// from any thread) is guarded by mu_. A mutex rather than "post everything to the strand" because
// stop() must be synchronous — no callback posted after it returns — without blocking on a strand that
// the caller's own thread may be needed to run. Nothing ever runs a user callback inside mu_: callbacks
// are posted to the user's executor.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "phasekit/redis/client.hpp"
#include "reply_reader.hpp"


namespace phasekit::redis::detail {

/// Appends the RESP encoding of argv (redisFormatCommandArgv) to out.
void encode_command(std::string& out, const std::vector<std::string>& argv);

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(boost::asio::any_io_executor ex, ClientOptions options, Logger& log, std::string_view role);
  virtual ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  void stop();
  [[nodiscard]] bool connected() const noexcept { return connected_.load(std::memory_order_acquire); }
  void on_state(std::function<void(bool)> listener);

 protected:
  enum class State : std::uint8_t { idle, connecting, handshaking, ready, backoff, stopped };

  // Hooks: called with mu_ held, from a strand handler or from stop().
  /// The handshake is done (state_ == ready). Call set_connected_locked() once usable.
  virtual void on_ready_locked() = 0;
  /// A reply after the handshake. May call fail_locked().
  virtual void on_reply_locked(Reply reply) = 0;
  /// The connection is gone (why: UNAVAILABLE) or the client stopped: fail whatever waits.
  virtual void on_down_locked(const Status& why) = 0;

  /// Queues encoded commands for writing (coalesced into one write while another is in flight).
  void write_locked(std::string_view encoded);
  /// Closes this connection with an error (logged at warn unless quiet) and schedules a reconnect.
  void fail_locked(const Status& why);
  /// Marks the connection usable and tells the listeners.
  void set_connected_locked();
  /// "redis not connected: <reason>".
  [[nodiscard]] std::string not_connected_message_locked() const;
  [[nodiscard]] bool stopped_locked() const noexcept { return state_ == State::stopped; }
  [[nodiscard]] bool usable_locked() const noexcept { return state_ == State::ready && connected_.load(); }
  /// Handshake done (commands may be written), even before set_connected_locked().
  [[nodiscard]] bool ready_locked() const noexcept { return state_ == State::ready; }

  template <class F>
  void post(F&& f) {
    boost::asio::post(ex_, std::forward<F>(f));
  }
  [[nodiscard]] std::shared_ptr<Connection> self() { return shared_from_this(); }
  [[nodiscard]] const boost::asio::strand<boost::asio::any_io_executor>& strand() const { return strand_; }
  [[nodiscard]] std::uint64_t generation_locked() const noexcept { return gen_; }

  boost::asio::any_io_executor ex_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  const ClientOptions options_;
  Logger& log_;
  const std::string role_;  // "client" or "subscriber", for log lines
  const std::string where_; // endpoint.display()
  mutable std::mutex mu_;

 private:
  void connect_locked();
  void try_endpoint_locked(std::size_t index);
  void start_tls_locked();
  void on_transport_connected_locked();
  void close_transport_locked();
  void start_read_locked();
  void start_write_locked();
  void on_read(std::uint64_t gen, const boost::system::error_code& ec, std::size_t n);
  void handle_reply_locked(Reply reply);
  void notify_locked(bool up);
  [[nodiscard]] std::chrono::milliseconds next_backoff_locked();

  State state_ = State::idle;
  std::uint64_t gen_ = 0;  // bumped on every (re)connect and close: handlers of an older one do nothing
  std::atomic<bool> connected_{false};
  std::string down_reason_ = "not started";

  using TlsStream = boost::asio::ssl::stream<boost::asio::generic::stream_protocol::socket>;

  boost::asio::generic::stream_protocol::socket socket_;
  // rediss://: the context is made once (tls_setup_error_ says why it could not be); each connection
  // takes socket_ into a stream of its own, which every operation on it keeps alive (shared_ptr), so a
  // close never frees a stream under an operation.
  std::optional<boost::asio::ssl::context> tls_context_;
  std::string tls_setup_error_;
  std::shared_ptr<TlsStream> tls_;
  boost::asio::ip::tcp::resolver resolver_;
  std::vector<boost::asio::generic::stream_protocol::endpoint> endpoints_;
  boost::asio::steady_timer connect_timer_;   // connect + handshake deadline
  boost::asio::steady_timer backoff_timer_;
  int attempt_ = 0;
  std::mt19937_64 rng_;

  std::unique_ptr<ReplyReader> reader_;  // a new one for every connection
  std::vector<char> read_buf_;
  std::string out_;       // queued, not yet written
  std::string writing_;   // being written
  bool write_in_flight_ = false;
  int handshake_left_ = 0;

  std::vector<std::shared_ptr<std::function<void(bool)>>> listeners_;
};

}  // namespace phasekit::redis::detail
