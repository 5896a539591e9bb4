#include "exporter/metrics_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <chrono>
#include <stdexcept>
#include <thread>

namespace phasekit::load {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;

constexpr auto kIoTimeout = std::chrono::seconds(10);  // per read and per write of a request
constexpr std::size_t kMaxConnections = 16;            // over this, a new connection is closed at once
constexpr std::size_t kHeaderLimit = 8192;
constexpr std::uint64_t kBodyLimit = 4096;  // a scrape is a GET; anything bigger is refused
constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

/// What the server's thread alone touches.
struct State {
  const MetricsServer::Render& render;
  std::size_t connections = 0;
};

http::response<http::string_body> answer(const http::request<http::string_body>& req, const State& state) {
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(req.keep_alive());
  res.set(http::field::server, "phasekit-load");
  const std::string_view target(req.target().data(), req.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
  if (!get) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET, HEAD");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "GET /metrics\n";
  } else if (path == "/metrics") {
    res.result(http::status::ok);
    res.set(http::field::content_type, kContentType);
    res.body() = state.render();
  } else if (path == "/") {
    res.result(http::status::ok);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "phasekit-load: the running load's metrics are at /metrics (Prometheus text format)\n";
  } else {
    res.result(http::status::not_found);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "not found: GET /metrics\n";
  }
  res.prepare_payload();
  if (req.method() == http::verb::head) {
    const auto length = res.body().size();
    res.body().clear();
    res.content_length(length);
  }
  return res;
}

awaitable<void> serve(tcp::socket socket, State& state) {
  ++state.connections;
  struct Leave {
    State& s;
    ~Leave() { --s.connections; }
  } leave{state};
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    stream.expires_after(kIoTimeout);
    const auto [read_error, read] = co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    if (read_error) {
      break;  // closed, timed out, or not HTTP: nothing to answer
    }
    http::response<http::string_body> res = answer(parser.get(), state);
    const bool keep_alive = res.keep_alive();
    stream.expires_after(kIoTimeout);
    const auto [write_error, written] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    if (write_error || !keep_alive) {
      break;
    }
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

awaitable<void> accept_loop(tcp::acceptor& acceptor, State& state) {
  asio::steady_timer backoff(acceptor.get_executor());
  while (acceptor.is_open()) {
    auto [error, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (error == asio::error::operation_aborted || !acceptor.is_open()) {
      break;
    }
    if (error) {
      // Out of descriptors, most likely (the load holds most of them): try again shortly.
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (state.connections >= kMaxConnections) {
      beast::error_code ignored;
      socket.close(ignored);
      continue;
    }
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), state), asio::detached);
  }
}

}  // namespace

struct MetricsServer::Impl {
  explicit Impl(Render r) : render(std::move(r)), state{render} {}

  // Declared first, destroyed last: the coroutines the io_context still holds refer to them.
  Render render;
  State state;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::uint16_t port = 0;  // known once bound; the acceptor itself is the server thread's
  std::thread thread;
};

MetricsServer::MetricsServer(const std::string& address, std::uint16_t port, Render render)
    : impl_(std::make_unique<Impl>(std::move(render))) {
  beast::error_code ec;
  const auto ip = asio::ip::make_address(address, ec);
  if (ec) {
    throw std::runtime_error(fmt::format("--metrics-address {}: not an IP address", address));
  }
  const tcp::endpoint endpoint(ip, port);
  tcp::acceptor& a = impl_->acceptor;
  if (a.open(endpoint.protocol(), ec); !ec) {
    a.set_option(asio::socket_base::reuse_address(true), ec);
    if (a.bind(endpoint, ec); !ec) {
      a.listen(asio::socket_base::max_listen_connections, ec);
    }
  }
  if (ec) {
    throw std::runtime_error(fmt::format("--metrics-port: cannot listen on {}:{}: {}", address, port, ec.message()));
  }
  impl_->port = a.local_endpoint(ec).port();
  asio::co_spawn(impl_->ioc, accept_loop(a, impl_->state), asio::detached);
  impl_->thread = std::thread([impl = impl_.get()] { impl->ioc.run(); });
}

MetricsServer::~MetricsServer() {
  asio::post(impl_->ioc, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    impl->ioc.stop();  // open connections are dropped with the io_context
  });
  impl_->thread.join();
}

std::uint16_t MetricsServer::port() const { return impl_->port; }

}  // namespace phasekit::load
