// libFuzzer target: the bytes of an HTTP/1.1 connection as the server reads them: Beast's request
// parser with the server's limits (limit_request), requests one after another on the connection
// (pipelining), each fed in uneven pieces as TCP delivers them; then what the routes read of each
// request: path, query, upgrade, the response made for it. Two payload limits: the server's default,
// and a small one so the 413 path is reached. Never crashes; no body over the limit is accepted; a
// query that parses re-encodes to one that parses the same.
#include <boost/beast/core/error.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "phasekit/net/http_util.hpp"

namespace {

namespace http = boost::beast::http;
using phasekit::net::Request;
using Query = std::map<std::string, std::string, std::less<>>;

std::string percent_encode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : in) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= '0' && u <= '9') || (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || c == '-' || c == '_' ||
        c == '.') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

void check_request(const Request& req) {
  const std::string_view target = req.target();
  (void)phasekit::net::target_path(target);
  (void)boost::beast::websocket::is_upgrade(req);
  (void)phasekit::net::make_response(req, http::status::ok, "ok");
  Query query;
  if (!phasekit::net::parse_query(target, query)) {
    return;
  }
  std::string again = "/socket.io/?";
  for (const auto& [key, value] : query) {
    again += percent_encode(key) + "=" + percent_encode(value) + "&";
  }
  Query back;
  if (!phasekit::net::parse_query(again, back) || back != query) {
    __builtin_trap();  // a query we parsed does not survive being encoded and parsed again
  }
}

/// Reads requests from `input` until it ends or the connection would be closed.
void read_connection(std::string_view input, std::size_t max_payload_bytes) {
  std::string buffered;  // received, not yet consumed by a parser (flat_buffer's role)
  std::size_t at = 0;
  std::size_t step = 7;
  for (;;) {
    phasekit::net::RequestParser parser;
    phasekit::net::limit_request(parser, max_payload_bytes);
    parser.eager(true);  // http::async_read reads the whole message
    boost::beast::error_code ec;
    while (!parser.is_done()) {
      if (!buffered.empty()) {
        const std::size_t used = parser.put(boost::asio::buffer(buffered), ec);
        buffered.erase(0, used);
        if (ec == http::error::need_more) {
          ec = {};
        } else if (ec) {
          break;
        } else if (used > 0) {
          continue;
        }
      }
      if (at >= input.size()) {
        if (!parser.got_some()) {
          return;  // the client closed between requests (http::read: end_of_stream)
        }
        parser.put_eof(ec);
        break;
      }
      const std::size_t n = std::min(step, input.size() - at);
      buffered.append(input.substr(at, n));
      at += n;
      step = step * 5 % 251 + 1;
    }
    if (ec || !parser.is_done()) {
      return;  // the server closes (413 for body_limit, nothing for the rest)
    }
    Request req = parser.release();
    if (req.body().size() > max_payload_bytes + 1024) {
      __builtin_trap();  // a body over the limit got through
    }
    check_request(req);
    if (!req.keep_alive()) {
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  read_connection(input, 1'000'000);  // ServerSettings::max_payload_bytes' default
  read_connection(input, 64);
  Query query;
  (void)phasekit::net::parse_query(input, query);
  return 0;
}
