#include "phasekit/net/http_util.hpp"

#include <boost/beast/version.hpp>
#include <nlohmann/json.hpp>

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

Response json_error(const Request& req, http::status status, int code, std::string_view message) {
  return make_response(req, status, nlohmann::json{{"code", code}, {"message", message}}.dump(), "application/json");
}

OriginVerdict judge_origin(const OriginPolicy& policy, const Request& req) {
  const auto origin = req.find(http::field::origin);
  const auto host = req.find(http::field::host);
  const auto view = [](boost::beast::string_view v) { return std::string_view(v.data(), v.size()); };
  return policy.judge(origin == req.end() ? std::nullopt : std::optional<std::string_view>(view(origin->value())),
                      host == req.end() ? std::string_view() : view(host->value()));
}

void add_cors(const Request& req, OriginVerdict verdict, Response& res) {
  switch (verdict) {
    case OriginVerdict::listed:
      res.set(http::field::access_control_allow_origin, req[http::field::origin]);
      res.set(http::field::access_control_allow_credentials, "true");
      res.set(http::field::vary, "Origin");
      return;
    case OriginVerdict::any:
      res.set(http::field::access_control_allow_origin, "*");
      return;
    case OriginVerdict::no_origin:
    case OriginVerdict::same_origin:
    case OriginVerdict::refused:
      return;
  }
}

Response preflight(const Request& req, OriginVerdict verdict) {
  if (verdict == OriginVerdict::refused) {
    return origin_refused(req);
  }
  Response res = make_response(req, http::status::no_content, "");
  add_cors(req, verdict, res);
  // What socket.io-client's polling transport sends: GET and POST, with a Content-Type on POST.
  res.set(http::field::access_control_allow_methods, "GET, POST");
  res.set(http::field::access_control_allow_headers, "Content-Type");
  res.set(http::field::access_control_max_age, "600");
  return res;
}

Response origin_refused(const Request& req) {
  return json_error(req, http::status::forbidden, 4, "Origin not allowed");
}

}  // namespace phasekit::net
