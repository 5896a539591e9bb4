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

  [[nodiscard]] bool is_unix() const noexcept { return !unix_path.empty(); }
  /// "127.0.0.1:6379", "[::1]:6380" or "unix:/run/redis.sock": for log lines (no credentials).
  [[nodiscard]] std::string display() const;
};

inline constexpr int kMaxDb = 100000;

/// Accepts
///   redis://[[user]:password@]host[:port][/db]   (also redis://password@host: userinfo without ':' is a password)
///   unix://[[user]:password@]/absolute/path[?db=N]
/// user and password may be percent-encoded (%40 for '@'). Host may be a name, an IPv4 address or [IPv6].
/// Anything else is BAD_REQUEST with a message naming the part that is wrong; the password is never echoed.
/// rediss:// is refused: hiredis 0.14 has no TLS.
[[nodiscard]] Status parse_url(std::string_view url, Endpoint& out);

}  // namespace phasekit::redis
