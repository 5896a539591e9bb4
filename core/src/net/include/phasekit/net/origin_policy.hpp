#pragma once
// Which web origins may drive the server (ALLOWED_ORIGINS): one decision for the polling transport,
// its CORS preflight and the WebSocket upgrade. Pure (no I/O, no Beast), so the setting's check at
// config load uses the same parser as the server.
//
// The rule:
//   - a request without an Origin header is allowed (curl, Node clients, health probes: no browser
//     page is behind it, so there is nothing a web page could abuse);
//   - an Origin whose host and port are the Host the request was sent to is same-origin: allowed;
//   - any other Origin is allowed only when ALLOWED_ORIGINS lists it exactly (scheme://host[:port]),
//     or when ALLOWED_ORIGINS is "*" (then without credentials). Empty ALLOWED_ORIGINS: none.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace phasekit::net {

/// A serialized web origin (RFC 6454): lower-case scheme and host, port 0 when it is the scheme's
/// default one (80 for http, 443 for https) or none was given.
struct Origin {
  std::string scheme;
  std::string host;  // "example.com", "127.0.0.1", "[::1]"
  std::uint16_t port = 0;

  friend bool operator==(const Origin&, const Origin&) = default;
};

/// "https://app.example.com:8443" → Origin. Anything else — a path, a trailing slash, user info, a
/// query, an empty host, a port outside 1..65535, "null" — is no origin (nullopt).
std::optional<Origin> parse_origin(std::string_view text);

enum class OriginVerdict : std::uint8_t {
  no_origin,    // no Origin header: not a browser page's request
  same_origin,  // the page is served from the host the request went to
  listed,       // ALLOWED_ORIGINS names it: CORS with credentials
  any,          // ALLOWED_ORIGINS is "*": CORS without credentials
  refused,      // a cross-origin page that is not allowed
};

class OriginPolicy {
 public:
  /// Nobody cross-origin (ALLOWED_ORIGINS empty).
  OriginPolicy() = default;

  /// ALLOWED_ORIGINS: "" (none), "*" (any, no credentials), or origins separated by commas
  /// ("https://a.example, http://localhost:5173"). nullopt, with `error` saying what is wrong with
  /// which entry, for anything else.
  static std::optional<OriginPolicy> parse(std::string_view list, std::string* error = nullptr);

  /// `origin` is the Origin header (nullopt when absent), `host` the Host header ("" when absent).
  [[nodiscard]] OriginVerdict judge(std::optional<std::string_view> origin, std::string_view host) const;

  [[nodiscard]] bool allows_any() const noexcept { return any_; }
  [[nodiscard]] const std::vector<Origin>& origins() const noexcept { return origins_; }

 private:
  bool any_ = false;
  std::vector<Origin> origins_;
};

}  // namespace phasekit::net
