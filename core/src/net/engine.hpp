#pragma once
// Engine.IO v4 sessions (long-polling and WebSocket, with the upgrade between them and the
// heartbeat) carrying Socket.IO v5 packets for the namespace "/" to the ToolService.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "app/tool_service.hpp"
#include "net/connection_limits.hpp"
#include "net/http_util.hpp"
#include "net/server.hpp"

namespace phasekit::net {

class EngineSession;

class EngineServer : public std::enable_shared_from_this<EngineServer> {
 public:
  EngineServer(ServerSettings settings, std::shared_ptr<app::ToolService> service, Metrics& metrics, Logger& log);

  /// A polling request (GET/POST/OPTIONS on /socket.io/): the response to write.
  /// `peer` is the client's address (for MAX_CONNECTIONS_PER_ADDRESS).
  boost::asio::awaitable<Response> handle_polling(Request req, boost::asio::any_io_executor connection,
                                                  boost::asio::ip::address peer);
  /// A WebSocket upgrade on /socket.io/: runs until the socket closes.
  boost::asio::awaitable<void> handle_websocket(boost::beast::tcp_stream stream, Request req,
                                                boost::asio::ip::address peer);

  void close_all(const std::string& reason);
  /// From now on a handshake gets 503 {"code":..., "message":"server is shutting down"}.
  void begin_drain() noexcept { draining_ = true; }
  [[nodiscard]] std::size_t session_count() const;
  [[nodiscard]] const ServerSettings& settings() const noexcept { return settings_; }
  [[nodiscard]] app::ToolService& service() noexcept { return *service_; }
  [[nodiscard]] Logger& log() noexcept { return log_; }

 private:
  friend class EngineSession;
  std::shared_ptr<EngineSession> find(const std::string& sid) const;
  void forget(const std::string& sid);
  std::shared_ptr<EngineSession> create(bool websocket, ConnectionLimits::Ticket place);
  /// A place for a new session from `peer`, or the 503 that refuses it.
  std::optional<Response> admit(const Request& req, const boost::asio::ip::address& peer,
                                ConnectionLimits::Ticket& place);
  Response error(const Request& req, int code, std::string_view message) const;
  void add_cors(const Request& req, Response& res) const;

  ServerSettings settings_;
  std::shared_ptr<app::ToolService> service_;
  Metrics& metrics_;
  Logger& log_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<EngineSession>> sessions_;
  Gauge& connections_;
  std::atomic<bool> draining_{false};
  CountedLimits session_limits_;  // MAX_CONNECTIONS(_PER_ADDRESS) over sessions
};

}  // namespace phasekit::net
