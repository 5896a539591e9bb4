// libFuzzer target: connection tokens (JWT HS256). The input is a token as a client sends it, checked
// with a fixed secret; and, when it holds a 0xFF byte, a header and claims ("header\xffclaims") that
// the fuzzer signs with that secret, so the claims checks behind the signature are reached too.
// Verifying never crashes or throws; a token that verifies names a valid user and has not expired;
// base64url decodes only canonical text and round-trips.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "phasekit/app/auth.hpp"

namespace {

using namespace phasekit::app;
constexpr std::string_view kSecret = "fuzz-secret-0123456789abcdef";
constexpr std::int64_t kNow = 1'800'000'000;

std::string signed_token(std::string_view header, std::string_view claims) {
  const std::string signing_input = base64url_encode(header) + "." + base64url_encode(claims);
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac.data(), &len);
  return signing_input + "." + base64url_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), len));
}

// Checked twice: with the secret only, and with every rule an operator can add (issuer, audience,
// a lifetime cap and clock leeway), so the claims checks behind each rule are reached.
const TokenRules& plain_rules() {
  static const TokenRules rules{std::string(kSecret), {}, {}, std::chrono::seconds(0), std::chrono::seconds(0)};
  return rules;
}
const TokenRules& strict_rules() {
  static const TokenRules rules{std::string(kSecret), "phasekit-fuzz", "phasekit", std::chrono::seconds(3600),
                                std::chrono::seconds(30)};
  return rules;
}

void verify(std::string_view token) {
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(kNow));
  Identity id;
  if (verify_token(token, plain_rules(), now, id).ok() && (!valid_user_id(id.user_id) || id.expires_unix <= kNow)) {
    __builtin_trap();  // accepted a token for an invalid user, or an expired one
  }
  Identity strict;
  if (verify_token(token, strict_rules(), now, strict).ok() &&
      (!valid_user_id(strict.user_id) || strict.expires_unix + 30 <= kNow || strict.expires_unix - kNow > 3600 + 30)) {
    __builtin_trap();  // accepted an expired token, or one living past the lifetime cap
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  verify(input);
  if (const auto cut = input.find('\xff'); cut != std::string_view::npos) {
    verify(signed_token(input.substr(0, cut), input.substr(cut + 1)));
  }
  std::string bytes;
  if (base64url_decode(input, bytes) && base64url_encode(bytes) != input) {
    __builtin_trap();  // two texts decode to the same bytes
  }
  if (!base64url_decode(base64url_encode(input), bytes) || bytes != input) {
    __builtin_trap();
  }
  return 0;
}
