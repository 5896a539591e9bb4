#pragma once
// A client connection's byte stream: a Beast tcp_stream, with Beast's ssl_stream over it when the
// target is https:// or wss://. One type for both, chosen per run, so that the connection's HTTP
// and WebSocket code is written once (websocket::stream<FlexStream>, http::async_read on it).
// Timeouts stay on the tcp_stream (get_lowest_layer), which the TLS layer reads and writes through.
// Included by socketio_connection.cpp alone: Beast is compiled in that one translation unit.
#include <boost/asio/async_result.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <optional>
#include <utility>

namespace phasekit::load {

class FlexStream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using Tls = boost::beast::ssl_stream<boost::beast::tcp_stream>;

  /// Plain TCP when tls is nullptr, else TLS from that context (which outlives the stream).
  FlexStream(const executor_type& executor, boost::asio::ssl::context* tls) : executor_(executor), context_(tls) {
    renew();
  }
  FlexStream(const FlexStream&) = delete;
  FlexStream& operator=(const FlexStream&) = delete;

  /// A fresh socket (and TLS state) for a new connection; nothing may be pending on the old one.
  void renew() {
    if (context_ != nullptr) {
      tls_.emplace(executor_, *context_);
    } else {
      plain_.emplace(executor_);
    }
  }

  [[nodiscard]] bool is_tls() const noexcept { return tls_.has_value(); }
  /// The TLS layer; only when is_tls().
  Tls& tls() noexcept { return *tls_; }
  boost::beast::tcp_stream& next_layer() noexcept { return tls_ ? tls_->next_layer() : *plain_; }
  boost::beast::tcp_stream::socket_type& socket() noexcept { return next_layer().socket(); }
  executor_type get_executor() noexcept { return executor_; }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBufferSequence& b) {
          if (tls_) {
            tls_->async_read_some(b, std::move(handler));
          } else {
            plain_->async_read_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          if (tls_) {
            tls_->async_write_some(b, std::move(handler));
          } else {
            plain_->async_write_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  // The WebSocket closing handshake's last step (found by argument-dependent lookup): TLS sends its
  // close_notify before the socket closes.
  template <class Handler>
  friend void async_teardown(boost::beast::role_type role, FlexStream& stream, Handler&& handler) {
    if (stream.tls_) {
      boost::beast::async_teardown(role, *stream.tls_, std::forward<Handler>(handler));
    } else {
      boost::beast::async_teardown(role, *stream.plain_, std::forward<Handler>(handler));
    }
  }
  friend void teardown(boost::beast::role_type role, FlexStream& stream, boost::system::error_code& ec) {
    if (stream.tls_) {
      boost::beast::teardown(role, *stream.tls_, ec);
    } else {
      boost::beast::websocket::teardown(role, stream.plain_->socket(), ec);
    }
  }

 private:
  executor_type executor_;
  boost::asio::ssl::context* context_;
  std::optional<boost::beast::tcp_stream> plain_;
  std::optional<Tls> tls_;
};

}  // namespace phasekit::load
