#include "net/engine.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>

#include <deque>
#include <random>

#include "protocol/engineio.hpp"
#include "protocol/socketio.hpp"

namespace phasekit::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using json = nlohmann::json;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(use_awaitable);

std::string random_sid() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string sid(20, ' ');
  for (auto& c : sid) {
    c = kAlphabet[rng() % 64];
  }
  return sid;
}

}  // namespace

/// One Engine.IO session: its transport, outbox, heartbeat and the Socket.IO socket on "/".
class EngineSession : public std::enable_shared_from_this<EngineSession> {
 public:
  using Ws = websocket::stream<beast::tcp_stream>;

  struct Outgoing {
    std::string data;  // Engine.IO packet as text ("4…") or, when binary, the raw bytes
    bool binary = false;
  };

  EngineSession(EngineServer& server, std::string sid, asio::any_io_executor executor)
      : server_(server),
        sid_(std::move(sid)),
        strand_(asio::make_strand(std::move(executor))),
        wake_(strand_),
        ping_timer_(strand_) {
    wake_.expires_at(asio::steady_timer::time_point::max());
  }

  [[nodiscard]] const std::string& sid() const { return sid_; }
  [[nodiscard]] asio::strand<asio::any_io_executor>& strand() { return strand_; }
  [[nodiscard]] bool closed() const { return closed_; }
  [[nodiscard]] bool websocket_mode() const { return ws_active_; }

  std::string open_packet(bool websocket) const {
    return "0" + engineio::open_payload(sid_, websocket ? std::vector<std::string>{} : std::vector<std::string>{"websocket"},
                                        server_.settings_.ping_interval.count(), server_.settings_.ping_timeout.count(),
                                        server_.settings_.max_payload_bytes);
  }

  void start_heartbeat() { schedule_ping(); }

  /// Queues an Engine.IO packet (on the strand).
  void send(Outgoing packet) {
    if (closed_) {
      return;
    }
    outbox_bytes_ += packet.data.size();
    outbox_.push_back(std::move(packet));
    if (outbox_bytes_ > server_.settings_.max_outbox_bytes) {
      server_.log_.warn("client.too_slow", {{"sid", sid_}, {"queued_bytes", outbox_bytes_}});
      close("client too slow");
      return;
    }
    wake_.cancel();
  }

  void send_text(std::string text) { send({std::move(text), false}); }

  /// Tells the client why (a Socket.IO disconnect, so socket.io-client reports "io server disconnect"),
  /// then closes once that has been written.
  void close_gracefully(std::string reason) {
    if (closed_) {
      return;
    }
    if (app_session_) {
      server_.service_->on_disconnect(app_session_, reason);
      app_session_.reset();
      send_socketio(socketio::Packet::disconnect("/"));
    }
    close_reason_ = std::move(reason);
    close_after_flush_ = true;
    if (outbox_.empty()) {
      close(close_reason_);
      return;
    }
    wake_.cancel();
  }

  /// Ends the session: the transport closes, the app session detaches.
  void close(std::string_view reason) {
    if (closed_) {
      return;
    }
    closed_ = true;
    ping_timer_.cancel();
    wake_.cancel();
    if (app_session_) {
      server_.service_->on_disconnect(app_session_, reason);
      app_session_.reset();
    }
    if (ws_) {
      ws_->async_close(websocket::close_reason(websocket::close_code::normal, std::string(reason).substr(0, 100)),
                       [ws = ws_](beast::error_code) {});
    }
    place_.release();
    server_.forget(sid_);
  }

  // ---- polling (every coroutine here runs on the session's strand) ----------------------------
  static awaitable<Response> open_polling(std::shared_ptr<EngineSession> self, Request req) {
    self->start_heartbeat();
    Response res = make_response(req, http::status::ok, self->open_packet(false));
    self->server_.add_cors(req, res);
    co_return res;
  }

  static awaitable<Response> poll(std::shared_ptr<EngineSession> self, Request req) {
    co_return co_await self->do_poll(std::move(req));
  }

  static awaitable<Response> post(std::shared_ptr<EngineSession> self, Request req) {
    co_return co_await self->do_post(std::move(req));
  }

  /// A WebSocket for this session: a new session, or the upgrade of a polling one.
  static awaitable<void> run_websocket(std::shared_ptr<EngineSession> self, std::shared_ptr<Ws> ws, Request req,
                                       bool upgrade) {
    auto [ec] = co_await ws->async_accept(req, kTuple);
    if (ec) {
      if (!upgrade) {
        self->close("websocket handshake failed");
      }
      co_return;
    }
    self->attach_websocket(ws, upgrade);
    if (!upgrade) {
      self->send_text(self->open_packet(true));
      self->start_heartbeat();
      asio::co_spawn(self->strand_, ws_writer(self, ws), asio::detached);
    }
    co_await ws_reader(self, ws);
  }

  awaitable<Response> do_poll(Request req) {
    if (poll_active_ || ws_active_) {
      close("overlapping poll");
      co_return server_.error(req, 3, "Bad request");
    }
    poll_active_ = true;
    while (outbox_.empty() && !closed_) {
      co_await wake_.async_wait(kTuple);
    }
    poll_active_ = false;
    std::string body;
    if (closed_ && outbox_.empty()) {
      body = "1";  // close packet
    } else {
      std::vector<engineio::Packet> packets;
      while (!outbox_.empty()) {
        Outgoing o = std::move(outbox_.front());
        outbox_.pop_front();
        outbox_bytes_ -= o.data.size();
        if (o.binary) {
          packets.push_back(engineio::Packet{engineio::PacketType::message, std::move(o.data), true});
        } else {
          auto decoded = engineio::decode_text(o.data);
          if (decoded) {
            packets.push_back(std::move(*decoded));
          }
        }
      }
      body = engineio::encode_payload(packets);
      if (close_after_flush_) {
        close(close_reason_);  // the response below still carries the last packets
      }
    }
    co_return make_response(req, http::status::ok, std::move(body));
  }

  awaitable<Response> do_post(Request req) {
    if (post_active_) {
      close("overlapping post");
      co_return server_.error(req, 3, "Bad request");
    }
    post_active_ = true;
    engineio::Limits limits;
    limits.max_payload = server_.settings_.max_payload_bytes;
    auto packets = engineio::decode_payload(req.body(), limits);
    post_active_ = false;
    if (!packets) {
      server_.log_.info("client.bad_payload", {{"sid", sid_}, {"error", packets.error().message}});
      close("parse error");
      co_return server_.error(req, 3, "Bad request");
    }
    for (auto& p : *packets) {
      on_packet(std::move(p));
    }
    co_return make_response(req, http::status::ok, "ok");
  }

  // ---- websocket -----------------------------------------------------------------------------
  void attach_websocket(std::shared_ptr<Ws> ws, bool upgrade) {
    ws_ = std::move(ws);
    if (!upgrade) {
      ws_active_ = true;
    }
  }

  /// Reads frames until the socket closes.
  static awaitable<void> ws_reader(std::shared_ptr<EngineSession> self, std::shared_ptr<Ws> ws) {
    beast::flat_buffer buffer;
    for (;;) {
      auto [ec, n] = co_await ws->async_read(buffer, kTuple);
      if (ec) {
        if (self->ws_ == ws) {
          self->close(ec == websocket::error::closed ? "transport close" : "transport error");
        }
        co_return;
      }
      std::string data = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      const bool binary = !ws->got_text();
      if (self->closed_) {
        co_return;
      }
      if (binary) {
        self->on_packet(engineio::Packet{engineio::PacketType::message, std::move(data), true});
        continue;
      }
      if (!engineio::valid_utf8(data)) {
        self->close("invalid UTF-8");
        co_return;
      }
      auto packet = engineio::decode_text(data);
      if (!packet) {
        self->close("parse error");
        co_return;
      }
      if (!self->ws_active_) {
        // Upgrade handshake from polling: "2probe" → "3probe", then "5" switches transports.
        if (packet->type == engineio::PacketType::ping && packet->data == "probe") {
          auto pong = std::make_shared<std::string>("3probe");
          ws->text(true);
          co_await ws->async_write(asio::buffer(*pong), kTuple);
          self->send_text("6");  // a noop ends the pending poll so the client can upgrade
          continue;
        }
        if (packet->type == engineio::PacketType::upgrade) {
          self->ws_active_ = true;
          self->wake_.cancel();
          asio::co_spawn(self->strand_, ws_writer(self, ws), asio::detached);
          continue;
        }
      }
      self->on_packet(std::move(*packet));
    }
  }

  /// Writes the outbox to the socket while the session lives.
  static awaitable<void> ws_writer(std::shared_ptr<EngineSession> self, std::shared_ptr<Ws> ws) {
    for (;;) {
      while (self->outbox_.empty() && !self->closed_) {
        co_await self->wake_.async_wait(kTuple);
      }
      if (self->closed_) {
        co_return;
      }
      Outgoing o = std::move(self->outbox_.front());
      self->outbox_.pop_front();
      self->outbox_bytes_ -= o.data.size();
      ws->text(!o.binary);
      auto [ec, n] = co_await ws->async_write(asio::buffer(o.data), kTuple);
      if (ec) {
        if (self->ws_ == ws) {
          self->close("transport error");
        }
        co_return;
      }
      if (self->close_after_flush_ && self->outbox_.empty()) {
        self->close(self->close_reason_);
        co_return;
      }
    }
  }

 private:
  class Channel final : public app::ClientChannel {
   public:
    explicit Channel(std::weak_ptr<EngineSession> session) : session_(std::move(session)) {}
    void emit(std::string event, json payload) override {
      if (auto s = session_.lock()) {
        asio::post(s->strand_, [s, event = std::move(event), payload = std::move(payload)]() mutable {
          s->emit_event(event, std::move(payload));
        });
      }
    }
    void close(std::string reason) override {
      if (auto s = session_.lock()) {
        asio::post(s->strand_, [s, reason = std::move(reason)]() mutable {
          s->app_session_.reset();  // the app ended the session itself: no on_disconnect back to it
          s->send_socketio(socketio::Packet::disconnect("/"));
          s->close_gracefully(std::move(reason));
        });
      }
    }

   private:
    std::weak_ptr<EngineSession> session_;
  };

  void schedule_ping() {
    ping_timer_.expires_after(server_.settings_.ping_interval);
    ping_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) {
        return;
      }
      self->send_text("2");
      self->awaiting_pong_ = true;
      self->ping_timer_.expires_after(self->server_.settings_.ping_timeout);
      self->ping_timer_.async_wait([self](beast::error_code ec2) {
        if (ec2 || self->closed_) {
          return;
        }
        if (self->awaiting_pong_) {
          self->close("ping timeout");
        }
      });
    });
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
      case PacketType::message: on_message(std::move(packet)); return;
      case PacketType::close: close("client close"); return;
      case PacketType::noop: return;
      default: close("unexpected packet"); return;
    }
  }

  void on_message(engineio::Packet packet) {
    auto result = packet.binary ? decoder_.feed_binary(std::move(packet.data)) : decoder_.feed(packet.data);
    if (!result) {
      server_.log_.info("client.bad_packet", {{"sid", sid_}, {"error", result.error().message}});
      close("parse error");
      return;
    }
    for (auto& sio : *result) {
      on_socketio(std::move(sio));
    }
  }

  void on_socketio(socketio::Packet p) {
    using socketio::PacketType;
    if (p.nsp != "/") {
      if (p.type == PacketType::connect) {
        send_socketio(socketio::Packet::connect_error(p.nsp, "Invalid namespace"));
      }
      return;
    }
    switch (p.type) {
      case PacketType::connect: on_connect(p); return;
      case PacketType::disconnect:
        if (app_session_) {
          server_.service_->on_disconnect(app_session_, "client namespace disconnect");
          app_session_.reset();
        }
        return;
      case PacketType::event:
      case PacketType::binary_event: on_event(std::move(p)); return;
      case PacketType::ack:
      case PacketType::binary_ack: return;  // the server asks for no acks from clients
      default: close("unexpected packet"); return;
    }
  }

  void on_connect(const socketio::Packet& p) {
    if (app_session_ || connecting_) {
      close("second connect on the same namespace");
      return;
    }
    const json auth = p.data.is_object() ? p.data : json::object();
    connecting_ = true;
    server_.service_->connect(
        auth, sid_, std::make_shared<Channel>(weak_from_this()),
        [self = shared_from_this()](Status s, app::SessionPtr session) {
          asio::post(self->strand_, [self, s = std::move(s), session = std::move(session)]() mutable {
            self->connecting_ = false;
            if (!s.ok()) {
              self->send_socketio(socketio::Packet::connect_error("/", s.message()));
              return;
            }
            if (self->closed_) {
              self->server_.service_->on_disconnect(session, "closed while connecting");
              return;
            }
            self->app_session_ = std::move(session);
            self->socket_id_ = random_sid();
            self->send_socketio(socketio::Packet::connect_ok("/", self->socket_id_, app::session_id_of(self->app_session_)));
          });
        });
  }

  void on_event(socketio::Packet p) {
    if (!app_session_) {
      return;  // not connected to "/": socket.io ignores such packets too
    }
    if (!p.data.is_array() || p.data.empty() || !p.data[0].is_string()) {
      close("parse error");
      return;
    }
    const std::string name = p.data[0].get<std::string>();
    json args = json::array();
    for (std::size_t i = 1; i < p.data.size(); ++i) {
      args.push_back(std::move(p.data[i]));
    }
    app::Ack ack;
    if (p.id) {
      ack = [weak = weak_from_this(), id = *p.id](json body) {
        if (auto s = weak.lock()) {
          asio::post(s->strand_, [s, id, body = std::move(body)]() mutable {
            s->send_socketio(socketio::Packet::ack("/", id, json::array({std::move(body)})));
          });
        }
      };
    }
    server_.service_->on_event(app_session_, name, std::move(args), std::move(ack));
  }

  void emit_event(const std::string& event, json payload) {
    send_socketio(socketio::Packet::event("/", json::array({event, std::move(payload)})));
  }

  void send_socketio(const socketio::Packet& packet) {
    for (auto& part : socketio::encode(packet)) {
      if (part.binary) {
        send({std::move(part.data), true});
      } else {
        send_text("4" + part.data);
      }
    }
  }

  EngineServer& server_;
  std::string sid_;
  asio::strand<asio::any_io_executor> strand_;
  asio::steady_timer wake_;
  asio::steady_timer ping_timer_;
  std::deque<Outgoing> outbox_;
  std::size_t outbox_bytes_ = 0;
  bool closed_ = false;
  bool poll_active_ = false;
  bool post_active_ = false;
  std::atomic<bool> ws_active_{false};  // read by the handshake of an upgrade, off the strand
  bool awaiting_pong_ = false;
  bool close_after_flush_ = false;
  std::string close_reason_;
  std::shared_ptr<Ws> ws_;
  socketio::Decoder decoder_;
  std::string socket_id_;
  app::SessionPtr app_session_;
  bool connecting_ = false;  // a CONNECT is being authenticated or resumed

 public:
  ConnectionLimits::Ticket place_;  // this session's place under MAX_CONNECTIONS(_PER_ADDRESS)
};

EngineServer::EngineServer(ServerSettings settings, std::shared_ptr<app::ToolService> service, Metrics& metrics,
                           Logger& log)
    : settings_(std::move(settings)),
      service_(std::move(service)),
      metrics_(metrics),
      log_(log),
      connections_(metrics.gauge("phasekit_engineio_sessions", "Engine.IO sessions open.")),
      session_limits_("session", settings_.max_connections, settings_.max_connections_per_address, metrics) {}

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

std::shared_ptr<EngineSession> EngineServer::find(const std::string& sid) const {
  const std::lock_guard lock(mutex_);
  const auto it = sessions_.find(sid);
  return it == sessions_.end() ? nullptr : it->second;
}

void EngineServer::forget(const std::string& sid) {
  const std::lock_guard lock(mutex_);
  sessions_.erase(sid);
  connections_.set(static_cast<double>(sessions_.size()));
}

std::size_t EngineServer::session_count() const {
  const std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::shared_ptr<EngineSession> EngineServer::create(bool /*websocket*/, ConnectionLimits::Ticket place) {
  auto session = std::make_shared<EngineSession>(*this, random_sid(), service_->executor());
  session->place_ = std::move(place);
  const std::lock_guard lock(mutex_);
  sessions_[session->sid()] = session;
  connections_.set(static_cast<double>(sessions_.size()));
  return session;
}

void EngineServer::close_all(const std::string& reason) {
  std::vector<std::shared_ptr<EngineSession>> all;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [sid, s] : sessions_) {
      all.push_back(s);
    }
  }
  for (auto& s : all) {
    asio::post(s->strand(), [s, reason] { s->close_gracefully(reason); });
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
  std::map<std::string, std::string, std::less<>> query;
  if (!parse_query(req.target(), query)) {
    co_return error(req, 3, "Bad request");
  }
  if (query["EIO"] != "4") {
    co_return error(req, 5, "Unsupported protocol version");
  }
  if (query["transport"] != "polling") {
    co_return error(req, 0, "Transport unknown");
  }
  const auto sid = query.find("sid");
  if (sid == query.end()) {
    if (req.method() != http::verb::get) {
      co_return error(req, 2, "Bad handshake method");
    }
    if (draining_) {
      Response res = error(req, 4, "server is shutting down");
      res.result(http::status::service_unavailable);
      co_return res;
    }
    ConnectionLimits::Ticket place;
    if (auto refused = admit(req, peer, place)) {
      co_return std::move(*refused);
    }
    auto session = create(false, std::move(place));
    Response res = co_await asio::co_spawn(session->strand(), EngineSession::open_polling(session, std::move(req)),
                                           use_awaitable);
    co_return res;
  }
  auto session = find(sid->second);
  if (!session) {
    co_return error(req, 1, "Session ID unknown");
  }
  // Session state lives on the session's strand: run the request there (co_spawn, not post: a
  // posted continuation would resume on this connection's executor).
  const http::verb method = req.method();
  Response res;
  if (method == http::verb::get) {
    res = co_await asio::co_spawn(session->strand(), EngineSession::poll(session, std::move(req)), use_awaitable);
  } else if (method == http::verb::post) {
    res = co_await asio::co_spawn(session->strand(), EngineSession::post(session, std::move(req)), use_awaitable);
  } else {
    res = error(req, 2, "Bad request method");
  }
  co_return res;
}

awaitable<void> EngineServer::handle_websocket(beast::tcp_stream stream, Request req, asio::ip::address peer) {
  if (judge_origin(settings_.origins, req) == OriginVerdict::refused) {
    // Browsers send Origin on every WebSocket handshake and apply no CORS to it: this is the check.
    Response res = origin_refused(req);
    co_await http::async_write(stream, res, kTuple);
    co_return;
  }
  std::map<std::string, std::string, std::less<>> query;
  if (!parse_query(req.target(), query) || query["EIO"] != "4" || query["transport"] != "websocket") {
    Response res = error(req, 3, "Bad request");
    co_await http::async_write(stream, res, kTuple);
    co_return;
  }
  std::shared_ptr<EngineSession> session;
  const bool upgrade = query.count("sid") != 0;
  if (!upgrade && draining_) {
    Response res = error(req, 4, "server is shutting down");
    res.result(http::status::service_unavailable);
    co_await http::async_write(stream, res, kTuple);
    co_return;
  }
  if (upgrade) {
    session = find(query["sid"]);
    if (!session || session->websocket_mode()) {
      Response res = error(req, 1, "Session ID unknown");
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
    session = create(true, std::move(place));
  }
  // Move the socket onto the session's strand: the WebSocket stream, its timers (Beast's idle pings)
  // and the session's state are then all serialized by one strand.
  beast::error_code ec;
  asio::ip::tcp::socket socket = beast::get_lowest_layer(stream).release_socket();
  const auto protocol = socket.local_endpoint(ec).protocol();
  const auto native = socket.release(ec);
  asio::ip::tcp::socket moved(session->strand());
  if (!ec) {
    moved.assign(protocol, native, ec);
  }
  if (ec) {
    asio::post(session->strand(), [session] { session->close("transport error"); });
    co_return;
  }
  auto ws = std::make_shared<EngineSession::Ws>(beast::tcp_stream(std::move(moved)));
  ws->set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws->read_message_max(settings_.max_payload_bytes);
  ws->set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "phasekit"); }));
  co_await asio::co_spawn(session->strand(), EngineSession::run_websocket(session, ws, std::move(req), upgrade),
                          use_awaitable);
}

}  // namespace phasekit::net
