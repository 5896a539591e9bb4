#include "phasekit/net/lingering_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>

namespace phasekit::net {

boost::asio::awaitable<void> lingering_close(boost::beast::tcp_stream& stream, std::chrono::milliseconds time,
                                             std::size_t bytes) {
  boost::beast::error_code ec;
  stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
  if (ec) {
    co_return;
  }
  stream.expires_after(time);  // one deadline for the whole drain
  std::array<char, 16 * 1024> sink;
  std::size_t drained = 0;
  while (drained < bytes) {
    auto [rec, n] = co_await stream.async_read_some(boost::asio::buffer(sink),
                                                    boost::asio::as_tuple(boost::asio::use_awaitable));
    if (rec) {
      break;  // the client closed (its FIN: it has read the answer), the deadline passed, or an error
    }
    drained += n;
  }
  stream.socket().close(ec);
}

}  // namespace phasekit::net
