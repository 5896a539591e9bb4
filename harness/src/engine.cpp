#include "engine.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <random>
#include <iostream>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "protocol/engineio.hpp"
#include "protocol/socketio.hpp"
#include "schedule.hpp"

namespace phasekit::load {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;
using asio::awaitable;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

std::uint64_t micros(SteadyClock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us < 0 ? 0 : static_cast<std::uint64_t>(us);
}

SteadyClock::duration seconds(double s) {
  return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
}

/// Why a user stopped: an error code of the report ("response_timeout"), empty when fine.
struct Outcome {
  std::string code;
  std::string detail;
  [[nodiscard]] bool ok() const { return code.empty(); }
};

class Connection;

/// One thread, its io_context, its users and its share of the metrics.
class Worker {
 public:
  void add(std::string_view counter, std::uint64_t by = 1) {
    const std::lock_guard lock(mutex_);
    metrics_.add(counter, by);
  }
  void record(std::string_view histogram, std::uint64_t us) {
    const std::lock_guard lock(mutex_);
    metrics_.record(histogram, us);
  }
  MetricSet take() {
    MetricSet out;
    const std::lock_guard lock(mutex_);
    std::swap(out, metrics_);
    return out;
  }

  std::mt19937_64 rng;
  std::atomic<std::int64_t> active{0};
  std::atomic<bool> scheduled_all{false};
  std::unordered_set<Connection*> live;  // touched on ioc's thread only

 private:
  std::mutex mutex_;
  MetricSet metrics_;

 public:
  // Last, so it is destroyed first: coroutine frames still inside it (users that never ended) are
  // destroyed while everything they touch on the way out still exists.
  asio::io_context ioc{1};
};

/// What all workers share for one run.
struct Shared {
  Shared(const Scenario& sc, const RunOptions& o, std::vector<Phase> phases)
      : scenario(sc), options(o), schedule(phases), phase_active(phases.size()) {}

  const Scenario& scenario;
  const RunOptions& options;
  Schedule schedule;
  TimePoint start;
  std::vector<tcp::endpoint> endpoints;
  std::vector<asio::ip::address> sources;
  std::atomic<std::uint64_t> next_source{0};
  std::vector<std::atomic<std::int64_t>> phase_active;
  std::atomic<std::int64_t> users{0};
  std::atomic<std::int64_t> peak_users{0};
  std::atomic<std::int64_t> sockets{0};
  std::int64_t max_sockets = 1000;
  std::atomic<std::uint64_t> next_vu{0};
  std::atomic<std::uint64_t> log_lines{0};
  std::atomic<bool> stop_arrivals{false};
  double repeat_until_s = 0;
  std::vector<double> flow_weights;  // cumulative
};

// ---------------------------------------------------------------------------------------------
// Connection: one Engine.IO connection with its Socket.IO namespaces, on one worker's thread.

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Worker& worker, Shared& shared)
      : worker_(worker), shared_(shared), signal_(worker.ioc), upgrade_signal_(worker.ioc) {
    worker_.live.insert(this);
  }
  ~Connection() { worker_.live.erase(this); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Delivered events and acks (set by the user running on this connection).
  std::function<void(socketio::Packet&)> on_packet;

  [[nodiscard]] bool dead() const { return !death_.ok(); }
  [[nodiscard]] const Outcome& death() const { return death_; }
  asio::steady_timer& signal() { return signal_; }

  static awaitable<Outcome> open(std::shared_ptr<Connection> self, TimePoint deadline);
  static awaitable<Outcome> join(std::shared_ptr<Connection> self, std::string ns, std::optional<json> auth,
                                 TimePoint deadline);
  static awaitable<void> close(std::shared_ptr<Connection> self);

  void send(const socketio::Packet& packet) {
    for (socketio::Part& part : socketio::encode(packet)) {
      outbox_.push_back(engineio::Packet{engineio::PacketType::message, std::move(part.data), part.binary});
    }
    kick_writer();
  }

  void die(std::string code, std::string detail) {
    if (dead()) {
      return;
    }
    death_ = Outcome{std::move(code), std::move(detail)};
    shutdown_sockets();
    signal_.cancel();
    upgrade_signal_.cancel();
  }

 private:
  using Ws = websocket::stream<beast::tcp_stream>;
  enum class Mode { none, polling, websocket };

  void shutdown_sockets() {
    beast::error_code ignored;
    for (beast::tcp_stream* s : {get_.get(), post_.get()}) {
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

  /// Closes one socket of this connection and gives its file back to the process's budget.
  void drop_socket(beast::tcp_stream& stream) {
    if (stream.socket().is_open()) {
      beast::error_code ignored;
      stream.socket().close(ignored);
      shared_.sockets.fetch_sub(1);
      --sockets_held_;
    }
  }

  std::string query(std::string_view transport) const {
    std::string q = fmt::format("{}?EIO=4&transport={}", shared_.scenario.socket.path, transport);
    if (!sid_.empty()) {
      q += "&sid=" + sid_;
    }
    if (!query_.empty()) {
      q += "&" + query_;
    }
    return q;
  }

  /// A socket opened on the next source address, counted against the process's file limit.
  std::optional<Outcome> open_socket(beast::tcp_stream& stream) {
    if (shared_.sockets.fetch_add(1) >= shared_.max_sockets) {
      shared_.sockets.fetch_sub(1);
      return Outcome{"sockets_exhausted", "the open-file limit of this process is reached"};
    }
    ++sockets_held_;
    const tcp::endpoint& target = shared_.endpoints.front();
    beast::error_code ec;
    stream.socket().open(target.protocol(), ec);
    if (!ec && !shared_.sources.empty()) {
      const int one = 1;
      ::setsockopt(stream.socket().native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      const auto& source = shared_.sources[shared_.next_source.fetch_add(1) % shared_.sources.size()];
      stream.socket().bind(tcp::endpoint(source, 0), ec);
    }
    if (ec) {
      return Outcome{"connect_failed", ec.message()};
    }
    return std::nullopt;
  }

  static Outcome connect_outcome(const beast::error_code& ec) {
    if (ec == beast::error::timeout) {
      return {"connect_timeout", "TCP connect timed out"};
    }
    if (ec == asio::error::connection_refused) {
      return {"connect_refused", ec.message()};
    }
    return {"connect_failed", ec.message()};
  }

  static awaitable<Outcome> connect(std::shared_ptr<Connection> self, beast::tcp_stream& stream, TimePoint deadline) {
    if (auto refused = self->open_socket(stream)) {
      co_return *refused;
    }
    stream.expires_at(deadline);
    auto [ec] = co_await stream.async_connect(self->shared_.endpoints.front(), kTuple);
    if (ec) {
      co_return connect_outcome(ec);
    }
    stream.socket().set_option(tcp::no_delay(true), ec);
    co_return Outcome{};
  }

  /// One HTTP exchange on a keep-alive stream, connecting first where needed.
  static awaitable<std::pair<Outcome, std::string>> exchange(std::shared_ptr<Connection> self,
                                                             beast::tcp_stream& stream, http::verb verb,
                                                             std::string target, std::string body,
                                                             TimePoint deadline) {
    if (!stream.socket().is_open()) {
      Outcome o = co_await connect(self, stream, deadline);
      if (!o.ok()) {
        co_return std::pair{o, std::string()};
      }
    }
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, self->host_header_);
    req.set(http::field::user_agent, "phasekit-load");
    for (const auto& [k, v] : self->headers_) {
      req.set(k, v);
    }
    if (verb == http::verb::post) {
      req.set(http::field::content_type, "text/plain;charset=UTF-8");
      req.body() = std::move(body);
    }
    req.prepare_payload();
    stream.expires_at(deadline);
    auto [wec, written] = co_await http::async_write(stream, req, kTuple);
    if (wec) {
      co_return std::pair{Outcome{"transport_error", wec.message()}, std::string()};
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(self->max_payload_ + 1024);
    auto [rec, read] = co_await http::async_read(stream, buffer, parser, kTuple);
    stream.expires_never();
    if (rec) {
      co_return std::pair{Outcome{rec == beast::error::timeout ? "response_timeout" : "transport_error", rec.message()},
                          std::string()};
    }
    auto res = parser.release();
    if (!res.keep_alive()) {
      self->drop_socket(stream);
    }
    if (res.result() != http::status::ok) {
      co_return std::pair{Outcome{"handshake_failed", fmt::format("HTTP {}: {}", res.result_int(), res.body())},
                          std::string()};
    }
    co_return std::pair{Outcome{}, std::move(res.body())};
  }

  /// Reads the Engine.IO open packet's fields.
  Outcome take_open(const engineio::Packet& packet) {
    if (packet.type != engineio::PacketType::open) {
      return {"handshake_failed", fmt::format("expected an Engine.IO open packet, got \"{:.60}\"", packet.data)};
    }
    const json j = json::parse(packet.data, nullptr, false);
    if (!j.is_object() || !j.contains("sid") || !j["sid"].is_string()) {
      return {"handshake_failed", "open packet without a sid"};
    }
    sid_ = j["sid"].get<std::string>();
    max_payload_ = j.value("maxPayload", std::size_t{1000000});
    if (j.contains("upgrades") && j["upgrades"].is_array()) {
      for (const auto& u : j["upgrades"]) {
        can_upgrade_ = can_upgrade_ || u == "websocket";
      }
    }
    return {};
  }

  static awaitable<Outcome> open_websocket(std::shared_ptr<Connection> self, std::unique_ptr<Ws>& ws,
                                           TimePoint deadline, bool probe) {
    ws = std::make_unique<Ws>(self->worker_.ioc);
    Outcome o = co_await connect(self, beast::get_lowest_layer(*ws), deadline);
    if (!o.ok()) {
      co_return o;
    }
    ws->set_option(websocket::stream_base::decorator([headers = self->headers_](websocket::request_type& req) {
      req.set(http::field::user_agent, "phasekit-load");
      for (const auto& [k, v] : headers) {
        req.set(k, v);
      }
    }));
    ws->read_message_max(self->max_payload_ + 16);
    websocket::response_type res;
    auto [ec] = co_await ws->async_handshake(res, self->host_header_, self->query("websocket"), kTuple);
    if (ec) {
      co_return Outcome{ec == beast::error::timeout ? "connect_timeout" : "handshake_failed",
                        fmt::format("WebSocket handshake: {} (HTTP {})", ec.message(), res.result_int())};
    }
    if (probe) {
      co_return Outcome{};
    }
    beast::flat_buffer buffer;
    auto [rec, n] = co_await ws->async_read(buffer, kTuple);
    if (rec) {
      co_return Outcome{rec == beast::error::timeout ? "connect_timeout" : "handshake_failed", rec.message()};
    }
    auto packet = engineio::decode_text(beast::buffers_to_string(buffer.data()));
    if (!packet) {
      co_return Outcome{"handshake_failed", packet.error().message};
    }
    co_return self->take_open(*packet);
  }

  void handle(engineio::Packet& p) {
    switch (p.type) {
      case engineio::PacketType::ping:
        outbox_.push_back(engineio::Packet{engineio::PacketType::pong, std::move(p.data), false});
        kick_writer();
        return;
      case engineio::PacketType::close:
        die("server_closed", "the server closed the Engine.IO session");
        return;
      case engineio::PacketType::message: {
        auto packets = p.binary ? decoder_.feed_binary(std::move(p.data)) : decoder_.feed(p.data);
        if (!packets) {
          die("protocol_error", packets.error().message);
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
    switch (p.type) {
      case socketio::PacketType::connect:
        joined_[p.nsp] = Outcome{};
        break;
      case socketio::PacketType::connect_error:
        joined_[p.nsp] = Outcome{"connect_error", p.data.is_object() ? p.data.value("message", p.data.dump())
                                                                   : p.data.dump()};
        break;
      case socketio::PacketType::disconnect:
        die("server_disconnect", fmt::format("the server disconnected namespace {}", p.nsp));
        break;
      default:
        worker_.add(kEventsReceived);
        if (on_packet) {
          on_packet(p);
        }
        break;
    }
    signal_.cancel();
  }

  void kick_writer() {
    if (writing_ || outbox_.empty() || dead() || upgrading_ || mode_ == Mode::none) {
      return;
    }
    writing_ = true;
    if (mode_ == Mode::websocket) {
      asio::co_spawn(worker_.ioc, ws_writer(shared_from_this()), asio::detached);
    } else {
      asio::co_spawn(worker_.ioc, post_writer(shared_from_this()), asio::detached);
    }
  }

  static awaitable<void> ws_writer(std::shared_ptr<Connection> self) {
    while (!self->outbox_.empty() && !self->dead()) {
      engineio::Packet p = std::move(self->outbox_.front());
      self->outbox_.pop_front();
      const std::string frame = p.binary ? std::move(p.data) : engineio::encode_text(p);
      self->ws_->binary(p.binary);
      auto [ec, n] = co_await self->ws_->async_write(asio::buffer(frame), kTuple);
      if (ec) {
        self->die("transport_error", ec.message());
      }
    }
    self->writing_ = false;
    self->upgrade_signal_.cancel();
  }

  static awaitable<void> post_writer(std::shared_ptr<Connection> self) {
    while (!self->outbox_.empty() && !self->dead() && !self->upgrading_) {
      std::vector<engineio::Packet> batch(std::make_move_iterator(self->outbox_.begin()),
                                          std::make_move_iterator(self->outbox_.end()));
      self->outbox_.clear();
      std::string body = engineio::encode_payload(batch);
      const TimePoint deadline = SteadyClock::now() + seconds(self->shared_.scenario.timeout_s);
      auto [outcome, reply] = co_await exchange(self, *self->post_, http::verb::post, self->query("polling"),
                                                std::move(body), deadline);
      if (!outcome.ok()) {
        self->die(outcome.code, "POST: " + outcome.detail);
      }
    }
    self->writing_ = false;
    self->upgrade_signal_.cancel();
  }

  static awaitable<void> ws_reader(std::shared_ptr<Connection> self) {
    beast::flat_buffer buffer;
    while (!self->dead()) {
      auto [ec, n] = co_await self->ws_->async_read(buffer, kTuple);
      if (ec) {
        self->die(ec == websocket::error::closed ? "server_closed" : "transport_error", ec.message());
        break;
      }
      engineio::Packet p;
      if (self->ws_->got_binary()) {
        p = engineio::Packet{engineio::PacketType::message, beast::buffers_to_string(buffer.data()), true};
      } else {
        auto decoded = engineio::decode_text(beast::buffers_to_string(buffer.data()));
        if (!decoded) {
          self->die("protocol_error", decoded.error().message);
          break;
        }
        p = std::move(*decoded);
      }
      buffer.consume(buffer.size());
      self->handle(p);
    }
  }

  static awaitable<void> poll_loop(std::shared_ptr<Connection> self) {
    while (!self->dead() && !self->upgrading_) {
      // The server answers a poll within pingInterval (with a ping at the latest).
      const TimePoint deadline = SteadyClock::now() + self->poll_timeout_;
      auto [outcome, body] = co_await exchange(self, *self->get_, http::verb::get, self->query("polling"), "", deadline);
      if (!outcome.ok()) {
        self->die(outcome.code, "GET: " + outcome.detail);
        break;
      }
      auto packets = engineio::decode_payload(body, engineio::Limits{self->max_payload_ + 1024, 10000});
      if (!packets) {
        self->die("protocol_error", packets.error().message);
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
  static awaitable<void> upgrade(std::shared_ptr<Connection> self) {
    const TimePoint deadline = SteadyClock::now() + seconds(self->shared_.options.connect_timeout_s);
    Outcome o = co_await open_websocket(self, self->probe_, deadline, true);
    if (o.ok()) {
      self->probe_->text(true);
      auto [wec, w] = co_await self->probe_->async_write(asio::buffer(std::string_view("2probe")), kTuple);
      beast::flat_buffer buffer;
      auto [rec, r] = co_await self->probe_->async_read(buffer, kTuple);
      if (wec || rec || beast::buffers_to_string(buffer.data()) != "3probe") {
        o = Outcome{"upgrade_failed", "no 3probe"};
      }
    }
    if (!o.ok() || self->dead()) {
      if (self->probe_) {
        self->drop_socket(beast::get_lowest_layer(*self->probe_));
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
      self->die("upgrade_failed", "polling did not pause for the upgrade");
      co_return;
    }
    auto [uec, u] = co_await self->probe_->async_write(asio::buffer(std::string_view("5")), kTuple);
    if (uec) {
      self->die("upgrade_failed", uec.message());
      co_return;
    }
    beast::get_lowest_layer(*self->probe_).expires_never();
    self->ws_ = std::move(self->probe_);
    self->mode_ = Mode::websocket;
    self->upgrading_ = false;
    self->drop_socket(*self->get_);
    self->drop_socket(*self->post_);
    asio::co_spawn(self->worker_.ioc, ws_reader(self), asio::detached);
    self->kick_writer();
  }

 public:
  void configure(std::string host_header, std::map<std::string, std::string> headers, std::string query) {
    host_header_ = std::move(host_header);
    headers_ = std::move(headers);
    query_ = std::move(query);
  }

  void release_sockets() {
    shutdown_sockets();
    shared_.sockets.fetch_sub(sockets_held_);
    sockets_held_ = 0;
  }

 private:
  Worker& worker_;
  Shared& shared_;
  asio::steady_timer signal_;          // woken on every delivered packet and on death
  asio::steady_timer upgrade_signal_;  // woken when polling or a write stops
  Outcome death_;
  Mode mode_ = Mode::none;
  std::unique_ptr<Ws> ws_;
  std::unique_ptr<Ws> probe_;
  std::unique_ptr<beast::tcp_stream> get_;
  std::unique_ptr<beast::tcp_stream> post_;
  std::deque<engineio::Packet> outbox_;
  bool writing_ = false;
  bool upgrading_ = false;
  bool polling_ = false;
  bool can_upgrade_ = false;
  std::string sid_;
  std::size_t max_payload_ = 1000000;
  SteadyClock::duration poll_timeout_ = std::chrono::seconds(60);
  std::string host_header_;
  std::map<std::string, std::string> headers_;
  std::string query_;
  std::map<std::string, Outcome> joined_;
  socketio::Decoder decoder_;
  std::int64_t sockets_held_ = 0;
};

awaitable<Outcome> Connection::open(std::shared_ptr<Connection> self, TimePoint deadline) {
  const SocketOptions& o = self->shared_.scenario.socket;
  if (!o.polling) {
    Outcome r = co_await open_websocket(self, self->ws_, deadline, false);
    if (!r.ok()) {
      co_return r;
    }
    beast::get_lowest_layer(*self->ws_).expires_never();
    self->mode_ = Mode::websocket;
    asio::co_spawn(self->worker_.ioc, ws_reader(self), asio::detached);
    co_return Outcome{};
  }
  self->get_ = std::make_unique<beast::tcp_stream>(self->worker_.ioc);
  self->post_ = std::make_unique<beast::tcp_stream>(self->worker_.ioc);
  auto [outcome, body] = co_await exchange(self, *self->get_, http::verb::get, self->query("polling"), "", deadline);
  if (!outcome.ok()) {
    if (outcome.code == "response_timeout") {
      outcome.code = "connect_timeout";  // no answer to the handshake is a connection that did not open
    }
    co_return outcome;
  }
  auto packets = engineio::decode_payload(body);
  if (!packets || packets->empty()) {
    co_return Outcome{"handshake_failed", fmt::format("polling handshake answered \"{:.60}\"", body)};
  }
  Outcome opened = self->take_open((*packets)[0]);
  if (!opened.ok()) {
    co_return opened;
  }
  self->mode_ = Mode::polling;
  self->polling_ = true;
  asio::co_spawn(self->worker_.ioc, poll_loop(self), asio::detached);
  if (o.websocket && self->can_upgrade_) {
    asio::co_spawn(self->worker_.ioc, upgrade(self), asio::detached);
  }
  co_return Outcome{};
}

awaitable<Outcome> Connection::join(std::shared_ptr<Connection> self, std::string ns, std::optional<json> auth,
                                    TimePoint deadline) {
  if (const auto it = self->joined_.find(ns); it != self->joined_.end() && it->second.ok()) {
    co_return Outcome{};
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
    co_return self->death_;
  }
  const auto it = self->joined_.find(ns);
  if (it == self->joined_.end()) {
    co_return Outcome{"connect_timeout", fmt::format("no answer to CONNECT {}", ns)};
  }
  co_return it->second;
}

awaitable<void> Connection::close(std::shared_ptr<Connection> self) {
  if (!self->dead()) {
    for (const auto& [ns, outcome] : self->joined_) {
      if (outcome.ok()) {
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
  self->death_ = Outcome{"closed", ""};
  self->release_sockets();
  self->signal_.cancel();
  self->upgrade_signal_.cancel();
}

// ---------------------------------------------------------------------------------------------
// A virtual user: runs one flow of the scenario on its connection.

class VirtualUser {
 public:
  VirtualUser(Worker& w, Shared& s, std::uint64_t id, TimePoint intended)
      : worker_(w), shared_(s), id_(id), rng_(w.rng()), intended_(intended), arrival_(intended) {}

  static awaitable<void> run(std::shared_ptr<VirtualUser> self, std::size_t phase);

 private:
  static awaitable<Outcome> steps(std::shared_ptr<VirtualUser> self, const std::vector<Step>* steps);
  static awaitable<Outcome> emit(std::shared_ptr<VirtualUser> self, const Step* step);

  json render_value(const json& t, Outcome& error) {
    std::string missing;
    json v = render(t, vars_, rng_, &missing);
    if (!missing.empty() && error.ok()) {
      error = Outcome{"template", fmt::format("{{{{ {} }}}} has no value", missing)};
    }
    return v;
  }

  void pick_variables() {
    for (const auto& [name, values] : shared_.scenario.variables) {
      vars_[name] = values.size() == 1 ? values[0]
                                       : values[std::uniform_int_distribution<std::size_t>(0, values.size() - 1)(rng_)];
    }
    for (const auto& [name, value] : shared_.scenario.environment) {
      vars_[name] = value;
    }
  }

  const Flow& pick_flow() {
    const double total = shared_.flow_weights.back();
    const double r = std::uniform_real_distribution<double>(0, total)(rng_);
    for (std::size_t i = 0; i < shared_.flow_weights.size(); ++i) {
      if (r < shared_.flow_weights[i]) {
        return shared_.scenario.flows[i];
      }
    }
    return shared_.scenario.flows.back();
  }

  /// Checks and captures of an awaited payload.
  Outcome expect(const Expectation& e, const json& payload) {
    Outcome error;
    if (e.data) {
      const json want = render_value(*e.data, error);
      if (!error.ok()) {
        return error;
      }
      if (want != payload) {
        return {"data_mismatch", fmt::format("expected {:.80}, got {:.80}", want.dump(), payload.dump())};
      }
    }
    for (const Match& m : e.matches) {
      const json want = render_value(m.value, error);
      const json* got = m.path.find(payload);
      const bool equal = got != nullptr && (*got == want || (want.is_string() && !got->is_string() &&
                                                              got->dump() == want.get<std::string>()));
      if (!error.ok()) {
        return error;
      }
      if (!equal) {
        return {"match_failed", fmt::format("{}: expected {:.60}, got {:.60}", m.path.text(), want.dump(),
                                            got == nullptr ? std::string("nothing") : got->dump())};
      }
    }
    for (const Capture& c : e.captures) {
      const json* got = c.path.find(payload);
      if (got == nullptr) {
        return {"capture_failed", fmt::format("{} is not in {:.80}", c.path.text(), payload.dump())};
      }
      vars_[c.as] = *got;
    }
    return {};
  }

  Worker& worker_;
  Shared& shared_;
  std::uint64_t id_;
  std::mt19937_64 rng_;
  TimePoint intended_;  // when the next step is meant to start
  TimePoint arrival_;
  Vars vars_;
  const Flow* flow_ = nullptr;
  std::shared_ptr<Connection> conn_;
  std::uint64_t next_ack_ = 0;
  // What the current emit waits for.
  std::optional<std::string> want_channel_;
  std::string want_ns_;
  std::optional<std::uint64_t> want_ack_;
  std::optional<json> response_;
  std::optional<json> ack_;
};

awaitable<Outcome> VirtualUser::emit(std::shared_ptr<VirtualUser> self, const Step* step) {
  const Scenario& sc = self->shared_.scenario;
  const std::string ns = step->ns == "/" ? sc.target.ns : step->ns;
  Outcome error;
  if (ns != sc.target.ns) {
    const std::optional<json> auth = sc.socket.auth ? std::optional<json>(self->render_value(*sc.socket.auth, error))
                                                    : std::nullopt;
    Outcome joined = co_await Connection::join(self->conn_, ns, auth,
                                               SteadyClock::now() + seconds(self->shared_.options.connect_timeout_s));
    if (!joined.ok()) {
      co_return joined;
    }
  }
  json args = json::array();
  args.push_back(render_string(step->channel, self->vars_, self->rng_));
  for (const json& a : step->args) {
    args.push_back(self->render_value(a, error));
  }
  if (step->response) {
    self->want_channel_ = render_string(step->response->channel, self->vars_, self->rng_);
  }
  if (!error.ok()) {
    co_return error;
  }
  self->want_ns_ = ns;
  self->response_.reset();
  self->ack_.reset();
  self->want_ack_.reset();
  if (step->ack) {
    self->want_ack_ = self->next_ack_++;
  }
  self->conn_->send(socketio::Packet::event(ns, std::move(args), self->want_ack_));
  self->worker_.add(kEmits);
  if (!step->response && !step->ack) {
    self->intended_ = SteadyClock::now();
    co_return Outcome{};
  }
  const TimePoint deadline = SteadyClock::now() + seconds(sc.timeout_s);
  const auto waiting = [&] {
    return (step->response && !self->response_) || (step->ack && !self->ack_);
  };
  while (!self->conn_->dead() && waiting() && SteadyClock::now() < deadline) {
    self->conn_->signal().expires_at(deadline);
    co_await self->conn_->signal().async_wait(kTuple);
  }
  const TimePoint done = SteadyClock::now();
  self->want_channel_.reset();
  self->want_ack_.reset();
  if (waiting()) {
    if (self->conn_->dead()) {
      co_return self->conn_->death();
    }
    co_return Outcome{step->response && !self->response_ ? "response_timeout" : "ack_timeout",
                      fmt::format("nothing within {} s", sc.timeout_s)};
  }
  const std::uint64_t latency = micros(done - self->intended_);
  self->worker_.record(kResponseTime, latency);
  if (sc.channels.count(step->channel) != 0) {
    self->worker_.record(fmt::format("{}.{}", kResponseTime, step->channel), latency);
  }
  self->intended_ = done;
  if (step->response) {
    self->worker_.add(kResponses);
    Outcome o = self->expect(*step->response, *self->response_);
    if (!o.ok()) {
      co_return o;
    }
  }
  if (step->ack) {
    self->worker_.add(kAcks);
    const json& ack_args = *self->ack_;
    const bool unwrap = self->flow_->v3_acks && ack_args.is_array() && ack_args.size() == 1;
    Outcome o = self->expect(*step->ack, unwrap ? ack_args[0] : ack_args);
    if (!o.ok()) {
      co_return o;
    }
  }
  co_return Outcome{};
}

awaitable<Outcome> VirtualUser::steps(std::shared_ptr<VirtualUser> self, const std::vector<Step>* list) {
  for (const Step& step : *list) {
    if (self->conn_->dead()) {
      co_return self->conn_->death();
    }
    switch (step.kind) {
      case Step::Kind::emit: {
        Outcome o = co_await emit(self, &step);
        if (!o.ok()) {
          co_return o;
        }
        break;
      }
      case Step::Kind::think:
        // On the connection's signal, so that a user whose connection dies (or is aborted) stops
        // thinking at once; packets arriving meanwhile wake it early, hence the loop.
        self->intended_ += seconds(step.think_s);
        while (!self->conn_->dead() && SteadyClock::now() < self->intended_) {
          self->conn_->signal().expires_at(self->intended_);
          co_await self->conn_->signal().async_wait(kTuple);
        }
        break;
      case Step::Kind::loop:
        for (std::uint64_t i = 0; i < step.count; ++i) {
          self->vars_["$loopCount"] = i;
          Outcome o = co_await steps(self, &step.steps);
          if (!o.ok()) {
            co_return o;
          }
        }
        break;
      case Step::Kind::log:
        if (!self->shared_.options.quiet && self->shared_.log_lines.fetch_add(1) < 1000) {
          std::cerr << fmt::format("[vu {}] {}\n", self->id_, render_string(step.message, self->vars_, self->rng_));
        }
        break;
    }
  }
  co_return Outcome{};
}

awaitable<void> VirtualUser::run(std::shared_ptr<VirtualUser> self, std::size_t phase) {
  Shared& sh = self->shared_;
  Worker& w = self->worker_;
  const Scenario& sc = sh.scenario;
  const TimePoint started = SteadyClock::now();
  w.record(kArrivalLag, micros(started - self->arrival_));
  if (started - self->arrival_ > seconds(sh.options.late_ms / 1000.0)) {
    w.add(kArrivalsLate);
  }
  w.add(kVusersCreated);
  self->pick_variables();
  const Flow& flow = self->pick_flow();
  self->flow_ = &flow;

  self->conn_ = std::make_shared<Connection>(w, sh);
  std::weak_ptr<VirtualUser> weak = self;
  self->conn_->on_packet = [weak](socketio::Packet& p) {
    auto vu = weak.lock();
    if (!vu || p.nsp != vu->want_ns_) {
      return;
    }
    if (p.type == socketio::PacketType::event && vu->want_channel_ && !vu->response_ && p.data.is_array() &&
        !p.data.empty() && p.data[0] == *vu->want_channel_) {
      vu->response_ = p.data.size() > 1 ? p.data[1] : json(nullptr);
    } else if (p.type == socketio::PacketType::ack && vu->want_ack_ && p.id == vu->want_ack_ && !vu->ack_) {
      vu->ack_ = p.data;
    }
  };
  std::string host = sc.target.host.find(':') != std::string::npos ? "[" + sc.target.host + "]" : sc.target.host;
  std::map<std::string, std::string> headers;
  Outcome outcome;
  for (const auto& [k, v] : sc.socket.headers) {
    headers[k] = render_string(v, self->vars_, self->rng_);
  }
  self->conn_->configure(fmt::format("{}:{}", host, sc.target.port), std::move(headers),
                         render_string(sc.socket.query, self->vars_, self->rng_));
  const TimePoint deadline = started + seconds(sh.options.connect_timeout_s);
  outcome = co_await Connection::open(self->conn_, deadline);
  if (outcome.ok()) {
    const std::optional<json> auth = sc.socket.auth ? std::optional<json>(self->render_value(*sc.socket.auth, outcome))
                                                    : std::nullopt;
    if (outcome.ok()) {
      self->want_ns_ = sc.target.ns;
      outcome = co_await Connection::join(self->conn_, sc.target.ns, auth, deadline);
    }
  }
  if (outcome.ok()) {
    const TimePoint connected = SteadyClock::now();
    w.record(kConnectTime, micros(connected - self->arrival_));
    self->intended_ = connected;
    const TimePoint repeat_until = sh.start + seconds(sh.repeat_until_s);
    do {
      outcome = co_await steps(self, &flow.steps);
      if (outcome.ok()) {
        w.add(kFlowsCompleted);
      }
    } while (outcome.ok() && sh.repeat_until_s > 0 && SteadyClock::now() < repeat_until);
  }
  if (outcome.code == "sockets_exhausted") {
    w.add(kArrivalsDropped);
  }
  if (outcome.ok()) {
    w.add(kVusersCompleted);
    w.record(kSessionLength, micros(SteadyClock::now() - self->arrival_));
  } else {
    w.add(kVusersFailed);
    w.add(fmt::format("{}{}", kErrorPrefix, outcome.code));
  }
  co_await Connection::close(self->conn_);
  self->conn_->on_packet = nullptr;
  sh.phase_active[phase].fetch_sub(1);
  sh.users.fetch_sub(1);
  w.active.fetch_sub(1);
}

awaitable<void> arrivals(Worker* w, Shared* sh, std::uint64_t first, std::uint64_t stride) {
  asio::steady_timer timer(w->ioc);
  const Schedule& schedule = sh->schedule;
  for (std::uint64_t k = first; k < schedule.total(); k += stride) {
    const Schedule::Arrival a = schedule.at(k);
    if ((sh->options.max_duration_s > 0 && a.at_s >= sh->options.max_duration_s) || sh->stop_arrivals.load()) {
      break;
    }
    const TimePoint intended = sh->start + seconds(a.at_s);
    timer.expires_at(intended);
    co_await timer.async_wait(kTuple);
    if (sh->stop_arrivals.load()) {
      break;
    }
    const auto& limit = sh->scenario.phases.size() > a.phase ? sh->scenario.phases[a.phase].max_vusers : std::nullopt;
    if (limit && sh->phase_active[a.phase].load() >= static_cast<std::int64_t>(*limit)) {
      w->add(kVusersSkipped);
      continue;
    }
    sh->phase_active[a.phase].fetch_add(1);
    w->active.fetch_add(1);
    const std::int64_t now_users = sh->users.fetch_add(1) + 1;
    std::int64_t peak = sh->peak_users.load();
    while (now_users > peak && !sh->peak_users.compare_exchange_weak(peak, now_users)) {
    }
    auto vu = std::make_shared<VirtualUser>(*w, *sh, sh->next_vu.fetch_add(1), intended);
    asio::co_spawn(w->ioc, VirtualUser::run(std::move(vu), a.phase), asio::detached);
  }
  w->scheduled_all = true;
}

std::int64_t raise_file_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return 1000;
  }
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  return static_cast<std::int64_t>(lim.rlim_cur) - 64;  // for the process's own files
}

std::string iso_now() {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())));
}

}  // namespace

Report run_scenario(const Scenario& scenario, const RunOptions& options, const ProgressFn& progress) {
  std::vector<Phase> phases = scenario.phases;
  Shared shared(scenario, options, phases);
  shared.repeat_until_s = options.repeat_until_s;
  double cumulative = 0;
  for (const Flow& f : scenario.flows) {
    cumulative += f.weight;
    shared.flow_weights.push_back(cumulative);
  }

  {
    asio::io_context resolver_ioc;
    tcp::resolver resolver(resolver_ioc);
    beast::error_code ec;
    for (const auto& entry : resolver.resolve(scenario.target.host, scenario.target.port, ec)) {
      shared.endpoints.push_back(entry.endpoint());
    }
    if (ec || shared.endpoints.empty()) {
      throw std::runtime_error(fmt::format("target {}: cannot resolve {} ({})", scenario.target.url(),
                                           scenario.target.host, ec.message()));
    }
    // Prefer IPv4 for localhost, as the servers we test listen there.
    std::stable_partition(shared.endpoints.begin(), shared.endpoints.end(),
                          [](const tcp::endpoint& e) { return e.address().is_v4(); });
    shared.endpoints.resize(1);
  }
  const asio::ip::address address = shared.endpoints.front().address();
  const bool loopback = address.is_loopback() || (address.is_v6() && address.to_v6().is_v4_mapped() &&
                                                  asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).is_loopback());
  if (!loopback && !options.allow_remote) {
    throw std::runtime_error(fmt::format(
        "target {} is {}, not a loopback address; pass --allow-remote to send load to another machine",
        scenario.target.url(), address.to_string()));
  }
  for (const std::string& s : options.source_addresses) {
    beast::error_code ec;
    shared.sources.push_back(asio::ip::make_address(s, ec));
    if (ec) {
      throw std::runtime_error(fmt::format("--source-addresses: \"{}\" is not an IP address", s));
    }
  }
  if (shared.sources.empty() && options.auto_source_addresses && address.is_v4() && address.is_loopback()) {
    // Each source address has its own 28k ephemeral ports towards the target.
    for (unsigned i = 1; i <= 8; ++i) {
      shared.sources.push_back(asio::ip::make_address_v4((127u << 24) | i));
    }
  }
  shared.max_sockets = raise_file_limit();

  const unsigned threads = options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<Worker>> workers;
  std::random_device entropy;
  const std::uint64_t seed = options.seed != 0 ? options.seed : (std::uint64_t{entropy()} << 32) ^ entropy();
  for (unsigned i = 0; i < threads; ++i) {
    workers.push_back(std::make_unique<Worker>());
    workers.back()->rng.seed(seed + i);
  }

  Report report;
  report.meta = {{"scenario", scenario.file},
                 {"target", scenario.target.url()},
                 {"startedAt", iso_now()},
                 {"generator", "phasekit-load"},
                 {"threads", threads},
                 {"intervalSeconds", options.progress_s},
                 {"transports", scenario.socket.polling ? (scenario.socket.websocket ? "polling+websocket" : "polling")
                                                        : "websocket"},
                 {"phases", json::array()}};
  for (std::size_t i = 0; i < phases.size(); ++i) {
    report.meta["phases"].push_back({{"name", phases[i].name},
                                     {"start", shared.schedule.phase_start(i)},
                                     {"duration", phases[i].duration_s}});
  }

  shared.start = SteadyClock::now() + std::chrono::milliseconds(20);
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i) {
    Worker* w = workers[i].get();
    asio::co_spawn(w->ioc, arrivals(w, &shared, i, threads), asio::detached);
    pool.emplace_back([w] {
      auto guard = asio::make_work_guard(w->ioc);
      w->ioc.run();
    });
  }

  const double last_arrival_s = shared.schedule.total() == 0
                                    ? 0
                                    : shared.schedule.at(shared.schedule.total() - 1).at_s;
  double end_of_arrivals = std::max(last_arrival_s, shared.repeat_until_s);
  if (options.max_duration_s > 0) {
    end_of_arrivals = std::min(end_of_arrivals, options.max_duration_s);
  }
  const double drain_s = options.drain_s >= 0 ? options.drain_s
                                               : options.connect_timeout_s + scenario.flow_bound_s() + 5;
  report.meta["drainSeconds"] = drain_s;
  const TimePoint drain_deadline = shared.start + seconds(end_of_arrivals + drain_s);
  const auto interval = seconds(options.progress_s);
  TimePoint next_tick = shared.start + interval;
  TimePoint last_tick = shared.start;
  bool aborted = false;
  TimePoint abort_started = TimePoint::max() - std::chrono::hours(1);
  const auto all_done = [&] {
    for (const auto& w : workers) {
      if (!w->scheduled_all || w->active.load() != 0) {
        return false;
      }
    }
    return true;
  };
  const auto take_interval = [&](TimePoint now) {
    Interval i;
    i.start_s = std::chrono::duration<double>(last_tick - shared.start).count();
    i.end_s = std::chrono::duration<double>(now - shared.start).count();
    for (const auto& w : workers) {
      i.metrics.merge(w->take());
    }
    i.users_active = static_cast<std::uint64_t>(std::max<std::int64_t>(0, shared.users.load()));
    const std::size_t phase = shared.schedule.phase_at(std::max(0.0, i.end_s - 1e-6));
    i.phase = phase < phases.size() ? (phases[phase].name.empty() ? fmt::format("phase {}", phase + 1)
                                                                   : phases[phase].name)
                                    : "";
    last_tick = now;
    return i;
  };
  while (true) {
    const bool done = all_done();
    const TimePoint now = SteadyClock::now();
    if (now >= next_tick || done) {
      Interval i = take_interval(now);
      if (i.end_s - i.start_s > 1e-3 || !i.metrics.empty()) {
        if (progress) {
          progress(i, i.end_s - i.start_s);
        }
        report.total.merge(i.metrics);
        report.intervals.push_back(std::move(i));
      }
      next_tick += interval;
    }
    if (done) {
      break;
    }
    const bool interrupted = options.interrupted != nullptr && *options.interrupted != 0;
    if (!aborted && (now >= drain_deadline || interrupted)) {
      aborted = true;
      abort_started = now;
      shared.stop_arrivals = true;
      for (const auto& w : workers) {
        Worker* wp = w.get();
        asio::post(wp->ioc, [wp] { wp->scheduled_all = true; });
      }
      for (const auto& w : workers) {
        Worker* wp = w.get();
        asio::post(wp->ioc, [wp] {
          const std::vector<Connection*> live(wp->live.begin(), wp->live.end());
          for (Connection* c : live) {
            c->die("aborted", "still running when the drain period ended");
          }
        });
      }
    }
    if (aborted && now >= std::max(drain_deadline, abort_started) + std::chrono::seconds(10)) {
      break;  // users that do not end even when their sockets close: give up on them
    }
    std::this_thread::sleep_until(std::min(next_tick, now + std::chrono::milliseconds(20)));
  }
  for (const auto& w : workers) {
    w->ioc.stop();
  }
  for (std::thread& t : pool) {
    t.join();
  }
  report.duration_s = std::chrono::duration<double>(SteadyClock::now() - shared.start).count();
  report.peak_users = static_cast<std::uint64_t>(shared.peak_users.load());
  report.checks = evaluate(scenario.thresholds, report.total, report.duration_s);
  return report;
}

}  // namespace phasekit::load
