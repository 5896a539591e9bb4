#include "net/http_util.hpp"

#include <boost/beast/version.hpp>

namespace phasekit::net {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool decode_component(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%') {
      const int hi = i + 1 < in.size() ? hex_value(in[i + 1]) : -1;
      const int lo = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return false;
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += in[i];
    }
  }
  return true;
}

}  // namespace

void limit_request(RequestParser& parser, std::size_t max_payload_bytes) {
  parser.header_limit(kMaxRequestHeaderBytes);
  parser.body_limit(max_payload_bytes + 1024);
}

std::string_view target_path(std::string_view target) { return target.substr(0, target.find('?')); }

bool parse_query(std::string_view target, std::map<std::string, std::string, std::less<>>& out) {
  out.clear();
  const auto q = target.find('?');
  if (q == std::string_view::npos) {
    return true;
  }
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    const auto eq = pair.find('=');
    std::string key;
    std::string value;
    if (!decode_component(pair.substr(0, eq), key) ||
        !decode_component(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), value)) {
      return false;
    }
    out[std::move(key)] = std::move(value);
  }
  return true;
}

Response make_response(const Request& req, http::status status, std::string body, std::string_view content_type) {
  Response res{status, req.version()};
  res.set(http::field::server, "phasekit");
  res.set(http::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

}  // namespace phasekit::net
