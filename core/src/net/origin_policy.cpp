#include "phasekit/net/origin_policy.hpp"

#include <algorithm>
#include <charconv>
#include "phasekit/text.hpp"

namespace phasekit::net {
namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::uint16_t default_port(std::string_view scheme) {
  if (scheme == "http" || scheme == "ws") return 80;
  if (scheme == "https" || scheme == "wss") return 443;
  return 0;
}

/// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool valid_scheme(std::string_view s) {
  if (s.empty() || !is_alpha(s.front())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.'; });
}

/// A DNS name or IPv4 address (letters, digits, '-', '.'), or an IPv6 literal in brackets.
bool valid_host(std::string_view h) {
  if (h.empty()) return false;
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return false;
    const std::string_view inner = h.substr(1, h.size() - 2);
    return std::all_of(inner.begin(), inner.end(), [](char c) {
      return is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'f') || c == ':' || c == '.';
    });
  }
  return std::all_of(h.begin(), h.end(), [](char c) { return is_alpha(c) || is_digit(c) || c == '-' || c == '.'; });
}

/// "host[:port]" (the host may be a bracketed IPv6 literal) → host and port text ("" when none).
bool split_authority(std::string_view authority, std::string_view& host, std::string_view& port) {
  const std::size_t close = authority.front() == '[' ? authority.find(']') : 0;
  if (close == std::string_view::npos) return false;
  const std::size_t colon = authority.find(':', close);
  host = authority.substr(0, colon);
  port = colon == std::string_view::npos ? std::string_view() : authority.substr(colon + 1);
  return colon == std::string_view::npos || !port.empty();
}

bool parse_port(std::string_view text, std::uint16_t& port) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535 || !is_digit(text.front())) {
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}


/// The Host header names the origin's host and port (its scheme's default port when it has none).
bool same_authority(const Origin& origin, std::string_view host_header) {
  std::string_view host;
  std::string_view port_text;
  if (host_header.empty() || !split_authority(host_header, host, port_text) || !valid_host(host)) {
    return false;
  }
  std::uint16_t port = 0;
  if (!port_text.empty() && !parse_port(port_text, port)) {
    return false;
  }
  if (port == default_port(origin.scheme)) {
    port = 0;
  }
  return lowered(host) == origin.host && port == origin.port;
}

}  // namespace

std::optional<Origin> parse_origin(std::string_view text) {
  const std::size_t sep = text.find("://");
  if (sep == std::string_view::npos || !valid_scheme(text.substr(0, sep))) {
    return std::nullopt;
  }
  const std::string_view authority = text.substr(sep + 3);
  std::string_view host;
  std::string_view port_text;
  if (authority.empty() || !split_authority(authority, host, port_text) || !valid_host(host)) {
    return std::nullopt;  // a path, query, user info or stray character lands here as an invalid host
  }
  Origin origin{lowered(text.substr(0, sep)), lowered(host), 0};
  if (!port_text.empty() && !parse_port(port_text, origin.port)) {
    return std::nullopt;
  }
  if (origin.port == default_port(origin.scheme)) {
    origin.port = 0;
  }
  return origin;
}

std::optional<OriginPolicy> OriginPolicy::parse(std::string_view list, std::string* error) {
  OriginPolicy policy;
  if (text::trim_ows(list).empty()) {
    return policy;
  }
  if (text::trim_ows(list) == "*") {
    policy.any_ = true;
    return policy;
  }
  while (true) {
    const std::size_t comma = list.find(',');
    const std::string_view entry = text::trim_ows(list.substr(0, comma));
    auto origin = parse_origin(entry);
    if (!origin) {
      if (error != nullptr) {
        *error = entry == "*" ? "\"*\" alone, not among other origins"
                              : "'" + std::string(entry) + "' is not an origin: expected scheme://host[:port]";
      }
      return std::nullopt;
    }
    policy.origins_.push_back(std::move(*origin));
    if (comma == std::string_view::npos) {
      return policy;
    }
    list.remove_prefix(comma + 1);
  }
}

OriginVerdict OriginPolicy::judge(std::optional<std::string_view> origin_header, std::string_view host) const {
  if (!origin_header) {
    return OriginVerdict::no_origin;
  }
  const auto origin = parse_origin(*origin_header);  // "null" (sandboxed frames, file://) is none
  if (origin && same_authority(*origin, host)) {
    return OriginVerdict::same_origin;
  }
  if (any_) {
    return OriginVerdict::any;
  }
  if (origin && std::find(origins_.begin(), origins_.end(), *origin) != origins_.end()) {
    return OriginVerdict::listed;
  }
  return OriginVerdict::refused;
}

}  // namespace phasekit::net
