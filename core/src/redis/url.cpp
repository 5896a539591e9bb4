#include "phasekit/redis/url.hpp"

#include <charconv>
#include <string>

namespace phasekit::redis {
namespace {

Status bad(std::string what) { return {Code::bad_request, "REDIS_URL: " + std::move(what)}; }

bool parse_number(std::string_view digits, long long lo, long long hi, long long& out) {
  if (digits.empty() || digits.size() > 12) {
    return false;
  }
  long long n = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size() || n < lo || n > hi) {
    return false;
  }
  out = n;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) {
      return false;
    }
    const int hi = hex_value(in[i + 1]);
    const int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

/// Splits "[[user]:password@]rest"; the last '@' ends the userinfo (a password may contain '@').
Status take_userinfo(std::string_view& rest, Endpoint& out) {
  const auto at = rest.rfind('@');
  if (at == std::string_view::npos) {
    return {};
  }
  const std::string_view info = rest.substr(0, at);
  rest.remove_prefix(at + 1);
  std::string_view user;
  std::string_view password = info;
  if (const auto colon = info.find(':'); colon != std::string_view::npos) {
    user = info.substr(0, colon);
    password = info.substr(colon + 1);
  }
  if (!percent_decode(user, out.user)) {
    return bad("bad percent-encoding in the user name");
  }
  std::string pw;
  if (!percent_decode(password, pw)) {
    return bad("bad percent-encoding in the password");
  }
  if (pw.empty() && !out.user.empty()) {
    return bad("a user name needs a password (user:password@host)");
  }
  out.password = Secret(std::move(pw));
  return {};
}

Status parse_db(std::string_view text, Endpoint& out) {
  long long db = 0;
  if (!parse_number(text, 0, kMaxDb, db)) {
    return bad("database '" + std::string(text) + "' is not a number in 0.." + std::to_string(kMaxDb));
  }
  out.db = static_cast<int>(db);
  return {};
}

/// rediss:// parameters: the files of the TLS set-up, each an absolute path (percent-encoded or not).
Status parse_tls_query(std::string_view query, Endpoint& out) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    std::string* target = key == "ssl_ca_certs"   ? &out.tls_ca_file
                          : key == "ssl_certfile" ? &out.tls_cert_file
                          : key == "ssl_keyfile"  ? &out.tls_key_file
                                                  : nullptr;
    if (target == nullptr) {
      const bool printable = key.size() <= 32 && key.find_first_of(":@/%") == std::string_view::npos;
      return bad("unknown query parameter" + (printable ? " '" + std::string(key) + "'" : std::string()) +
                 " in a rediss:// URL (ssl_ca_certs, ssl_certfile, ssl_keyfile)");
    }
    if (eq == std::string_view::npos || !percent_decode(item.substr(eq + 1), *target) || target->empty() ||
        target->front() != '/' || target->find('\0') != std::string::npos) {
      return bad(std::string(key) + " must be an absolute path");
    }
  }
  if (out.tls_cert_file.empty() != out.tls_key_file.empty()) {
    return bad("ssl_certfile and ssl_keyfile go together (a client certificate and its key)");
  }
  return {};
}

Status parse_tcp(std::string_view rest, Endpoint& out) {
  if (Status s = take_userinfo(rest, out); !s) {
    return s;
  }
  if (rest.find('#') != std::string_view::npos) {
    return bad("fragments are not supported in redis:// URLs");
  }
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    if (!out.tls) {
      return bad("query strings are not supported in redis:// URLs (rediss:// takes ssl_ca_certs, ssl_certfile, "
                 "ssl_keyfile)");
    }
    if (Status s = parse_tls_query(rest.substr(q + 1), out); !s) {
      return s;
    }
    rest = rest.substr(0, q);
  }
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      if (Status s = parse_db(db, out); !s) {
        return s;
      }
    }
  }
  std::string_view host = rest;
  std::string_view port;
  bool has_port = false;
  if (rest.starts_with('[')) {  // [::1]:6379
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return bad("IPv6 host is missing its closing ']'");
    }
    host = rest.substr(1, close - 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return bad("unexpected text after the IPv6 host");
      }
      port = after.substr(1);
      has_port = true;
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    has_port = true;
    if (host.find(':') != std::string_view::npos) {
      return bad("an IPv6 host must be written in brackets: redis://[::1]:6379");
    }
  }
  if (host.empty()) {
    return bad("missing host (redis://host[:port][/db])");
  }
  for (const char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == '_' || c == ':' || c == '%';
    if (!ok) {
      return bad("host '" + std::string(host) + "' contains a character not allowed in a host name");
    }
  }
  if (has_port) {
    long long p = 0;
    if (!parse_number(port, 1, 65535, p)) {
      return bad("port '" + std::string(port) + "' is not a number in 1..65535");
    }
    out.port = static_cast<std::uint16_t>(p);
  }
  out.host = std::string(host);
  return {};
}

Status parse_unix(std::string_view rest, Endpoint& out) {
  // unix://[[user]:password@]/path — userinfo, if any, ends at the '@' right before the absolute path.
  if (const auto at = rest.find("@/"); at != std::string_view::npos && !rest.starts_with('/')) {
    std::string_view info = rest.substr(0, at + 1);
    if (Status s = take_userinfo(info, out); !s) {
      return s;
    }
    rest.remove_prefix(at + 1);
  }
  std::string_view path = rest;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    path = rest.substr(0, q);
    std::string_view query = rest.substr(q + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const std::string_view item = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (item.starts_with("db=")) {
        if (Status s = parse_db(item.substr(3), out); !s) {
          return s;
        }
      } else {
        const std::string_view key = item.substr(0, item.find('='));
        return bad("unknown query parameter '" + std::string(key) + "' in a unix:// URL (only db=N)");
      }
    }
  }
  if (path.empty() || path.front() != '/') {
    return bad("a unix socket needs an absolute path (unix:///run/redis.sock)");
  }
  if (path.find('\0') != std::string_view::npos) {
    return bad("the unix socket path contains a NUL byte");
  }
  if (path.size() > 107) {
    return bad("the unix socket path is longer than 107 bytes");
  }
  out.unix_path = std::string(path);
  return {};
}

}  // namespace

std::string Endpoint::display() const {
  if (is_unix()) {
    return "unix:" + unix_path;
  }
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

Status parse_url(std::string_view url, Endpoint& out) {
  out = Endpoint{};
  if (url.empty()) {
    return bad("empty (expected redis://host[:port][/db] or unix:///path)");
  }
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return bad("missing scheme (expected redis://host[:port][/db] or unix:///path)");
  }
  const std::string_view scheme = url.substr(0, scheme_end);
  const std::string_view rest = url.substr(scheme_end + 3);
  Status s;
  if (scheme == "redis") {
    s = parse_tcp(rest, out);
  } else if (scheme == "unix") {
    s = parse_unix(rest, out);
  } else if (scheme == "rediss") {
    out.tls = true;
    s = parse_tcp(rest, out);
  } else {
    // The scheme is shown only when it is short and printable: it cannot hold the password.
    const bool printable = scheme.size() <= 16 && scheme.find_first_of(":@/") == std::string_view::npos;
    s = bad("unknown scheme" + (printable ? " '" + std::string(scheme) + "'" : std::string()) +
            " (expected redis://, rediss:// or unix://)");
  }
  if (!s) {
    out = Endpoint{};
  }
  return s;
}

}  // namespace phasekit::redis
