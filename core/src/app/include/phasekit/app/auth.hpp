#pragma once
// Connection auth: the CONNECT packet's auth payload carries {token}, a JWT signed with HS256 and
// AUTH_SECRET, whose `sub` is the user id and `exp` its expiry (seconds since the epoch). Optional
// claims are checked when present (`nbf`) or when the configuration asks for them (`iss`, `aud`, a
// maximum lifetime). Any JWT library can mint one.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "phasekit/bytes.hpp"
#include "phasekit/status.hpp"

namespace phasekit::app {

struct Identity {
  std::string user_id;
  std::int64_t expires_unix = 0;
};

/// 1..128 characters of [A-Za-z0-9._@:-]: safe in log lines, metrics-free, file names.
bool valid_user_id(std::string_view id) noexcept;

/// What a token must satisfy beyond its HS256 signature (AUTH_* settings).
struct TokenRules {
  std::string secret;
  std::string issuer;                     // AUTH_ISSUER: `iss` must equal it; empty: not checked
  std::string audience;                   // AUTH_AUDIENCE: `aud` (string or array) must hold it; empty: not checked
  std::chrono::seconds max_lifetime{0};   // AUTH_MAX_TOKEN_LIFETIME_S: exp - now, and exp - iat, at most this; 0: no cap
  std::chrono::seconds leeway{0};         // AUTH_CLOCK_LEEWAY_S: clock skew allowed on exp, nbf and iat
};

/// Checks signature (constant time), algorithm (HS256 only), expiry, `nbf`, `iat`, subject and the
/// rules' issuer, audience and lifetime. UNAUTHORIZED with a message for the client ("token expired",
/// "bad token signature", …) otherwise. Never throws on any input (a header {"alg":1} is refused too).
Status verify_token(std::string_view token, const TokenRules& rules, std::chrono::system_clock::time_point now,
                    Identity& out);

/// A token for user_id valid until expires_unix.
std::string sign_token(std::string_view user_id, std::int64_t expires_unix, std::string_view secret);
/// header.payload.signature of the given JSON texts, as they are (for tokens with other claims).
std::string sign_jwt(std::string_view header_json, std::string_view payload_json, std::string_view secret);

/// Tokens' base64url (phasekit/bytes.hpp: one base64 for the tree).
using bytes::base64url_decode;
using bytes::base64url_encode;

}  // namespace phasekit::app
