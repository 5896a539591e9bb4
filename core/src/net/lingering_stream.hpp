#pragma once
// Closing a connection the peer is still writing to: lingering_close for HTTP (a 413), and the TCP
// stream under the server's WebSockets, Beast's tcp_stream with a teardown that drains what the peer
// still sends before it closes.
//
// Why: a server fails a WebSocket mid-message (1009, a message over MAX_PAYLOAD_BYTES) by sending its
// close frame and tearing the connection down. Beast 1.81's teardown (websocket/impl/teardown.hpp)
// stops after the first read that returns data (it tests a stale bytes_transferred), so it closes
// with the rest of the message unread; the kernel then answers with a reset, which can destroy the
// close frame before the client reads it (the client reports 1006 instead of 1009). RFC 6455 §7.1.1
// and RFC 9112 §9.6 both ask the server to half-close and read on.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <chrono>
#include <cstddef>
#include <memory>

namespace phasekit::net {

/// Ends a connection whose request was answered without being read whole (413): half-closes, then
/// reads and discards what the client still sends, for at most `time` and `bytes`, before closing.
/// Closing with unread bytes makes the kernel send a reset, which can reach the client before it has
/// read the answer (RFC 9112 §9.6, "tear-down").
boost::asio::awaitable<void> lingering_close(boost::beast::tcp_stream& stream,
                                             std::chrono::milliseconds time = std::chrono::seconds(2),
                                             std::size_t bytes = std::size_t{4} << 20);


class LingeringTcpStream : public boost::beast::tcp_stream {
 public:
  using boost::beast::tcp_stream::tcp_stream;

  /// How long, and how many bytes, a teardown reads from a peer that does not close.
  static constexpr std::chrono::seconds kDrainTime{2};
  static constexpr std::size_t kMaxDrainBytes = std::size_t{4} << 20;

  // Found by argument-dependent lookup from websocket::stream, ahead of Beast's basic_stream overload.
  template <class Handler>
  friend auto async_teardown(boost::beast::role_type role, LingeringTcpStream& stream, Handler&& handler) {
    return boost::asio::async_compose<Handler, void(boost::beast::error_code)>(Drain{stream, role}, handler, stream);
  }
  friend void teardown(boost::beast::role_type role, LingeringTcpStream& stream, boost::beast::error_code& ec) {
    boost::beast::websocket::teardown(role, stream.socket(), ec);  // not used by the server (async only)
  }

 private:
  struct Drain {
    LingeringTcpStream& stream;
    boost::beast::role_type role;
    std::unique_ptr<char[]> buffer = std::make_unique<char[]>(kBufferBytes);  // moves with the op
    std::size_t drained = 0;
    bool started = false;
    static constexpr std::size_t kBufferBytes = 16 * 1024;

    template <class Self>
    void operator()(Self& self, boost::beast::error_code ec = {}, std::size_t n = 0) {
      boost::beast::error_code ignored;
      if (!started) {
        started = true;
        if (role == boost::beast::role_type::server) {
          stream.socket().shutdown(boost::asio::socket_base::shutdown_send, ignored);
        }
        stream.expires_after(kDrainTime);
      } else {
        drained += n;
        if (ec || drained >= kMaxDrainBytes) {
          // The peer's FIN (it has read our close frame), the deadline, a reset or the byte limit:
          // the connection is over either way, and the WebSocket was closed cleanly on our side.
          if (role == boost::beast::role_type::client) {
            stream.socket().shutdown(boost::asio::socket_base::shutdown_send, ignored);
          }
          stream.socket().close(ignored);
          self.complete({});
          return;
        }
      }
      stream.async_read_some(boost::asio::buffer(buffer.get(), kBufferBytes), std::move(self));
    }
  };
};

}  // namespace phasekit::net
