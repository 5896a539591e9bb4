#include "client/socketio_connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <map>

#include "client/cookie_jar.hpp"
#include "client/flex_stream.hpp"
#include "phasekit/protocol/engineio.hpp"
#include "phasekit/protocol/socketio.hpp"

namespace phasekit::load {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using nlohmann::json;
using asio::awaitable;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string_view type_name(socketio::PacketType t) {
  switch (t) {
    case socketio::PacketType::connect: return "connect";
    case socketio::PacketType::disconnect: return "disconnect";
    case socketio::PacketType::event:
    case socketio::PacketType::binary_event: return "event";
    case socketio::PacketType::ack:
    case socketio::PacketType::binary_ack: return "ack";
    case socketio::PacketType::connect_error: return "connect_error";
  }
  return "unknown";
}

std::uint64_t micros(SteadyClock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us < 0 ? 0 : static_cast<std::uint64_t>(us);
}

/// One Engine.IO connection with its Socket.IO namespaces, on one worker's thread.
class SocketioConnection final : public Connection, public std::enable_shared_from_this<SocketioConnection> {
 public:
  SocketioConnection(const asio::any_io_executor& executor, Dialer& dialer, MetricSink& metrics,
                     ConnectOptions options)
      : executor_(executor),
        dialer_(dialer),
        metrics_(metrics),
        options_(std::move(options)),
        signal_(executor),
        upgrade_signal_(executor),
        watchdog_(executor) {}
  SocketioConnection(const SocketioConnection&) = delete;
  SocketioConnection& operator=(const SocketioConnection&) = delete;

  awaitable<ConnResult<void>> connect(TimePoint deadline) override;
  awaitable<ConnResult<void>> join(std::string ns, std::optional<json> auth, TimePoint deadline) override;
  awaitable<ConnResult<Reply>> emit(Emit request, TimePoint deadline) override;
  awaitable<void> idle(TimePoint until) override;
  awaitable<void> close() override;
  void abort(std::string detail) override { die(ConnErrc::aborted, std::move(detail)); }
  [[nodiscard]] const std::optional<ConnError>& ended() const override { return death_; }
  [[nodiscard]] std::optional<Recovery> recovery(const std::string& ns) const override {
    const auto it = recovery_.find(ns);
    return it == recovery_.end() ? std::nullopt : std::optional<Recovery>(it->second);
  }

 private:
  // Every coroutine holds the connection (self), so that it lives while any of them runs.
  using Self = std::shared_ptr<SocketioConnection>;
  using Ws = websocket::stream<FlexStream>;
  enum class Mode { none, polling, websocket };

  [[nodiscard]] bool dead() const { return death_.has_value(); }

  void log_packet(std::string_view dir, const socketio::Packet& p) {
    if (options_.tap.log != nullptr) {
      options_.tap.log->packet(options_.tap.vu, dir, type_name(p.type), p.nsp, p.id, p.data);
    }
  }

  void send(const socketio::Packet& packet) {
    log_packet("out", packet);
    for (socketio::Part& part : socketio::encode(packet)) {
      outbox_.push_back(engineio::Packet{engineio::PacketType::message, std::move(part.data), part.binary});
    }
    kick_writer();
  }

  void die(ConnErrc code, std::string detail) {
    if (dead()) {
      return;
    }
    death_ = ConnError{code, std::move(detail)};
    if (options_.tap.log != nullptr) {
      options_.tap.log->ended(options_.tap.vu, error_name(code), death_->detail);
    }
    shutdown_sockets();
    signal_.cancel();
    upgrade_signal_.cancel();
    watchdog_.cancel();
  }

  void shutdown_sockets() {
    beast::error_code ignored;
    for (FlexStream* s : {get_.get(), post_.get()}) {
      if (s != nullptr) {
        s->socket().close(ignored);
      }
    }
    for (Ws* w : {ws_.get(), probe_.get()}) {
      if (w != nullptr) {
        beast::get_lowest_layer(*w).socket().close(ignored);
      }
    }
  }

  /// Closes the sockets and gives them back to the process's budget.
  void release_sockets() {
    shutdown_sockets();
    dialer_.release(sockets_held_);
    sockets_held_ = 0;
  }

  /// Closes one socket of this connection and gives its file back to the process's budget.
  void drop_socket(beast::tcp_stream& stream) {
    if (stream.socket().is_open()) {
      beast::error_code ignored;
      stream.socket().close(ignored);
      dialer_.release(1);
      --sockets_held_;
    }
  }

  std::string query(std::string_view transport) const {
    std::string q = fmt::format("{}?EIO=4&transport={}", dialer_.options().path, transport);
    if (!sid_.empty()) {
      q += "&sid=" + sid_;
    }
    if (!options_.query.empty()) {
      q += "&" + options_.query;
    }
    return q;
  }

  static ConnError connect_failure(const beast::error_code& ec) {
    if (ec == beast::error::timeout) {
      return {ConnErrc::connect_timeout, "TCP connect timed out"};
    }
    if (ec == asio::error::connection_refused) {
      return {ConnErrc::connect_refused, ec.message()};
    }
    return {ConnErrc::connect_failed, ec.message()};
  }

  /// The connection's request URL, as its cookies see it.
  CookieUrl cookie_url() const {
    const ClientOptions& o = dialer_.options();
    return CookieUrl{o.target.host, o.path, o.target.tls};
  }

  /// Adds the jar's cookies for the next request to fields (after any Cookie of extraHeaders).
  void add_cookies(http::fields& fields) {
    if (!dialer_.options().cookies) {
      return;
    }
    std::string cookies = jar_.header(cookie_url());
    if (cookies.empty()) {
      return;
    }
    if (const auto given = fields.find(http::field::cookie); given != fields.end()) {
      cookies = fmt::format("{}; {}", given->value(), cookies);
    }
    fields.set(http::field::cookie, cookies);
  }

  /// Keeps what a response's Set-Cookie headers say (whatever its status, as a browser does).
  void keep_cookies(const http::fields& fields) {
    if (!dialer_.options().cookies) {
      return;
    }
    const auto [first, last] = fields.equal_range(http::field::set_cookie);
    for (auto it = first; it != last; ++it) {
      jar_.store(it->value(), cookie_url());
    }
  }

  /// Opens a new socket on stream and connects it, then shakes hands over TLS for a TLS target.
  static awaitable<ConnResult<void>> connect_tcp(Self self, FlexStream& stream, TimePoint deadline) {
    stream.renew();  // a TLS session cannot be reused once its socket closed
    if (auto refused = self->dialer_.open(stream.socket())) {
      co_return std::move(*refused);
    }
    ++self->sockets_held_;
    beast::tcp_stream& transport = stream.next_layer();
    transport.expires_at(deadline);
    auto [ec] = co_await transport.async_connect(self->dialer_.endpoint(), kTuple);
    if (ec) {
      co_return connect_failure(ec);
    }
    transport.socket().set_option(tcp::no_delay(true), ec);
    if (stream.is_tls()) {
      self->dialer_.prepare_tls(stream.tls().native_handle());
      const TimePoint started = SteadyClock::now();
      auto [hec] = co_await stream.tls().async_handshake(asio::ssl::stream_base::client, kTuple);
      if (hec) {
        if (hec == beast::error::timeout) {
          co_return ConnError{ConnErrc::connect_timeout, "TLS handshake timed out"};
        }
        co_return ConnError{ConnErrc::tls_failed, self->dialer_.tls_failure(stream.tls().native_handle(), hec)};
      }
      self->metrics_.record(kTlsHandshake, micros(SteadyClock::now() - started));
    }
    co_return ConnResult<void>{};
  }

  /// One HTTP exchange on a keep-alive stream, connecting first where needed: the body of a 200.
  static awaitable<ConnResult<std::string>> exchange(Self self, FlexStream& stream, http::verb verb,
                                                     std::string target, std::string body, TimePoint deadline) {
    if (!stream.socket().is_open()) {
      ConnResult<void> connected = co_await connect_tcp(self, stream, deadline);
      if (!connected) {
        co_return connected.error();
      }
    }
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, self->dialer_.host_header());
    req.set(http::field::user_agent, "phasekit-load");
    for (const auto& [k, v] : self->options_.headers) {
      req.set(k, v);
    }
    self->add_cookies(req);
    if (verb == http::verb::post) {
      req.set(http::field::content_type, "text/plain;charset=UTF-8");
      req.body() = std::move(body);
    }
    req.prepare_payload();
    stream.next_layer().expires_at(deadline);
    auto [wec, written] = co_await http::async_write(stream, req, kTuple);
    if (wec) {
      co_return ConnError{ConnErrc::transport_error, wec.message()};
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(self->max_payload_ + 1024);
    auto [rec, read] = co_await http::async_read(stream, buffer, parser, kTuple);
    stream.next_layer().expires_never();
    if (rec) {
      co_return ConnError{rec == beast::error::timeout ? ConnErrc::response_timeout : ConnErrc::transport_error,
                          rec.message()};
    }
    auto res = parser.release();
    self->keep_cookies(res);
    if (!res.keep_alive()) {
      self->drop_socket(stream.next_layer());
    }
    if (res.result() != http::status::ok) {
      co_return ConnError{ConnErrc::handshake_failed, fmt::format("HTTP {}: {}", res.result_int(), res.body())};
    }
    co_return std::move(res.body());
  }

  /// Reads the Engine.IO open packet's fields.
  ConnResult<void> take_open(const engineio::Packet& packet) {
    if (packet.type != engineio::PacketType::open) {
      return ConnError{ConnErrc::handshake_failed,
                       fmt::format("expected an Engine.IO open packet, got \"{:.60}\"", packet.data)};
    }
    const json j = json::parse(packet.data, nullptr, false);
    if (!j.is_object() || !j.contains("sid") || !j["sid"].is_string()) {
      return ConnError{ConnErrc::handshake_failed, "open packet without a sid"};
    }
    sid_ = j["sid"].get<std::string>();
    if (options_.tap.log != nullptr) {
      options_.tap.log->opened(options_.tap.vu, sid_);
    }
    max_payload_ = j.value("maxPayload", std::size_t{1000000});
    if (j.contains("pingInterval") && j["pingInterval"].is_number_unsigned() && j.contains("pingTimeout") &&
        j["pingTimeout"].is_number_unsigned()) {
      // Clamped: the figures are the server's, and a silence of 1 s to 1 hour is all that makes sense.
      const std::uint64_t ms = std::clamp<std::uint64_t>(j["pingInterval"].get<std::uint64_t>(), 0, 3'600'000) +
                               std::clamp<std::uint64_t>(j["pingTimeout"].get<std::uint64_t>(), 0, 3'600'000);
      silence_ = std::chrono::milliseconds(std::clamp<std::uint64_t>(ms, 1000, 3'600'000));
    }
    heard_ = SteadyClock::now();
    if (j.contains("upgrades") && j["upgrades"].is_array()) {
      for (const auto& u : j["upgrades"]) {
        can_upgrade_ = can_upgrade_ || u == "websocket";
      }
    }
    return {};
  }

  static awaitable<ConnResult<void>> open_websocket(Self self, std::unique_ptr<Ws>& ws, TimePoint deadline,
                                                    bool probe) {
    ws = std::make_unique<Ws>(self->executor_, self->dialer_.tls_context());
    ConnResult<void> connected = co_await connect_tcp(self, ws->next_layer(), deadline);
    if (!connected) {
      co_return connected;
    }
    http::fields extra;
    for (const auto& [k, v] : self->options_.headers) {
      extra.set(k, v);
    }
    self->add_cookies(extra);
    ws->set_option(websocket::stream_base::decorator([extra = std::move(extra)](websocket::request_type& req) {
      req.set(http::field::user_agent, "phasekit-load");
      for (const auto& field : extra) {
        req.set(field.name_string(), field.value());
      }
    }));
    ws->read_message_max(self->max_payload_ + 16);
    websocket::response_type res;
    auto [ec] = co_await ws->async_handshake(res, self->dialer_.host_header(), self->query("websocket"), kTuple);
    self->keep_cookies(res);
    if (ec) {
      co_return ConnError{ec == beast::error::timeout ? ConnErrc::connect_timeout : ConnErrc::handshake_failed,
                          fmt::format("WebSocket handshake: {} (HTTP {})", ec.message(), res.result_int())};
    }
    if (probe) {
      co_return ConnResult<void>{};
    }
    beast::flat_buffer buffer;
    auto [rec, n] = co_await ws->async_read(buffer, kTuple);
    if (rec) {
      co_return ConnError{rec == beast::error::timeout ? ConnErrc::connect_timeout : ConnErrc::handshake_failed,
                          rec.message()};
    }
    auto packet = engineio::decode_text(beast::buffers_to_string(buffer.data()));
    if (!packet) {
      co_return ConnError{ConnErrc::handshake_failed, packet.error().message};
    }
    co_return self->take_open(*packet);
  }

  void handle(engineio::Packet& p) {
    heard_ = SteadyClock::now();
    switch (p.type) {
      case engineio::PacketType::ping:
        outbox_.push_back(engineio::Packet{engineio::PacketType::pong, std::move(p.data), false});
        kick_writer();
        return;
      case engineio::PacketType::close:
        die(ConnErrc::server_closed, "the server closed the Engine.IO session");
        return;
      case engineio::PacketType::message: {
        auto packets = p.binary ? decoder_.feed_binary(std::move(p.data)) : decoder_.feed(p.data);
        if (!packets) {
          die(ConnErrc::protocol_error, packets.error().message);
          return;
        }
        for (socketio::Packet& sp : *packets) {
          deliver(sp);
        }
        return;
      }
      default:
        return;  // noop, pong, open, upgrade: nothing to do
    }
  }

  void deliver(socketio::Packet& p) {
    log_packet("in", p);
    switch (p.type) {
      case socketio::PacketType::connect:
        joined_[p.nsp] = std::nullopt;
        if (p.data.is_object() && p.data.contains("pid") && p.data["pid"].is_string()) {
          recovery_[p.nsp] = Recovery{p.data["pid"].get<std::string>(), std::nullopt};
        }
        break;
      case socketio::PacketType::connect_error:
        joined_[p.nsp] = ConnError{ConnErrc::connect_error, p.data.is_object() ? p.data.value("message", p.data.dump())
                                                                               : p.data.dump()};
        break;
      case socketio::PacketType::disconnect:
        die(ConnErrc::server_disconnect, fmt::format("the server disconnected namespace {}", p.nsp));
        break;
      default:
        metrics_.add(kEventsReceived);
        // As socket.io-client: with a pid, an event's last argument, when a string, is its offset.
        if (const auto it = recovery_.find(p.nsp); it != recovery_.end() &&
            (p.type == socketio::PacketType::event || p.type == socketio::PacketType::binary_event) &&
            p.data.is_array() && p.data.size() > 1 && p.data.back().is_string()) {
          it->second.offset = p.data.back().get<std::string>();
        }
        take_reply(p);
        break;
    }
    signal_.cancel();
  }

  /// Keeps what the current emit waits for: the first such event, and its ack.
  void take_reply(socketio::Packet& p) {
    if (p.nsp != want_ns_) {
      return;
    }
    if (p.type == socketio::PacketType::event && want_channel_ && !response_ && p.data.is_array() &&
        !p.data.empty() && p.data[0] == *want_channel_) {
      response_ = p.data.size() > 1 ? p.data[1] : json(nullptr);
    } else if (p.type == socketio::PacketType::ack && want_ack_ && p.id == want_ack_ && !ack_) {
      ack_ = p.data;
    }
  }

  void kick_writer() {
    if (writing_ || outbox_.empty() || dead() || upgrading_ || mode_ == Mode::none) {
      return;
    }
    writing_ = true;
    if (mode_ == Mode::websocket) {
      asio::co_spawn(executor_, ws_writer(shared_from_this()), asio::detached);
    } else {
      asio::co_spawn(executor_, post_writer(shared_from_this()), asio::detached);
    }
  }

  static awaitable<void> ws_writer(Self self) {
    while (!self->outbox_.empty() && !self->dead()) {
      engineio::Packet p = std::move(self->outbox_.front());
      self->outbox_.pop_front();
      const std::string frame = p.binary ? std::move(p.data) : engineio::encode_text(p);
      self->ws_->binary(p.binary);
      auto [ec, n] = co_await self->ws_->async_write(asio::buffer(frame), kTuple);
      if (ec) {
        self->die(ConnErrc::transport_error, ec.message());
      }
    }
    self->writing_ = false;
    self->upgrade_signal_.cancel();
  }

  static awaitable<void> post_writer(Self self) {
    while (!self->outbox_.empty() && !self->dead() && !self->upgrading_) {
      std::vector<engineio::Packet> batch(std::make_move_iterator(self->outbox_.begin()),
                                          std::make_move_iterator(self->outbox_.end()));
      self->outbox_.clear();
      std::string body = engineio::encode_payload(batch);
      const TimePoint deadline = SteadyClock::now() + seconds(self->dialer_.options().request_timeout_s);
      ConnResult<std::string> posted = co_await exchange(self, *self->post_, http::verb::post,
                                                         self->query("polling"), std::move(body), deadline);
      if (!posted) {
        self->die(posted.error().code, "POST: " + posted.error().detail);
      }
    }
    self->writing_ = false;
    self->upgrade_signal_.cancel();
  }

  static awaitable<void> watch(Self self) {
    while (!self->dead()) {
      const TimePoint limit = self->heard_ + self->silence_;
      if (SteadyClock::now() >= limit) {
        self->die(ConnErrc::transport_error,
                  fmt::format("nothing from the server for {} ms (pingInterval + pingTimeout)",
                              std::chrono::duration_cast<std::chrono::milliseconds>(self->silence_).count()));
        break;
      }
      self->watchdog_.expires_at(limit);
      co_await self->watchdog_.async_wait(kTuple);
    }
  }

  static awaitable<void> ws_reader(Self self) {
    beast::flat_buffer buffer;
    while (!self->dead()) {
      auto [ec, n] = co_await self->ws_->async_read(buffer, kTuple);
      if (ec) {
        self->die(ec == websocket::error::closed ? ConnErrc::server_closed : ConnErrc::transport_error, ec.message());
        break;
      }
      engineio::Packet p;
      if (self->ws_->got_binary()) {
        p = engineio::Packet{engineio::PacketType::message, beast::buffers_to_string(buffer.data()), true};
      } else {
        auto decoded = engineio::decode_text(beast::buffers_to_string(buffer.data()));
        if (!decoded) {
          self->die(ConnErrc::protocol_error, decoded.error().message);
          break;
        }
        p = std::move(*decoded);
      }
      buffer.consume(buffer.size());
      self->handle(p);
    }
  }

  static awaitable<void> poll_loop(Self self) {
    while (!self->dead() && !self->upgrading_) {
      // The server answers a poll within pingInterval (with a ping at the latest).
      const TimePoint deadline = SteadyClock::now() + self->poll_timeout_;
      ConnResult<std::string> body = co_await exchange(self, *self->get_, http::verb::get, self->query("polling"), "",
                                                       deadline);
      if (!body) {
        self->die(body.error().code, "GET: " + body.error().detail);
        break;
      }
      auto packets = engineio::decode_payload(*body, engineio::Limits{self->max_payload_ + 1024, 10000});
      if (!packets) {
        self->die(ConnErrc::protocol_error, packets.error().message);
        break;
      }
      for (engineio::Packet& p : *packets) {
        self->handle(p);
      }
    }
    self->polling_ = false;
    self->upgrade_signal_.cancel();
  }

  /// socket.io-client's upgrade: probe a WebSocket, pause polling, then switch.
  static awaitable<void> upgrade(Self self) {
    const TimePoint deadline = SteadyClock::now() + seconds(self->dialer_.options().connect_timeout_s);
    ConnResult<void> probed = co_await open_websocket(self, self->probe_, deadline, true);
    if (probed) {
      self->probe_->text(true);
      auto [wec, w] = co_await self->probe_->async_write(asio::buffer(std::string_view("2probe")), kTuple);
      beast::flat_buffer buffer;
      auto [rec, r] = co_await self->probe_->async_read(buffer, kTuple);
      if (wec || rec || beast::buffers_to_string(buffer.data()) != "3probe") {
        probed = ConnError{ConnErrc::upgrade_failed, "no 3probe"};
      }
    }
    if (!probed || self->dead()) {
      if (self->probe_) {
        self->drop_socket(self->probe_->next_layer().next_layer());
        self->probe_.reset();
      }
      co_return;  // stays on polling, as socket.io-client does
    }
    self->upgrading_ = true;  // no new poll, no new POST
    asio::steady_timer& wait = self->upgrade_signal_;
    while (!self->dead() && (self->polling_ || self->writing_) && SteadyClock::now() < deadline + self->poll_timeout_) {
      wait.expires_at(deadline + self->poll_timeout_);
      co_await wait.async_wait(kTuple);
    }
    if (self->dead() || self->polling_ || self->writing_) {
      self->die(ConnErrc::upgrade_failed, "polling did not pause for the upgrade");
      co_return;
    }
    auto [uec, u] = co_await self->probe_->async_write(asio::buffer(std::string_view("5")), kTuple);
    if (uec) {
      self->die(ConnErrc::upgrade_failed, uec.message());
      co_return;
    }
    beast::get_lowest_layer(*self->probe_).expires_never();
    self->ws_ = std::move(self->probe_);
    self->mode_ = Mode::websocket;
    self->upgrading_ = false;
    self->drop_socket(self->get_->next_layer());
    self->drop_socket(self->post_->next_layer());
    asio::co_spawn(self->executor_, ws_reader(self), asio::detached);
    self->kick_writer();
  }

  asio::any_io_executor executor_;
  Dialer& dialer_;
  MetricSink& metrics_;
  const ConnectOptions options_;
  asio::steady_timer signal_;          // woken on every delivered packet and on death
  asio::steady_timer upgrade_signal_;  // woken when polling or a write stops
  asio::steady_timer watchdog_;        // the server's silence (watch())
  std::optional<ConnError> death_;
  Mode mode_ = Mode::none;
  std::unique_ptr<Ws> ws_;
  std::unique_ptr<Ws> probe_;
  std::unique_ptr<FlexStream> get_;
  std::unique_ptr<FlexStream> post_;
  CookieJar jar_;  // the user's cookies, from every response of this connection
  std::deque<engineio::Packet> outbox_;
  bool writing_ = false;
  bool upgrading_ = false;
  bool polling_ = false;
  bool can_upgrade_ = false;
  std::string sid_;
  std::size_t max_payload_ = 1000000;
  // As socket.io-client: a server heard from not once in pingInterval + pingTimeout is gone (a
  // balancer that lost its backend may keep the client's TCP connection up).
  SteadyClock::duration silence_ = std::chrono::seconds(45);
  TimePoint heard_ = SteadyClock::now();
  SteadyClock::duration poll_timeout_ = std::chrono::seconds(60);
  std::map<std::string, std::optional<ConnError>> joined_;  // answered CONNECTs: nullopt when joined
  std::map<std::string, Recovery> recovery_;                 // per namespace, when the server offers it
  socketio::Decoder decoder_;
  std::int64_t sockets_held_ = 0;
  // What the current emit waits for.
  std::string want_ns_;
  std::optional<std::string> want_channel_;
  std::optional<std::uint64_t> want_ack_;
  std::optional<json> response_;
  std::optional<json> ack_;
  std::uint64_t next_ack_ = 0;
};

awaitable<ConnResult<void>> SocketioConnection::connect(TimePoint deadline) {
  const Self self = shared_from_this();
  const ClientOptions& o = self->dialer_.options();
  if (!o.polling) {
    ConnResult<void> r = co_await open_websocket(self, self->ws_, deadline, false);
    if (!r) {
      co_return r;
    }
    beast::get_lowest_layer(*self->ws_).expires_never();
    self->mode_ = Mode::websocket;
    asio::co_spawn(self->executor_, ws_reader(self), asio::detached);
    asio::co_spawn(self->executor_, watch(self), asio::detached);
    co_return ConnResult<void>{};
  }
  self->get_ = std::make_unique<FlexStream>(self->executor_, self->dialer_.tls_context());
  self->post_ = std::make_unique<FlexStream>(self->executor_, self->dialer_.tls_context());
  ConnResult<std::string> body = co_await exchange(self, *self->get_, http::verb::get, self->query("polling"), "",
                                                   deadline);
  if (!body) {
    ConnError e = body.error();
    if (e.code == ConnErrc::response_timeout) {
      e.code = ConnErrc::connect_timeout;  // no answer to the handshake is a connection that did not open
    }
    co_return e;
  }
  auto packets = engineio::decode_payload(*body);
  if (!packets || packets->empty()) {
    co_return ConnError{ConnErrc::handshake_failed, fmt::format("polling handshake answered \"{:.60}\"", *body)};
  }
  ConnResult<void> opened = self->take_open((*packets)[0]);
  if (!opened) {
    co_return opened;
  }
  self->mode_ = Mode::polling;
  self->polling_ = true;
  asio::co_spawn(self->executor_, poll_loop(self), asio::detached);
  asio::co_spawn(self->executor_, watch(self), asio::detached);
  if (o.websocket && self->can_upgrade_) {
    asio::co_spawn(self->executor_, upgrade(self), asio::detached);
  }
  co_return ConnResult<void>{};
}

awaitable<ConnResult<void>> SocketioConnection::join(std::string ns, std::optional<json> auth, TimePoint deadline) {
  const Self self = shared_from_this();
  if (const auto it = self->joined_.find(ns); it != self->joined_.end() && !it->second) {
    co_return ConnResult<void>{};
  }
  self->joined_.erase(ns);
  socketio::Packet connect{socketio::PacketType::connect, ns, std::nullopt,
                           auth ? *auth : json(json::value_t::discarded), 0};
  self->send(connect);
  while (!self->dead() && self->joined_.count(ns) == 0 && SteadyClock::now() < deadline) {
    self->signal_.expires_at(deadline);
    co_await self->signal_.async_wait(kTuple);
  }
  if (self->dead()) {
    co_return *self->death_;
  }
  const auto it = self->joined_.find(ns);
  if (it == self->joined_.end()) {
    co_return ConnError{ConnErrc::connect_timeout, fmt::format("no answer to CONNECT {}", ns)};
  }
  if (it->second) {
    co_return *it->second;
  }
  co_return ConnResult<void>{};
}

awaitable<ConnResult<Reply>> SocketioConnection::emit(Emit request, TimePoint deadline) {
  const Self self = shared_from_this();
  self->want_ns_ = request.ns;
  self->want_channel_ = request.response;
  self->response_.reset();
  self->ack_.reset();
  self->want_ack_.reset();
  if (request.ack) {
    self->want_ack_ = self->next_ack_++;
  }
  self->send(socketio::Packet::event(request.ns, std::move(request.args), self->want_ack_));
  if (!request.response && !request.ack) {
    co_return Reply{};
  }
  const TimePoint sent = SteadyClock::now();
  bool ack_said_no = false;
  bool ack_checked = false;  // the ack is checked once, when it comes
  const auto waiting = [&] {
    if (request.ack_ends_wait && self->ack_ && !ack_checked) {
      ack_checked = true;
      ack_said_no = request.ack_ends_wait(*self->ack_);
    }
    return !ack_said_no && ((request.response && !self->response_) || (request.ack && !self->ack_));
  };
  while (!self->dead() && waiting() && SteadyClock::now() < deadline) {
    self->signal_.expires_at(deadline);
    co_await self->signal_.async_wait(kTuple);
  }
  self->want_channel_.reset();
  self->want_ack_.reset();
  if (waiting()) {
    if (self->dead()) {
      co_return *self->death_;
    }
    co_return ConnError{request.response && !self->response_ ? ConnErrc::response_timeout : ConnErrc::ack_timeout,
                        fmt::format("nothing within {:.3g} s", std::chrono::duration<double>(deadline - sent).count())};
  }
  Reply reply;
  if (request.response) {
    reply.response = std::move(self->response_);
  }
  if (request.ack) {
    reply.ack = std::move(self->ack_);
  }
  co_return reply;
}

awaitable<void> SocketioConnection::idle(TimePoint until) {
  const Self self = shared_from_this();
  // On the connection's signal, so that death ends the wait at once; packets arriving meanwhile
  // wake it early, hence the loop.
  while (!self->dead() && SteadyClock::now() < until) {
    self->signal_.expires_at(until);
    co_await self->signal_.async_wait(kTuple);
  }
}

awaitable<void> SocketioConnection::close() {
  const Self self = shared_from_this();
  if (!self->dead()) {
    for (const auto& [ns, refused] : self->joined_) {
      if (!refused) {
        self->send(socketio::Packet::disconnect(ns));
      }
    }
    const TimePoint deadline = SteadyClock::now() + std::chrono::seconds(2);
    while (!self->dead() && (self->writing_ || !self->outbox_.empty()) && SteadyClock::now() < deadline) {
      self->upgrade_signal_.expires_at(deadline);
      co_await self->upgrade_signal_.async_wait(kTuple);
    }
    if (self->mode_ == Mode::websocket && !self->dead()) {
      beast::get_lowest_layer(*self->ws_).expires_after(std::chrono::seconds(2));
      co_await self->ws_->async_close(websocket::close_code::normal, kTuple);
    }
  }
  if (!self->dead() && self->options_.tap.log != nullptr) {
    self->options_.tap.log->ended(self->options_.tap.vu, error_name(ConnErrc::closed), "closed by its user");
  }
  self->death_ = ConnError{ConnErrc::closed, ""};
  self->release_sockets();
  self->signal_.cancel();
  self->upgrade_signal_.cancel();
  self->watchdog_.cancel();
}

}  // namespace

ConnectionPtr make_socketio_connection(const asio::any_io_executor& executor, Dialer& dialer, MetricSink& metrics,
                                       ConnectOptions options) {
  return std::make_shared<SocketioConnection>(executor, dialer, metrics, std::move(options));
}

}  // namespace phasekit::load
