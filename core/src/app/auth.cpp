#include "app/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include <array>

namespace phasekit::app {
namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kMaxTokenBytes = 8192;

std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac.data(), &len);
  return std::string(reinterpret_cast<const char*>(mac.data()), len);
}

Status unauthorized(std::string message) { return Status(Code::unauthorized, std::move(message)); }

}  // namespace

bool valid_user_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '@' || c == ':' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) {
    out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  }
  return out;
}

bool base64url_decode(std::string_view text, std::string& out) {
  if (text.size() % 4 == 1) {
    return false;
  }
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const auto pos = kAlphabet.find(c);
    if (pos == std::string_view::npos) {
      return false;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;  // leftover bits must be zero (canonical encoding)
}

std::string sign_token(std::string_view user_id, std::int64_t expires_unix, std::string_view secret) {
  const std::string header = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  const std::string payload = base64url_encode(nlohmann::json{{"sub", user_id}, {"exp", expires_unix}}.dump());
  const std::string signing_input = header + "." + payload;
  return signing_input + "." + base64url_encode(hmac_sha256(secret, signing_input));
}

Status verify_token(std::string_view token, std::string_view secret, std::chrono::system_clock::time_point now,
                    Identity& out) {
  if (token.empty()) {
    return unauthorized("missing token: connect with auth {token}");
  }
  if (token.size() > kMaxTokenBytes) {
    return unauthorized("token too long");
  }
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return unauthorized("malformed token: expected header.payload.signature");
  }
  const std::string_view signing_input = token.substr(0, dot2);
  std::string header_json;
  std::string payload_json;
  std::string signature;
  if (!base64url_decode(token.substr(0, dot1), header_json) ||
      !base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), payload_json) ||
      !base64url_decode(token.substr(dot2 + 1), signature)) {
    return unauthorized("malformed token: bad base64url");
  }
  const auto header = nlohmann::json::parse(header_json, nullptr, false);
  if (header.is_discarded() || !header.is_object() || header.value("alg", "") != "HS256") {
    return unauthorized("unsupported token: alg must be HS256");
  }
  const std::string expected = hmac_sha256(secret, signing_input);
  if (signature.size() != expected.size() ||
      CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0) {
    return unauthorized("bad token signature");
  }
  const auto payload = nlohmann::json::parse(payload_json, nullptr, false);
  if (payload.is_discarded() || !payload.is_object()) {
    return unauthorized("malformed token: payload is not a JSON object");
  }
  const auto sub = payload.find("sub");
  const auto exp = payload.find("exp");
  if (sub == payload.end() || !sub->is_string() || !valid_user_id(sub->get<std::string>())) {
    return unauthorized("token has no valid sub (user id)");
  }
  if (exp == payload.end() || !exp->is_number_integer()) {
    return unauthorized("token has no exp");
  }
  const auto now_unix = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (exp->get<std::int64_t>() <= now_unix) {
    return unauthorized("token expired");
  }
  out.user_id = sub->get<std::string>();
  out.expires_unix = exp->get<std::int64_t>();
  return {};
}

}  // namespace phasekit::app
