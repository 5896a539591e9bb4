#pragma once
// Where a Redis server is and how to log in: parsed from REDIS_URL.
#include <cstdint>
#include <string>
#include <string_view>

#include "phasekit/plugin/log.hpp"
#include "phasekit/status.hpp"

namespace phasekit::redis {

struct Endpoint {
  std::string host;            // empty for a unix socket; an IPv6 address without brackets
  std::uint16_t port = 6379;
  std::string unix_path;       // set for unix:// URLs
  int db = 0;
  std::string user;            // ACL user (Redis 6+); empty: AUTH with the password only
  Secret password;             // never logged, never part of an error message
  bool tls = false;            // rediss://: TLS, the server's certificate and name verified
  std::string tls_ca_file;     // ?ssl_ca_certs=/path: the CAs to trust (empty: the system's)
  std::string tls_cert_file;   // ?ssl_certfile=/path and
  std::string tls_key_file;    // ?ssl_keyfile=/path: a client certificate (tls-auth-clients yes)

  [[nodiscard]] bool is_unix() const noexcept { return !unix_path.empty(); }
  /// "127.0.0.1:6379", "[::1]:6380" or "unix:/run/redis.sock": for log lines (no credentials).
  [[nodiscard]] std::string display() const;
};

inline constexpr int kMaxDb = 100000;

/// Accepts
///   redis://[[user]:password@]host[:port][/db]   (also redis://password@host: userinfo without ':' is a password)
///   rediss://[[user]:password@]host[:port][/db][?ssl_ca_certs=/ca.pem[&ssl_certfile=/c.pem&ssl_keyfile=/k.pem]]
///     TLS (the parameter names are redis-py's); the server's certificate and host name are always verified
///   unix://[[user]:password@]/absolute/path[?db=N]
/// user and password may be percent-encoded (%40 for '@'). Host may be a name, an IPv4 address or [IPv6].
/// Anything else is BAD_REQUEST with a message naming the part that is wrong; the password is never echoed.
/// TLS is ours (Asio's ssl::stream): hiredis 0.14 only parses the replies.
[[nodiscard]] Status parse_url(std::string_view url, Endpoint& out);

}  // namespace phasekit::redis
