#pragma once
// The Engine.IO v4 transport: sessions over HTTP long-polling and WebSocket, the upgrade between
// them, the heartbeat and a bounded outbox of packets. What the messages mean is the business of the
// layer above, one EngineHandler per session: Socket.IO (phasekit/net/socketio_server.hpp), or an echo.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "phasekit/net/connection_limits.hpp"
#include "phasekit/net/deadline_lanes.hpp"
#include "phasekit/net/http_util.hpp"
#include "phasekit/net/server.hpp"
#include "phasekit/io_strand.hpp"
#include "phasekit/plugin/host.hpp"
#include "phasekit/protocol/engineio.hpp"

namespace phasekit::net {

/// Engine.IO's error codes, the {"code","message"} body of its 400 answers.
enum class EngineError : std::uint8_t {
  unknown_transport = 0,
  unknown_sid = 1,
  bad_handshake_method = 2,
  bad_request = 3,
  forbidden = 4,
  unsupported_protocol_version = 5,
};
/// The reference server's message for each code ("Session ID unknown", …).
std::string_view message_of(EngineError error) noexcept;

/// How the server closes a WebSocket (RFC 6455 §7.4: 4000-4999 are the application's).
enum class CloseCode : std::uint16_t {
  normal = 1000,
  too_slow = 4000,  // the client did not read what it was sent (the outbox went over max_outbox_bytes)
};

/// One Engine.IO session as the layer above sees it. Every member runs on strand() only.
class EngineSession {
 public:
  virtual ~EngineSession() = default;
  [[nodiscard]] virtual const std::string& sid() const = 0;
  [[nodiscard]] virtual IoStrand strand() const = 0;
  [[nodiscard]] virtual bool closed() const = 0;
  /// Queues a message packet (text or binary) for the client.
  virtual void send(engineio::Packet packet) = 0;
  /// Closes now; the handler's on_close follows.
  virtual void close(std::string_view reason, CloseCode code = CloseCode::normal) = 0;
  /// Closes once what is queued has been written.
  virtual void close_after_flush(std::string reason) = 0;
};

/// The layer above one session; called on the session's strand.
class EngineHandler {
 public:
  virtual ~EngineHandler() = default;
  virtual void on_message(engineio::Packet packet) = 0;
  /// The session is over (client, transport, heartbeat or server); nothing follows.
  virtual void on_close(std::string_view reason) = 0;
  /// The server shuts down: queue any goodbye; the session then closes after a flush.
  virtual void on_shutdown(std::string_view reason) = 0;
};

/// Makes the handler of a new session (which holds it only weakly: the session owns its handler).
using HandlerFactory = std::function<std::shared_ptr<EngineHandler>(const std::shared_ptr<EngineSession>&)>;

class EngineSessionImpl;
class WsConnection;

class EngineServer : public std::enable_shared_from_this<EngineServer> {
 public:
  /// Sessions run on strands of `executor`.
  EngineServer(ServerSettings settings, boost::asio::any_io_executor executor, HandlerFactory handlers,
               Metrics& metrics, Logger& log);

  /// A polling request (GET/POST/OPTIONS): the response to write.
  /// `peer` is the client's address (for MAX_CONNECTIONS_PER_ADDRESS).
  boost::asio::awaitable<Response> handle_polling(Request req, boost::asio::any_io_executor connection,
                                                  boost::asio::ip::address peer);
  /// A WebSocket upgrade: answers a refused handshake, or hands the socket to the session's strand,
  /// where it is read until it closes, and returns. `connection` is what the HTTP connection held (its
  /// place under the connection limits, the open-connection gauge): it lives as long as the WebSocket.
  /// Nothing of the HTTP request stays: an idle WebSocket holds its session, its stream and one frame.
  boost::asio::awaitable<void> handle_websocket(boost::beast::tcp_stream stream, Request req,
                                                boost::asio::ip::address peer, std::shared_ptr<void> connection);

  /// A polling request whose body was over MAX_PAYLOAD_BYTES (answered 413 unread): the session it
  /// names is closed, as the reference server closes a transport that sent too much.
  void refuse_oversized(const Request& req);
  /// Each session's handler says goodbye (on_shutdown), then the session closes.
  void close_all(const std::string& reason);
  /// Closes every WebSocket still open or closing at once, releasing what each holds (its place
  /// under the connection limits, the connection gauge) while those still exist. For when no thread
  /// runs the io_context any more: the server's end, whose pending handlers would otherwise release
  /// them only when the io_context goes, after the limits and the metrics.
  void abandon_websockets();
  /// From now on a handshake gets 503 {"code":4, "message":"server is shutting down"}.
  void begin_drain() noexcept { draining_ = true; }
  [[nodiscard]] std::size_t session_count() const;
  [[nodiscard]] const ServerSettings& settings() const noexcept { return settings_; }
  [[nodiscard]] Logger& log() noexcept { return log_; }

 private:
  friend class EngineSessionImpl;
  static constexpr std::size_t kPingDue = 0;  // heartbeats_ lane: PING_INTERVAL_MS after the last pong
  static constexpr std::size_t kPongDue = 1;  // heartbeats_ lane: PING_TIMEOUT_MS after a ping
  std::shared_ptr<EngineSessionImpl> find(const std::string& sid) const;
  void forget(const std::string& sid);
  std::shared_ptr<EngineSessionImpl> create(ConnectionLimits::Ticket place);
  Response error(const Request& req, EngineError code) const;
  /// A place for a new session from `peer`, or the 503 that refuses it.
  std::optional<Response> admit(const Request& req, const boost::asio::ip::address& peer,
                                ConnectionLimits::Ticket& place);
  Response error(const Request& req, int code, std::string_view message) const;
  void add_cors(const Request& req, Response& res) const;

  ServerSettings settings_;
  boost::asio::any_io_executor executor_;
  HandlerFactory handlers_;
  Logger& log_;
  DeadlineLanes<EngineSessionImpl> heartbeats_;  // every session's next ping or pong deadline
  mutable std::mutex mutex_;
  // Keyed by a view of the session's own sid, which the entry keeps alive.
  std::unordered_map<std::string_view, std::shared_ptr<EngineSessionImpl>> sessions_;
  std::vector<std::weak_ptr<WsConnection>> websockets_;  // under mutex_; pruned as it doubles
  std::size_t prune_websockets_at_ = 64;
  Gauge& connections_;
  std::atomic<bool> draining_{false};
  CountedLimits session_limits_;  // MAX_CONNECTIONS(_PER_ADDRESS) over sessions
};

}  // namespace phasekit::net
