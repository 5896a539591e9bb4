#pragma once
// A virtual user's cookies, kept as a browser keeps them (RFC 6265 §5, with 6265bis's rule that a
// Secure cookie comes only over TLS): what Set-Cookie stores, what a later request to the same
// server sends back. It is what lets long-polling through a cookie-sticky balancer reach the
// process that holds the session (HAProxy `cookie … insert`, ingress-nginx affinity).
// A pure codec: no I/O, limits checked before any work, malformed input ignored (never thrown).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace phasekit::load {

using WallClock = std::chrono::system_clock;

struct Cookie {
  std::string name;
  std::string value;
  std::string domain;      // lower case, without a leading dot
  std::string path;        // starts with '/'
  bool host_only = true;   // no Domain attribute: only the host that set it
  bool secure = false;     // sent only over TLS
  std::optional<WallClock::time_point> expires;  // nullopt: for the session (the user's lifetime)
  std::uint64_t created = 0;                     // order of creation, for the order they are sent in
};

/// Where a request goes: the cookies it gets depend on these.
struct CookieUrl {
  std::string_view host;  // as in the URL, without brackets for IPv6; compared without case
  std::string_view path;  // the request's path, without the query
  bool secure = false;    // https:// or wss://
};

class CookieJar {
 public:
  struct Limits {
    std::size_t max_cookies = 50;         // past this, the oldest goes
    std::size_t max_cookie_bytes = 4096;  // name and value together; a larger cookie is ignored
    std::size_t max_header_bytes = 8192;  // a longer Set-Cookie is ignored before it is parsed
  };

  CookieJar() : CookieJar(Limits{}) {}
  explicit CookieJar(Limits limits) : limits_(limits) {}

  /// Stores what one Set-Cookie header says in the answer to a request for url. An expiry in the
  /// past deletes the cookie of that name, domain and path. Returns false when the header is
  /// ignored: malformed, too large, a Domain that does not cover the host, Secure over plain HTTP.
  bool store(std::string_view set_cookie, const CookieUrl& url, WallClock::time_point now = WallClock::now());

  /// The Cookie header for a request to url ("a=1; b=2"), "" when no cookie applies. Longer paths
  /// first, then older cookies first (RFC 6265 §5.4). Drops expired cookies on the way.
  std::string header(const CookieUrl& url, WallClock::time_point now = WallClock::now());

  [[nodiscard]] const std::vector<Cookie>& cookies() const noexcept { return cookies_; }
  [[nodiscard]] std::size_t size() const noexcept { return cookies_.size(); }

 private:
  void drop_expired(WallClock::time_point now);

  Limits limits_;
  std::vector<Cookie> cookies_;  // few per user: a vector beats any map here
  std::uint64_t next_created_ = 0;
};

/// A cookie date (RFC 6265 §5.1.1: "Wed, 21 Oct 2015 07:28:00 GMT" and the older forms browsers
/// accept); nullopt when it is not one.
std::optional<WallClock::time_point> parse_cookie_date(std::string_view text);

}  // namespace phasekit::load
