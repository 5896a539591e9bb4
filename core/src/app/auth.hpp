#pragma once
// Connection auth: the CONNECT packet's auth payload carries {token}, a JWT signed with HS256 and
// AUTH_SECRET, whose `sub` is the user id and `exp` its expiry (seconds since the epoch). Any JWT
// library can mint one; `phasekit token --user ID` does too.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "phasekit/status.hpp"

namespace phasekit::app {

struct Identity {
  std::string user_id;
  std::int64_t expires_unix = 0;
};

/// 1..128 characters of [A-Za-z0-9._@:-]: safe in log lines, metrics-free, file names.
bool valid_user_id(std::string_view id) noexcept;

/// Checks signature (constant time), algorithm (HS256 only), expiry and subject.
/// UNAUTHORIZED with a message for the client ("token expired", "bad signature", …) otherwise.
Status verify_token(std::string_view token, std::string_view secret, std::chrono::system_clock::time_point now,
                    Identity& out);

/// A token for user_id valid until expires_unix.
std::string sign_token(std::string_view user_id, std::int64_t expires_unix, std::string_view secret);

std::string base64url_encode(std::string_view bytes);
/// false on characters outside the alphabet or an impossible length.
bool base64url_decode(std::string_view text, std::string& out);

}  // namespace phasekit::app
