#include "phasekit/net/engine.hpp"

#include "phasekit/net/lingering_stream.hpp"
#include "ws_connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <optional>

#include "phasekit/random_id.hpp"

namespace phasekit::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = phasekit::websocket;
using json = nlohmann::json;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(use_awaitable);
using Query = std::map<std::string, std::string, std::less<>>;

std::string_view query_value(const Query& query, std::string_view key) {
  const auto it = query.find(key);
  return it == query.end() ? std::string_view{} : std::string_view(it->second);
}

/// How long a poll waits for packets while an upgrade is under way (the reference server: 100 ms).
constexpr std::chrono::milliseconds kProbedPoll{100};

/// Bytes a packet holds in the outbox.
std::size_t weight(const engineio::Packet& p) { return p.data.size() + 1; }

/// RFC 6455 §4.2.1: what beast::websocket::is_upgrade left to check of an opening handshake. A
/// refusal, or none.
std::optional<Response> refuse_handshake(const Request& req) {
  if (req[http::field::sec_websocket_version] != "13") {
    Response res = make_response(req, http::status::upgrade_required, "unsupported WebSocket version");
    res.set(http::field::sec_websocket_version, "13");
    res.keep_alive(false);
    return res;
  }
  if (!websocket::valid_key(req[http::field::sec_websocket_key])) {
    Response res = make_response(req, http::status::bad_request, "bad Sec-WebSocket-Key");
    res.keep_alive(false);
    return res;
  }
  return std::nullopt;
}

}  // namespace

std::string_view message_of(EngineError error) noexcept {
  switch (error) {
    case EngineError::unknown_transport: return "Transport unknown";
    case EngineError::unknown_sid: return "Session ID unknown";
    case EngineError::bad_handshake_method: return "Bad handshake method";
    case EngineError::bad_request: return "Bad request";
    case EngineError::forbidden: return "Forbidden";
    case EngineError::unsupported_protocol_version: return "Unsupported protocol version";
  }
  return "Bad request";
}

/// One Engine.IO session: its transport (polling, then perhaps a WebSocket), outbox and heartbeat.
/// All state lives on the strand.
class EngineSessionImpl final : public EngineSession,
                                public WsHandler,
                                public std::enable_shared_from_this<EngineSessionImpl> {
 public:
  using Ws = WsConnection;

  EngineSessionImpl(EngineServer& server, std::string sid, asio::any_io_executor executor)
      : server_(server),
        sid_(std::move(sid)),
        strand_(make_io_strand(executor)) {}

  void set_handler(std::shared_ptr<EngineHandler> handler) { handler_ = std::move(handler); }

  [[nodiscard]] const std::string& sid() const override { return sid_; }
  [[nodiscard]] IoStrand strand() const override { return strand_; }
  [[nodiscard]] bool closed() const override { return closed_; }
  /// Read off the strand by a WebSocket handshake: the WebSocket carries the session.
  [[nodiscard]] bool upgraded() const noexcept { return upgraded_; }
  /// Off the strand: claims the one upgrade a session may have; false when it has one already.
  bool claim_upgrade() noexcept {
    bool expected = false;
    return !upgraded_ && upgrading_.compare_exchange_strong(expected, true);
  }

  void send(engineio::Packet packet) override {
    if (closed_) {
      return;
    }
    outbox_bytes_ += weight(packet);
    outbox_.push_back(std::move(packet));
    // What the WebSocket has not written yet counts too: the outbox goes to it whole.
    const std::size_t queued = outbox_bytes_ + (ws_ ? ws_->unsent_bytes() : 0);
    if (queued > server_.settings_.max_outbox_bytes) {
      server_.log_.warn("client.too_slow", {{"sid", sid_}, {"queued_bytes", queued}});
      close("client too slow", CloseCode::too_slow);
      return;
    }
    if (upgraded_ && ws_) {
      pump();
    } else {
      wake_poll();
    }
  }

  void close(std::string_view reason, CloseCode code = CloseCode::normal) override {
    if (closed_) {
      return;
    }
    closed_ = true;
    wake_poll();
    if (handler_) {
      handler_->on_close(reason);
    }
    if (ws_) {
      ws_->close(static_cast<websocket::CloseCode>(code), reason);
      ws_.reset();
    }
    place_.release();
    server_.forget(sid_);
  }

  void close_after_flush(std::string reason) override {
    if (closed_) {
      return;
    }
    close_reason_ = std::make_unique<std::string>(std::move(reason));
    close_after_flush_ = true;
    if (upgraded_ && ws_) {
      pump();  // closes once the outbox is written
      return;
    }
    if (outbox_.empty()) {
      close(*close_reason_);
      return;
    }
    wake_poll();
  }

  void shutdown(std::string_view reason) {
    if (closed_) {
      return;
    }
    if (handler_) {
      handler_->on_shutdown(reason);
    }
    close_after_flush(std::string(reason));
  }

  std::string open_packet(bool websocket) const {
    const auto& s = server_.settings_;
    return "0" + engineio::open_payload(sid_, websocket ? std::vector<std::string>{} : std::vector<std::string>{"websocket"},
                                        s.ping_interval.count(), s.ping_timeout.count(), s.max_payload_bytes);
  }

  // ---- polling (every coroutine here runs on the session's strand) ----------------------------
  static awaitable<Response> open_polling(std::shared_ptr<EngineSessionImpl> self, Request req) {
    self->schedule_ping();
    Response res = make_response(req, http::status::ok, self->open_packet(false));
    self->server_.add_cors(req, res);
    co_return res;
  }

  static awaitable<Response> poll(std::shared_ptr<EngineSessionImpl> self, Request req) {
    co_return co_await self->do_poll(std::move(req));
  }

  static awaitable<Response> post(std::shared_ptr<EngineSessionImpl> self, Request req) {
    co_return self->do_post(std::move(req));
  }

  /// A WebSocket for this session (a new session, or the upgrade of a polling one), its handshake
  /// answered. Nothing of it waits in a coroutine: the connection calls back when a message comes.
  void start_websocket(const std::shared_ptr<Ws>& ws, bool upgrade) {
    if (closed_) {
      ws->close(websocket::CloseCode::going_away, "session closed");
      return;
    }
    ws_ = ws;
    ws->start(shared_from_this());
    if (upgrade) {
      asio::co_spawn(strand_, upgrade_deadline(shared_from_this(), ws, server_.settings_.upgrade_timeout),
                     asio::detached);
      return;
    }
    upgraded_ = true;
    send(engineio::Packet{engineio::PacketType::open, open_packet(true).substr(1), false});
    schedule_ping();
  }

  /// The handshake of an upgrade failed: the polling session goes on; a new session ends.
  void websocket_refused(bool upgrade) {
    if (upgrade) {
      upgrading_ = false;
    } else {
      close("websocket handshake failed");
    }
  }

 private:
  /// The reference server answers an HTTP request on a session the WebSocket carries with 400
  /// (TRANSPORT_MISMATCH) and leaves the session alone.
  awaitable<Response> do_poll(Request req) {
    if (upgraded_) {
      co_return server_.error(req, EngineError::bad_request);
    }
    if (poll_active_) {
      close("overlapping poll");
      co_return server_.error(req, EngineError::bad_request);
    }
    poll_active_ = true;
    if (!wake_) {
      wake_ = std::make_unique<asio::steady_timer>(strand_, asio::steady_timer::time_point::max());
    }
    asio::steady_timer& wake = *wake_;
    while (outbox_.empty() && !closed_ && !upgraded_) {
      if (probed_) {
        // An upgrade is under way: a poll ends within kProbedPoll, with a noop, so that the client
        // can pause polling and send "5". (One that was pending at "2probe" got the noop already;
        // this one came after it, before the client read "3probe". The reference server's
        // check interval does the same every 100 ms.)
        wake.expires_after(kProbedPoll);
        co_await wake.async_wait(kTuple);
        wake.expires_at(asio::steady_timer::time_point::max());
        break;
      }
      co_await wake.async_wait(kTuple);
    }
    poll_active_ = false;
    std::string body;
    if (outbox_.empty()) {
      // Closed by the client (its close packet): a noop ends this poll, as the reference server's
      // polling transport does; closed by the server: the close packet. Upgraded: a noop.
      body = closed_ && !closed_by_client_ ? "1" : "6";
    } else {
      std::vector<engineio::Packet> packets;
      packets.swap(outbox_);
      outbox_bytes_ = 0;
      body = engineio::encode_payload(packets);
      if (close_after_flush_) {
        close(*close_reason_);  // the response below still carries the last packets
      }
    }
    co_return make_response(req, http::status::ok, std::move(body));
  }

  Response do_post(Request req) {
    if (upgraded_) {
      return server_.error(req, EngineError::bad_request);
    }
    if (post_active_) {
      close("overlapping post");
      return server_.error(req, EngineError::bad_request);
    }
    engineio::Limits limits;
    limits.max_payload = server_.settings_.max_payload_bytes;
    auto packets = engineio::decode_payload(req.body(), limits);
    if (!packets) {
      server_.log_.info("client.bad_payload", {{"sid", sid_}, {"error", packets.error().message}});
      close("parse error");
      return server_.error(req, EngineError::bad_request);
    }
    post_active_ = true;
    for (auto& p : *packets) {
      if (closed_) {
        break;
      }
      on_packet(std::move(p));
    }
    post_active_ = false;
    return make_response(req, http::status::ok, "ok");
  }

  // ---- websocket (WsHandler: called on the strand by the session's WsConnection) ---------------
  void on_ws_message(const std::shared_ptr<Ws>& ws, bool text, std::string data) override {
    if (closed_ || ws_ != ws) {
      return;
    }
    if (!text) {
      on_packet(engineio::Packet{engineio::PacketType::message, std::move(data), true});
      return;
    }
    auto packet = engineio::decode_text(data);
    if (!packet) {
      close("parse error");
      return;
    }
    if (upgraded_) {
      on_packet(std::move(*packet));
      return;
    }
    on_probe_packet(ws, *packet);
  }

  void on_ws_drained(const std::shared_ptr<Ws>& ws) override {
    if (ws_ == ws) {
      pump();
    }
  }

  void on_ws_lost(const std::shared_ptr<Ws>& ws, std::string_view reason) override { lose_websocket(ws, reason); }

  /// The upgrade of a polling session: "2probe" → "3probe", then "5" moves the session to this
  /// WebSocket. Anything else aborts the upgrade (the polling session stays).
  void on_probe_packet(const std::shared_ptr<Ws>& ws, const engineio::Packet& packet) {
    using engineio::PacketType;
    if (packet.type == PacketType::ping && packet.data == "probe") {
      probed_ = true;
      ws->send(websocket::Opcode::text, "3probe");
      send(engineio::Packet{PacketType::noop, "", false});  // ends the pending poll so the client can upgrade
      return;
    }
    if (packet.type == PacketType::upgrade) {
      upgraded_ = true;
      upgrading_ = false;
      probed_ = false;
      // The noops that were to end a poll are not for the WebSocket.
      std::erase_if(outbox_, [this](const engineio::Packet& p) {
        const bool noop = p.type == engineio::PacketType::noop;
        outbox_bytes_ -= noop ? weight(p) : 0;
        return noop;
      });
      wake_poll();
      pump();
      return;
    }
    lose_websocket(ws, "unexpected packet during upgrade");
  }

  /// An upgrade that has not completed within upgrade_timeout is dropped (its WebSocket closed), so
  /// a client cannot hold a second connection per session by probing and never upgrading.
  /// (Nothing to cancel: it holds neither the session nor the WebSocket, only a timer in its frame.)
  static awaitable<void> upgrade_deadline(std::weak_ptr<EngineSessionImpl> weak, std::weak_ptr<Ws> weak_ws,
                                          std::chrono::milliseconds timeout) {
    asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
    co_await timer.async_wait(kTuple);
    const auto self = weak.lock();
    const auto ws = weak_ws.lock();
    if (self && ws && !self->closed_ && self->ws_ == ws && !self->upgraded_) {
      self->server_.log_.info("client.upgrade_timeout", {{"sid", self->sid_}});
      self->lose_websocket(ws, "upgrade timeout");
    }
  }

  /// The WebSocket failed or closed: the session ends if it was the transport; an upgrade that
  /// did not complete is dropped and the polling session goes on.
  void lose_websocket(const std::shared_ptr<Ws>& ws, std::string_view reason) {
    if (ws_ != ws) {
      return;
    }
    if (upgraded_) {
      close(reason);
      return;
    }
    ws_.reset();
    upgrading_ = false;
    probed_ = false;
    ws->close(websocket::CloseCode::normal, "");
  }

  /// Hands the outbox to the WebSocket, every packet in one write, unless a write is in flight (its
  /// completion calls back: on_ws_drained). Packets wait in the outbox meanwhile, where
  /// max_outbox_bytes bounds them.
  void pump() {
    if (closed_ || !upgraded_ || !ws_ || ws_->writing()) {
      return;
    }
    if (outbox_.empty()) {
      if (close_after_flush_) {
        close(*close_reason_);
      }
      return;
    }
    for (const engineio::Packet& packet : outbox_) {
      if (packet.binary) {
        ws_->queue(websocket::Opcode::binary, packet.data);
      } else {
        ws_->queue(websocket::Opcode::text, engineio::encode_text(packet));
      }
    }
    std::vector<engineio::Packet>().swap(outbox_);  // an idle session keeps no buffer
    outbox_bytes_ = 0;
    ws_->flush();
  }

  /// The next ping is due one PING_INTERVAL_MS from now (the server's heartbeat lanes hold the
  /// deadline; a newer one makes it stale).
  void schedule_ping() { server_.heartbeats_.add(EngineServer::kPingDue, weak_from_this(), ++heartbeat_); }

 public:
  /// A deadline of this session's heartbeat came (on the strand): send the ping and wait
  /// PING_TIMEOUT_MS for its pong, or close when that wait is over and no pong came.
  void on_heartbeat(std::size_t lane, std::uint32_t token) {
    if (closed_ || token != heartbeat_) {
      return;
    }
    if (lane == EngineServer::kPingDue) {
      send(engineio::Packet{engineio::PacketType::ping, "", false});
      awaiting_pong_ = true;
      server_.heartbeats_.add(EngineServer::kPongDue, weak_from_this(), ++heartbeat_);
    } else if (awaiting_pong_) {
      close("ping timeout");
    }
  }

 private:
  /// Ends a poll that waits for packets (or for the session to change).
  void wake_poll() {
    if (wake_) {
      wake_->cancel();
    }
  }

  void on_packet(engineio::Packet packet) {
    using engineio::PacketType;
    switch (packet.type) {
      case PacketType::pong:
        if (awaiting_pong_) {
          awaiting_pong_ = false;
          schedule_ping();
        }
        return;
      case PacketType::message:
        if (handler_) {
          handler_->on_message(std::move(packet));
        }
        return;
      case PacketType::close:
        closed_by_client_ = true;
        close("transport close");
        return;
      case PacketType::noop: return;
      default: close("unexpected packet"); return;
    }
  }

  EngineServer& server_;
  std::string sid_;
  IoStrand strand_;
  std::unique_ptr<asio::steady_timer> wake_;  // what a poll waits on; only once one came (not for a WebSocket)
  std::uint32_t heartbeat_ = 0;               // the token of this session's pending heartbeat deadline
  std::shared_ptr<EngineHandler> handler_;
  std::vector<engineio::Packet> outbox_;  // a vector: an empty deque holds a 512-byte block
  std::size_t outbox_bytes_ = 0;
  bool closed_ = false;
  bool closed_by_client_ = false;
  bool poll_active_ = false;
  bool post_active_ = false;
  std::atomic<bool> upgraded_{false};   // the WebSocket carries the session (read by handshakes, off the strand)
  std::atomic<bool> upgrading_{false};  // an upgrade WebSocket is being probed
  bool awaiting_pong_ = false;
  bool probed_ = false;  // the upgrade's probe was answered, its "5" not yet received
  bool close_after_flush_ = false;
  std::unique_ptr<std::string> close_reason_;  // with close_after_flush_ (rare: not inline)
  std::shared_ptr<Ws> ws_;
 public:
  ConnectionLimits::Ticket place_;  // this session's place under MAX_CONNECTIONS(_PER_ADDRESS)
};

EngineServer::EngineServer(ServerSettings settings, asio::any_io_executor executor, HandlerFactory handlers,
                           Metrics& metrics, Logger& log)
    : settings_(std::move(settings)),
      executor_(std::move(executor)),
      handlers_(std::move(handlers)),
      log_(log),
      heartbeats_(io_executor_of(executor_), {settings_.ping_interval, settings_.ping_timeout},
                  [](std::shared_ptr<EngineSessionImpl> session, std::size_t lane, std::uint32_t token) {
                    auto strand = session->strand();
                    asio::post(strand, [session = std::move(session), lane, token] { session->on_heartbeat(lane, token); });
                  }),
      connections_(metrics.gauge("phasekit_engineio_sessions", "Engine.IO sessions open.")),
      session_limits_("session", settings_.max_connections, settings_.max_connections_per_address, metrics) {}

Response EngineServer::error(const Request& req, EngineError code) const {
  return error(req, static_cast<int>(code), message_of(code));
}

Response EngineServer::error(const Request& req, int code, std::string_view message) const {
  Response res = make_response(req, http::status::bad_request, json{{"code", code}, {"message", message}}.dump(),
                               "application/json");
  add_cors(req, res);
  return res;
}

void EngineServer::add_cors(const Request& req, Response& res) const {
  net::add_cors(req, judge_origin(settings_.origins, req), res);
}

std::optional<Response> EngineServer::admit(const Request& req, const asio::ip::address& peer,
                                            ConnectionLimits::Ticket& place) {
  switch (session_limits_.admit(peer, place)) {
    case Admission::admitted: return std::nullopt;
    case Admission::total_full: return json_error(req, http::status::service_unavailable, 4, "server is full");
    case Admission::address_full:
      return json_error(req, http::status::service_unavailable, 4, "too many connections from this address");
  }
  return json_error(req, http::status::service_unavailable, 4, "server is full");
}

std::shared_ptr<EngineSessionImpl> EngineServer::find(const std::string& sid) const {
  const std::lock_guard lock(mutex_);
  const auto it = sessions_.find(sid);
  return it == sessions_.end() ? nullptr : it->second;
}

void EngineServer::forget(const std::string& sid) {
  std::shared_ptr<EngineSessionImpl> gone;  // outlives the entry, whose key is a view of its sid
  const std::lock_guard lock(mutex_);
  if (const auto it = sessions_.find(sid); it != sessions_.end()) {
    gone = std::move(it->second);
    sessions_.erase(it);
  }
  connections_.set(static_cast<double>(sessions_.size()));
}

std::size_t EngineServer::session_count() const {
  const std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::shared_ptr<EngineSessionImpl> EngineServer::create(ConnectionLimits::Ticket place) {
  // Not make_shared: the heartbeat lanes hold a closed session's deadline weakly until it comes due
  // (at most PING_INTERVAL_MS), and a weak pointer into a make_shared block keeps the whole session's
  // memory; apart, it keeps only the control block (32 B), so a client that connects and closes as fast
  // as it can does not pin 280 B per connection for 25 s. The cost: one more allocation per session.
  std::shared_ptr<EngineSessionImpl> session(new EngineSessionImpl(*this, random_url_id(), executor_));
  session->place_ = std::move(place);
  session->set_handler(handlers_(session));
  const std::lock_guard lock(mutex_);
  sessions_[session->sid()] = session;
  connections_.set(static_cast<double>(sessions_.size()));
  return session;
}

void EngineServer::refuse_oversized(const Request& req) {
  Query query;
  if (!parse_query(req.target(), query) || query.count("sid") == 0) {
    return;
  }
  if (auto session = find(query["sid"])) {
    log_.info("client.bad_payload", {{"sid", query["sid"]}, {"error", "payload over MAX_PAYLOAD_BYTES"}});
    asio::post(session->strand(), [session] { session->close("payload too large"); });
  }
}

void EngineServer::abandon_websockets() {
  std::vector<std::weak_ptr<WsConnection>> all;
  {
    const std::lock_guard lock(mutex_);
    all.swap(websockets_);
  }
  for (const auto& w : all) {
    if (auto ws = w.lock()) {
      ws->abandon();
    }
  }
}

void EngineServer::close_all(const std::string& reason) {
  std::vector<std::shared_ptr<EngineSessionImpl>> all;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [sid, s] : sessions_) {
      all.push_back(s);
    }
  }
  for (auto& s : all) {
    asio::post(s->strand(), [s, reason] { s->shutdown(reason); });
  }
}

awaitable<Response> EngineServer::handle_polling(Request req, asio::any_io_executor /*connection*/,
                                                 asio::ip::address peer) {
  const OriginVerdict origin = judge_origin(settings_.origins, req);
  if (req.method() == http::verb::options) {
    co_return preflight(req, origin);
  }
  if (origin == OriginVerdict::refused) {
    co_return origin_refused(req);
  }
  Query query;
  if (!parse_query(req.target(), query)) {
    co_return error(req, EngineError::bad_request);
  }
  if (query_value(query, "EIO") != "4") {
    co_return error(req, EngineError::unsupported_protocol_version);
  }
  if (query_value(query, "transport") != "polling") {
    co_return error(req, EngineError::unknown_transport);
  }
  const auto sid = query.find("sid");
  if (sid == query.end()) {
    if (req.method() != http::verb::get) {
      co_return error(req, EngineError::bad_handshake_method);
    }
    if (draining_) {
      Response res = error(req, static_cast<int>(EngineError::forbidden), "server is shutting down");
      res.result(http::status::service_unavailable);
      co_return res;
    }
    ConnectionLimits::Ticket place;
    if (auto refused = admit(req, peer, place)) {
      co_return std::move(*refused);
    }
    auto session = create(std::move(place));
    co_return co_await asio::co_spawn(session->strand(), EngineSessionImpl::open_polling(session, std::move(req)),
                                      use_awaitable);
  }
  auto session = find(sid->second);
  if (!session) {
    co_return error(req, EngineError::unknown_sid);
  }
  // Session state lives on the session's strand: run the request there (co_spawn, not post: a
  // posted continuation would resume on this connection's executor).
  const http::verb method = req.method();
  if (method == http::verb::get) {
    co_return co_await asio::co_spawn(session->strand(), EngineSessionImpl::poll(session, std::move(req)),
                                      use_awaitable);
  }
  if (method == http::verb::post) {
    co_return co_await asio::co_spawn(session->strand(), EngineSessionImpl::post(session, std::move(req)),
                                      use_awaitable);
  }
  co_return error(req, static_cast<int>(EngineError::bad_handshake_method), "Bad request method");
}

awaitable<void> EngineServer::handle_websocket(beast::tcp_stream stream, Request req, asio::ip::address peer,
                                               std::shared_ptr<void> connection) {
  if (judge_origin(settings_.origins, req) == OriginVerdict::refused) {
    // Browsers send Origin on every WebSocket handshake and apply no CORS to it: this is the check.
    Response res = origin_refused(req);
    co_await http::async_write(stream, res, kTuple);
    co_return;
  }
  Query query;
  if (!parse_query(req.target(), query) || query_value(query, "EIO") != "4" ||
      query_value(query, "transport") != "websocket") {
    Response res = error(req, EngineError::bad_request);
    co_await http::async_write(stream, res, kTuple);
    co_return;
  }
  if (auto refused = refuse_handshake(req)) {
    co_await http::async_write(stream, *refused, kTuple);
    co_return;
  }
  std::shared_ptr<EngineSessionImpl> session;
  const bool upgrade = query.count("sid") != 0;
  if (!upgrade && draining_) {
    Response res = error(req, static_cast<int>(EngineError::forbidden), "server is shutting down");
    res.result(http::status::service_unavailable);
    co_await http::async_write(stream, res, kTuple);
    co_return;
  }
  if (upgrade) {
    session = find(query["sid"]);
    // A session the WebSocket already carries, or one with an upgrade under way, keeps its
    // transport: the second WebSocket gets 400 Bad request (the session exists: not "unknown").
    const auto refused = !session ? std::optional(EngineError::unknown_sid)
                         : !session->claim_upgrade() ? std::optional(EngineError::bad_request)
                                                     : std::nullopt;
    if (refused) {
      Response res = error(req, *refused);
      res.keep_alive(false);
      co_await http::async_write(stream, res, kTuple);
      co_return;
    }
  }
  if (!session) {
    ConnectionLimits::Ticket place;
    if (auto refused = admit(req, peer, place)) {
      co_await http::async_write(stream, *refused, kTuple);
      co_return;
    }
    session = create(std::move(place));
  }
  http::response<http::empty_body> accepted{http::status::switching_protocols, req.version()};
  accepted.set(http::field::server, "phasekit");
  accepted.set(http::field::upgrade, "websocket");
  accepted.set(http::field::connection, "Upgrade");
  accepted.set(http::field::sec_websocket_accept, websocket::accept_key(req[http::field::sec_websocket_key]));
  if (auto [written, n] = co_await http::async_write(stream, accepted, kTuple); written) {
    asio::post(session->strand(), [session, upgrade] { session->websocket_refused(upgrade); });
    co_return;
  }
  // Move the socket onto the session's strand: the WebSocket and the session's state are then
  // serialized by one strand.
  beast::error_code ec;
  asio::ip::tcp::socket socket = beast::get_lowest_layer(stream).release_socket();
  const auto protocol = socket.local_endpoint(ec).protocol();
  const auto native = socket.release(ec);
  WsConnection::Socket moved(session->strand());
  if (!ec) {
    moved.assign(protocol, native, ec);
  }
  if (ec) {
    asio::post(session->strand(), [session, upgrade] { session->websocket_refused(upgrade); });
    co_return;
  }
  // The HTTP connection's coroutine (its parser, buffer and stream) ends here; the WebSocket holds
  // the connection's place.
  auto ws = std::make_shared<WsConnection>(std::move(moved), settings_.max_payload_bytes, std::move(connection));
  {
    const std::lock_guard lock(mutex_);
    if (websockets_.size() >= prune_websockets_at_) {
      std::erase_if(websockets_, [](const std::weak_ptr<WsConnection>& w) { return w.expired(); });
      prune_websockets_at_ = std::max<std::size_t>(64, 2 * websockets_.size());
    }
    websockets_.push_back(ws);
  }
  asio::post(session->strand(), [session, ws = std::move(ws), upgrade] { session->start_websocket(ws, upgrade); });
}

}  // namespace phasekit::net
