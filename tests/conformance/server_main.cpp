// phasekit-conformance-server: phasekit's network layer serving the Socket.IO project's protocol
// test application, so the protocol test suites and the official clients can run against it.
//   /engine.io/  Engine.IO: every message, text or binary, is echoed back.
//   /socket.io/  Socket.IO on "/" and "/custom": on connect it emits `auth` with the handshake's auth,
//                answers `message` with `message-back` and the same arguments, and acknowledges
//                `message-with-ack` with its arguments.
// For benchmarks (bench/artillery_compare.sh SERVER=cpp), as tests/harness/delay_server.js with no
// delay: `echo` is acknowledged at once with {ok: true, seq}, and GET /counts returns the
// connections, disconnects and acks seen so far.
// Settings from the environment: PORT, BIND_ADDRESS, PING_INTERVAL_MS, PING_TIMEOUT_MS,
// MAX_PAYLOAD_BYTES, CONNECT_TIMEOUT_MS (defaults: the reference application's 300, 200, 1e6, 1000),
// UPGRADE_TIMEOUT_MS, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS (the orchestrator's defaults).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "phasekit/net/engine.hpp"
#include "phasekit/net/lingering_stream.hpp"
#include "phasekit/net/socketio_server.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using namespace phasekit;
using namespace phasekit::net;
using json = nlohmann::json;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

/// The integer in environment variable `name`, `fallback` when unset; nullopt when malformed or
/// outside [min, max].
std::optional<long long> env_integer(const char* name, long long fallback, long long min, long long max) {
  const char* text = std::getenv(name);
  if (text == nullptr) {
    return fallback;
  }
  long long value = 0;
  const char* end = text + std::char_traits<char>::length(text);
  const auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end || value < min || value > max) {
    std::fprintf(stderr, "%s=%s: expected an integer in %lld..%lld\n", name, text, min, max);
    return std::nullopt;
  }
  return value;
}

/// Engine.IO test application: echoes every message.
class Echo final : public EngineHandler {
 public:
  explicit Echo(std::weak_ptr<EngineSession> session) : session_(std::move(session)) {}
  void on_message(engineio::Packet packet) override {
    if (auto s = session_.lock()) {
      s->send(std::move(packet));
    }
  }
  void on_close(std::string_view) override {}
  void on_shutdown(std::string_view) override {}

 private:
  std::weak_ptr<EngineSession> session_;
};

/// What the Socket.IO application saw (one thread runs the server).
struct Counts {
  std::uint64_t connections = 0;
  std::uint64_t disconnects = 0;
  std::uint64_t acks = 0;
};
Counts counts;

/// Socket.IO test application: one connected socket.
class TestSocket final : public SocketIoHandler {
 public:
  explicit TestSocket(std::shared_ptr<SocketIoSocket> socket) : socket_(std::move(socket)) { ++counts.connections; }
  void on_event(std::string name, json args, SocketIoAck ack) override {
    if (name == "message") {
      json back = json::array({"message-back"});
      for (auto& a : args) {
        back.push_back(std::move(a));
      }
      socket_->emit(std::move(back));
    } else if (name == "message-with-ack" && ack) {
      ack(std::move(args));
    } else if (name == "echo" && ack) {
      ++counts.acks;
      ack(json::array({{{"ok", true}, {"seq", counts.acks}}}));
    }
  }
  void on_disconnect(std::string_view) override { ++counts.disconnects; }

 private:
  std::shared_ptr<SocketIoSocket> socket_;
};

class TestNamespace final : public SocketIoNamespace {
 public:
  void connect(const json& auth, std::shared_ptr<SocketIoSocket> socket, std::string_view,
               std::function<void(SocketIoConnectResult)> done) override {
    socket->emit(json::array({"auth", auth}));  // sent right after the CONNECT answer
    done(SocketIoConnectResult{std::make_unique<TestSocket>(std::move(socket)), {}, {}});
  }
};

struct Endpoints {
  std::shared_ptr<EngineServer> engineio;
  std::shared_ptr<EngineServer> socketio;

  [[nodiscard]] EngineServer* route(std::string_view path) const {
    if (path == "/engine.io/" || path == "/engine.io") {
      return engineio.get();
    }
    if (path == "/socket.io/" || path == "/socket.io") {
      return socketio.get();
    }
    return nullptr;
  }
};

asio::awaitable<void> connection(const Endpoints& endpoints, std::size_t max_payload, beast::tcp_stream stream) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(max_payload + 1024);
    stream.expires_after(std::chrono::seconds(30));
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
    if (ec == http::error::body_limit) {
      if (EngineServer* engine = endpoints.route(target_path(parser.get().target())); engine != nullptr) {
        engine->refuse_oversized(parser.get());
      }
      Response res = make_response(parser.get(), http::status::payload_too_large, "payload too large");
      res.keep_alive(false);
      auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
      if (!wec) {
        co_await lingering_close(stream);
      }
      break;
    }
    if (ec) {
      break;
    }
    Request req = parser.release();
    beast::error_code peer_ec;
    const asio::ip::address peer = stream.socket().remote_endpoint(peer_ec).address();
    EngineServer* engine = endpoints.route(target_path(req.target()));
    if (engine != nullptr && beast::websocket::is_upgrade(req)) {
      stream.expires_never();
      co_await engine->handle_websocket(std::move(stream), std::move(req), peer, nullptr);
      co_return;
    }
    Response res;  // (not a conditional around co_await: gcc 12 miscompiles its temporaries)
    if (engine != nullptr) {
      res = co_await engine->handle_polling(std::move(req), stream.get_executor(), peer);
    } else if (target_path(req.target()) == "/counts") {
      res = make_response(req, http::status::ok,
                          json{{"connections", counts.connections},
                               {"disconnects", counts.disconnects},
                               {"acks", counts.acks},
                               {"events", {{"echo", counts.acks}}}}
                              .dump());
      res.set(http::field::content_type, "application/json");
    } else {
      res = make_response(req, http::status::not_found, "not found");
    }
    stream.expires_after(std::chrono::seconds(30));
    auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
    if (wec || !res.keep_alive()) {
      break;
    }
  }
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor, const Endpoints& endpoints,
                                  std::size_t max_payload) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kTuple);
    if (ec) {
      if (!acceptor.is_open()) {
        co_return;
      }
      continue;
    }
    beast::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);  // as the orchestrator: no Nagle delay on acks
    asio::co_spawn(acceptor.get_executor(), connection(endpoints, max_payload, beast::tcp_stream(std::move(socket))),
                   asio::detached);
  }
}

}  // namespace

int main() {
  std::signal(SIGPIPE, SIG_IGN);
  const auto port = env_integer("PORT", 3000, 0, 65535);
  const auto ping_interval = env_integer("PING_INTERVAL_MS", 300, 1, 3600000);
  const auto ping_timeout = env_integer("PING_TIMEOUT_MS", 200, 1, 3600000);
  const auto max_payload = env_integer("MAX_PAYLOAD_BYTES", 1000000, 1024, 100000000);
  const auto connect_timeout = env_integer("CONNECT_TIMEOUT_MS", 1000, 1, 3600000);
  const auto upgrade_timeout = env_integer("UPGRADE_TIMEOUT_MS", 10000, 1, 3600000);
  const ServerSettings defaults;
  const auto max_connections = env_integer("MAX_CONNECTIONS", static_cast<long long>(defaults.max_connections), 1, 1000000);
  const auto max_per_address = env_integer("MAX_CONNECTIONS_PER_ADDRESS",
                                           static_cast<long long>(defaults.max_connections_per_address), 0, 1000000);
  if (!port || !ping_interval || !ping_timeout || !max_payload || !connect_timeout || !upgrade_timeout ||
      !max_connections || !max_per_address) {
    return 2;
  }
  const char* bind = std::getenv("BIND_ADDRESS");
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(bind != nullptr ? bind : "127.0.0.1", ec);
  if (ec) {
    std::fprintf(stderr, "BIND_ADDRESS=%s: expected an IP address\n", bind);
    return 2;
  }

  observe::LogSink logs(1, LogLevel::warn);
  Logger& log = logs.logger("conformance");
  observe::MetricsRegistry metrics;
  asio::io_context ioc;

  ServerSettings settings;
  settings.ping_interval = std::chrono::milliseconds(*ping_interval);
  settings.ping_timeout = std::chrono::milliseconds(*ping_timeout);
  settings.max_payload_bytes = static_cast<std::size_t>(*max_payload);
  settings.connect_timeout = std::chrono::milliseconds(*connect_timeout);
  settings.upgrade_timeout = std::chrono::milliseconds(*upgrade_timeout);
  settings.max_connections = static_cast<std::size_t>(*max_connections);
  settings.max_connections_per_address = static_cast<std::size_t>(*max_per_address);

  SocketIoSettings socketio;
  socketio.connect_timeout = settings.connect_timeout;
  socketio.limits.max_binary_bytes = settings.max_payload_bytes;
  auto test_app = std::make_shared<TestNamespace>();
  Endpoints endpoints{
      std::make_shared<EngineServer>(settings, ioc.get_executor(),
                                     [](const std::shared_ptr<EngineSession>& s) { return std::make_shared<Echo>(s); },
                                     metrics, log),
      std::make_shared<EngineServer>(settings, ioc.get_executor(),
                                     socketio_handlers({{"/", test_app}, {"/custom", test_app}}, socketio, log),
                                     metrics, log)};

  asio::ip::tcp::acceptor acceptor(ioc);
  const asio::ip::tcp::endpoint endpoint(address, static_cast<std::uint16_t>(*port));
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint, ec);
  if (ec) {
    std::fprintf(stderr, "cannot listen on %s:%lld: %s\n", address.to_string().c_str(), *port, ec.message().c_str());
    return 1;
  }
  acceptor.listen();
  asio::co_spawn(ioc, accept_loop(acceptor, endpoints, settings.max_payload_bytes), asio::detached);
  // One line on stdout that tests wait for (the orchestrator's form).
  std::printf("{\"msg\":\"server.listening\",\"port\":%u}\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);

  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    acceptor.close(ec);
    endpoints.engineio->close_all("server shutting down");
    endpoints.socketio->close_all("server shutting down");
    ioc.stop();
  });
  ioc.run();
  // What the goodbyes above could not finish (the io_context stopped under them) still holds a
  // WebSocket and its session, each the other's: closed here, as the orchestrator's Server does, so
  // that nothing is left to the sanitizer's leak check at exit.
  endpoints.engineio->abandon_websockets();
  endpoints.socketio->abandon_websockets();
  return 0;
}
