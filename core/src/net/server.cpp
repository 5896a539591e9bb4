#include "phasekit/net/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <utility>

#include "phasekit/net/connection_limits.hpp"
#include "phasekit/net/engine.hpp"
#include "phasekit/net/lingering_stream.hpp"
#include "phasekit/net/socketio_server.hpp"
#include "tool_namespace.hpp"

namespace phasekit::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(use_awaitable);
constexpr auto kHeaderTimeout = std::chrono::seconds(30);
/// The admin listener is for Prometheus and a few operators: a small fixed number of connections.
constexpr std::size_t kAdminConnections = 64;

/// Which listener a connection came through: it decides the routes it may reach.
enum class Listener : std::uint8_t { public_, admin };

bool is_engine_path(std::string_view path) { return path == "/socket.io/" || path == "/socket.io"; }

/// Resident memory of this process in bytes (from /proc/self/statm).
double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0;
  long pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

/// Socket.IO on namespace "/" to the ToolService, over Engine.IO.
std::shared_ptr<EngineServer> make_engine(const ServerSettings& settings, std::shared_ptr<app::ToolService> service,
                                          Metrics& metrics, Logger& log) {
  auto executor = service->executor();
  SocketIoSettings socketio;
  socketio.connect_timeout = settings.connect_timeout;
  socketio.limits.max_binary_bytes = settings.max_payload_bytes;
  auto handlers = socketio_handlers({{"/", tool_namespace(std::move(service))}}, socketio, log);
  return std::make_shared<EngineServer>(settings, std::move(executor), std::move(handlers), metrics, log);
}

}  // namespace

class Server::Impl {
 public:
  Impl(Server& owner, asio::io_context& ioc, ServerSettings settings, std::shared_ptr<app::ToolService> service,
       observe::MetricsRegistry& metrics, plugin::PoolStrategy& pool, Logger& log)
      : owner_(owner),
        ioc_(ioc),
        settings_(settings),
        metrics_(metrics),
        pool_(pool),
        log_(log),
        acceptor_(ioc),
        admin_acceptor_(ioc),
        connections_("tcp", settings_.max_connections, settings_.max_connections_per_address, metrics),
        admin_connections_(kAdminConnections, 0),
        engine_(service ? make_engine(settings, std::move(service), metrics, log) : nullptr),
        memory_(metrics.gauge("phasekit_process_resident_memory_bytes", "Resident memory of the orchestrator.")),
        http_requests_(metrics.counter("phasekit_http_requests_total", "HTTP requests answered (all routes).")),
        open_connections_(metrics.gauge("phasekit_http_connections", "TCP connections open on the public listener.")) {}

  ~Impl() {
    // The io_context has stopped (the process's end): what WebSockets still hold of this server (a
    // place under connections_, the gauge) is released now, not when the io_context destroys their
    // handlers, after this server.
    if (engine_ && ioc_.stopped()) {
      engine_->abandon_websockets();
    }
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void start() {
    open(acceptor_, settings_.bind_address, settings_.port, "PORT", settings_.reuse_port);
    open(admin_acceptor_, settings_.admin_bind_address, settings_.admin_port, "ADMIN_PORT", false);
    owner_.port_ = acceptor_.local_endpoint().port();
    owner_.admin_port_ = admin_acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, accept_loop(this, Listener::public_), asio::detached);
    asio::co_spawn(ioc_, accept_loop(this, Listener::admin), asio::detached);
  }

  static void open(asio::ip::tcp::acceptor& acceptor, const std::string& address, std::uint16_t port,
                   std::string_view setting, bool reuse_port) {
    try {
      const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(address), port);
      acceptor.open(endpoint.protocol());
      acceptor.set_option(asio::socket_base::reuse_address(true));
      if (reuse_port) {
        acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
      }
      acceptor.bind(endpoint);
      acceptor.listen(asio::socket_base::max_listen_connections);
    } catch (const std::system_error& e) {
      throw std::system_error(e.code(), fmt::format("{} {}:{}", setting, address, port));
    }
  }

  void stop_accepting() {
    asio::post(acceptor_.get_executor(), [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      admin_acceptor_.close(ignored);
    });
  }

  static awaitable<void> accept_loop(Impl* self, Listener listener) {
    auto& acceptor = listener == Listener::admin ? self->admin_acceptor_ : self->acceptor_;
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(self->ioc_), kTuple);
      if (ec) {
        // Closed by stop_accepting(), which may still be inside close() on another thread: its
        // cancellation says so (is_open() alone raced with it and logged a failure at every stop).
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
          co_return;
        }
        // EMFILE and friends: back off briefly instead of spinning.
        self->log_.warn("accept.failed", {{"error", ec.message()}});
        asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
        co_await pause.async_wait(kTuple);
        continue;
      }
      const auto peer = socket.remote_endpoint(ec);
      if (ec) {
        continue;  // gone already: the socket closes here
      }
      // Over a limit the socket is closed unread: before a request has been read there is nothing an
      // answer could be written after, and reading one is the work a flood wants from us.
      ConnectionLimits::Ticket ticket;
      const Admission admission = listener == Listener::admin
                                      ? self->admin_connections_.admit(peer.address(), ticket)
                                      : self->connections_.admit(peer.address(), ticket);
      if (admission != Admission::admitted) {
        continue;
      }
      socket.set_option(asio::ip::tcp::no_delay(true), ec);
      asio::co_spawn(socket.get_executor(),
                     connection(self, beast::tcp_stream(std::move(socket)), listener, peer.address(), std::move(ticket)),
                     asio::detached);
    }
  }

  /// Counts a public connection in phasekit_http_connections while it lives.
  class OpenConnection {
   public:
    OpenConnection(Gauge& gauge, Listener listener) : gauge_(listener == Listener::public_ ? &gauge : nullptr) {
      if (gauge_ != nullptr) gauge_->add(1);
    }
    ~OpenConnection() {
      if (gauge_ != nullptr) gauge_->add(-1);
    }
    OpenConnection(OpenConnection&& other) noexcept : gauge_(std::exchange(other.gauge_, nullptr)) {}
    OpenConnection(const OpenConnection&) = delete;
    OpenConnection& operator=(const OpenConnection&) = delete;
    OpenConnection& operator=(OpenConnection&&) = delete;

   private:
    Gauge* gauge_;
  };

  /// What a connection that became a WebSocket holds while the WebSocket lives.
  struct WebSocketConnection {
    WebSocketConnection(OpenConnection o, ConnectionLimits::Ticket t) : open(std::move(o)), ticket(std::move(t)) {}
    OpenConnection open;
    ConnectionLimits::Ticket ticket;
  };

  static awaitable<void> connection(Impl* self, beast::tcp_stream stream, Listener listener, asio::ip::address peer,
                                    ConnectionLimits::Ticket ticket) {
    OpenConnection open(self->open_connections_, listener);
    beast::flat_buffer buffer;
    for (;;) {
      RequestParser parser;
      limit_request(parser, self->settings_.max_payload_bytes);
      stream.expires_after(kHeaderTimeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
      if (ec == http::error::body_limit) {
        Request req = parser.release();
        if (listener == Listener::public_ && self->engine_ && is_engine_path(target_path(req.target()))) {
          self->engine_->refuse_oversized(req);
        }
        Response res = make_response(req, http::status::payload_too_large, "payload too large");
        res.keep_alive(false);
        auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
        if (!wec) {
          co_await lingering_close(stream);  // the rest of the body is on its way: let the answer arrive
        }
        break;
      }
      if (ec) {
        break;  // closed, timed out, or not HTTP: nothing to answer
      }
      Request req = parser.release();
      self->http_requests_.inc();
      const std::string_view path = target_path(req.target());
      if (beast::websocket::is_upgrade(req)) {
        if (listener == Listener::public_ && self->engine_ && is_engine_path(path)) {
          // This coroutine ends with the handshake; the WebSocket holds the connection's place. (A named
          // local, not a temporary in the co_await: gcc 12 destroys such temporaries twice.)
          auto held = std::make_shared<WebSocketConnection>(std::move(open), std::move(ticket));
          co_await self->engine_->handle_websocket(std::move(stream), std::move(req), peer, std::move(held));
          co_return;
        }
        Response res = make_response(req, http::status::not_found, "not found");
        co_await http::async_write(stream, res, kTuple);
        break;
      }
      Response res;
      if (listener == Listener::admin) {
        res = self->admin_route(req);
      } else {
        res = co_await self->public_route(std::move(req), stream.get_executor(), peer);
      }
      const bool keep_alive = res.keep_alive() && !self->owner_.draining();
      res.keep_alive(keep_alive);
      stream.expires_after(kHeaderTimeout);
      auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
      if (wec || !keep_alive) {
        break;
      }
    }
    beast::error_code ignored;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    ticket.release();
  }

  /// PORT: the probes and Socket.IO, nothing an operator reads.
  awaitable<Response> public_route(Request req, asio::any_io_executor executor, asio::ip::address peer) {
    const std::string_view path = target_path(req.target());
    if (engine_ && is_engine_path(path)) {
      co_return co_await engine_->handle_polling(std::move(req), std::move(executor), peer);
    }
    if (path == "/health" || path == "/ready") {
      co_return probe_route(req, path);
    }
    co_return make_response(req, http::status::not_found, "not found");
  }

  /// ADMIN_PORT: the probes and the operations routes.
  Response admin_route(const Request& req) {
    const std::string_view path = target_path(req.target());
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      return make_response(req, http::status::method_not_allowed, "method not allowed");
    }
    if (path == "/health" || path == "/ready") {
      return probe_route(req, path);
    }
    if (path == "/metrics") {
      memory_.set(resident_bytes());
      update_pool_gauges();
      for (const auto& refresh : scrape_hooks_) {
        refresh();
      }
      return make_response(req, http::status::ok, metrics_.render(), "text/plain; version=0.0.4; charset=utf-8");
    }
    if (path == "/stats/pool") {
      return make_response(req, http::status::ok, pool_stats().dump(), "application/json");
    }
    if (const auto route = json_routes_.find(path); route != json_routes_.end()) {
      return make_response(req, http::status::ok, route->second(), "application/json");
    }
    return make_response(req, http::status::not_found, "not found");
  }

  /// /health and /ready, on both listeners (balancers and Kubernetes probe PORT).
  Response probe_route(const Request& req, std::string_view path) const {
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      return make_response(req, http::status::method_not_allowed, "method not allowed");
    }
    if (path == "/health") {
      return make_response(req, http::status::ok, R"({"status":"ok"})", "application/json");
    }
    if (owner_.draining()) {
      return make_response(req, http::status::service_unavailable, R"({"status":"draining"})", "application/json");
    }
    if (!owner_.ready_) {
      return make_response(req, http::status::service_unavailable, R"({"status":"starting"})", "application/json");
    }
    if (readiness_.empty()) {
      return make_response(req, http::status::ok, R"({"status":"ready"})", "application/json");
    }
    nlohmann::json checks = nlohmann::json::object();
    bool ready = true;
    for (const auto& check : readiness_) {
      const bool ok = check.ok();
      checks[check.name] = ok ? "ok" : "unreachable";
      ready = ready && (ok || !check.gates);
    }
    return make_response(req, ready ? http::status::ok : http::status::service_unavailable,
                         nlohmann::json{{"status", ready ? "ready" : "unready"}, {"checks", std::move(checks)}}.dump(),
                         "application/json");
  }

  [[nodiscard]] nlohmann::json pool_stats() const {
    const plugin::PoolStats s = pool_.stats();
    return nlohmann::json{{"idle", s.idle},
                          {"active", s.active},
                          {"total", s.total},
                          {"minPoolSize", s.min_size},
                          {"maxPoolSize", s.max_size},
                          {"acquisitions", {{"warm", s.acquired_warm}, {"cold", s.acquired_cold},
                                            {"afterWait", s.acquired_after_wait}}},
                          {"waits", s.waits},
                          {"timeouts", s.timeouts},
                          {"evictions", s.evictions},
                          {"created", s.created},
                          {"destroyed", s.destroyed},
                          {"failures", s.failures},
                          {"limits", settings_.backend_limits}};
  }

  void update_pool_gauges() {
    const plugin::PoolStats s = pool_.stats();
    metrics_.gauge("phasekit_pool_backends", "Backends held by the pool, by state.", idle_label_).set(static_cast<double>(s.idle));
    metrics_.gauge("phasekit_pool_backends", "Backends held by the pool, by state.", active_label_).set(static_cast<double>(s.active));
  }

  Server& owner_;
  asio::io_context& ioc_;
  ServerSettings settings_;
  observe::MetricsRegistry& metrics_;
  plugin::PoolStrategy& pool_;
  Logger& log_;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::acceptor admin_acceptor_;
  CountedLimits connections_;
  ConnectionLimits admin_connections_;
  std::shared_ptr<EngineServer> engine_;
  Gauge& memory_;
  Counter& http_requests_;
  Gauge& open_connections_;
  std::map<std::string, std::function<std::string()>, std::less<>> json_routes_;  // set before start()
  std::vector<std::function<void()>> scrape_hooks_;                               // set before start()
  struct Readiness {
    std::string name;
    std::function<bool()> ok;
    bool gates;
  };
  std::vector<Readiness> readiness_;  // set before start()
  std::array<Label, 1> idle_label_{{{"state", "idle"}}};
  std::array<Label, 1> active_label_{{{"state", "active"}}};
};

ServerSettings server_settings(const config::Config& config) {
  using config::Key;
  ServerSettings s;
  s.bind_address = config.text(Key::bind_address);
  s.port = static_cast<std::uint16_t>(config.integer(Key::port));
  s.admin_bind_address = config.text(Key::admin_bind_address);
  s.admin_port = static_cast<std::uint16_t>(config.integer(Key::admin_port));
  s.origins = OriginPolicy::parse(config.text(Key::allowed_origins)).value_or(OriginPolicy());  // checked at load
  s.max_connections = static_cast<std::size_t>(config.integer(Key::max_connections));
  s.max_connections_per_address = static_cast<std::size_t>(config.integer(Key::max_connections_per_address));
  s.reuse_port = config.boolean(Key::reuse_port);
  s.max_payload_bytes = static_cast<std::size_t>(config.integer(Key::max_payload_bytes));
  s.ping_interval = std::chrono::milliseconds(config.integer(Key::ping_interval_ms));
  s.ping_timeout = std::chrono::milliseconds(config.integer(Key::ping_timeout_ms));
  s.connect_timeout = std::chrono::milliseconds(config.integer(Key::connect_timeout_ms));
  return s;
}

Server::Server(boost::asio::io_context& ioc, ServerSettings settings, std::shared_ptr<app::ToolService> service,
               observe::MetricsRegistry& metrics, plugin::PoolStrategy& pool, Logger& log)
    : impl_(std::make_unique<Impl>(*this, ioc, std::move(settings), std::move(service), metrics, pool, log)) {}

Server::~Server() = default;

void Server::start() { impl_->start(); }

void Server::add_json_route(std::string path, std::function<std::string()> body) {
  impl_->json_routes_[std::move(path)] = std::move(body);
}

const ServerSettings& Server::settings() const noexcept { return impl_->settings_; }

void Server::on_scrape(std::function<void()> refresh) { impl_->scrape_hooks_.push_back(std::move(refresh)); }

void Server::add_readiness_check(std::string name, std::function<bool()> ok, bool gates) {
  impl_->readiness_.push_back(Impl::Readiness{std::move(name), std::move(ok), gates});
}

void Server::begin_drain() {
  // /ready turns 503 and new Engine.IO sessions are refused, but the listener stays open so that
  // probes and the clients still being served get answers; close_clients() closes it.
  draining_ = true;
  if (impl_->engine_) {
    impl_->engine_->begin_drain();
  }
}

void Server::close_clients(std::string reason, std::chrono::milliseconds deadline, std::function<void()> done) {
  impl_->stop_accepting();
  if (impl_->engine_) {
    impl_->engine_->close_all(reason);
  }
  auto timer = std::make_shared<boost::asio::steady_timer>(impl_->ioc_);
  auto started = std::chrono::steady_clock::now();
  auto check = std::make_shared<std::function<void()>>();
  *check = [this, timer, started, deadline, done = std::move(done), check]() mutable {
    if (!impl_->engine_ || impl_->engine_->session_count() == 0 || std::chrono::steady_clock::now() - started >= deadline) {
      done();
      *check = nullptr;  // break the cycle
      return;
    }
    timer->expires_after(std::chrono::milliseconds(20));
    timer->async_wait([check](beast::error_code) {
      if (*check) {
        (*check)();
      }
    });
  };
  (*check)();
}

}  // namespace phasekit::net
