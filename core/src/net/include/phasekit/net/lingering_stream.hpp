#pragma once
// Closing a connection the peer is still writing to: lingering_close for HTTP (a 413). (The server's
// WebSockets drain the same way on their own: net/ws_connection.hpp.)
#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <cstddef>

namespace phasekit::net {

/// Ends a connection whose request was answered without being read whole (413): half-closes, then
/// reads and discards what the client still sends, for at most `time` and `bytes`, before closing.
/// Closing with unread bytes makes the kernel send a reset, which can reach the client before it has
/// read the answer (RFC 9112 §9.6, "tear-down").
boost::asio::awaitable<void> lingering_close(boost::beast::tcp_stream& stream,
                                             std::chrono::milliseconds time = std::chrono::seconds(2),
                                             std::size_t bytes = std::size_t{4} << 20);

}  // namespace phasekit::net
