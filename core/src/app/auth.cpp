#include "phasekit/app/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <string>

namespace phasekit::app {
namespace {

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

std::string sign_jwt(std::string_view header_json, std::string_view payload_json, std::string_view secret) {
  const std::string signing_input = base64url_encode(header_json) + "." + base64url_encode(payload_json);
  return signing_input + "." + base64url_encode(hmac_sha256(secret, signing_input));
}

std::string sign_token(std::string_view user_id, std::int64_t expires_unix, std::string_view secret) {
  return sign_jwt(R"({"alg":"HS256","typ":"JWT"})", nlohmann::json{{"sub", user_id}, {"exp", expires_unix}}.dump(),
                  secret);
}

namespace {

enum class Claim : std::uint8_t { absent, present, malformed };

/// A NumericDate claim (RFC 7519 §2), in whole seconds, not negative.
Claim time_claim(const nlohmann::json& payload, const char* name, std::int64_t& out) {
  const auto it = payload.find(name);
  if (it == payload.end()) {
    return Claim::absent;
  }
  if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<std::uint64_t>() > INT64_MAX)) {
    return Claim::malformed;
  }
  out = it->get<std::int64_t>();
  return out < 0 ? Claim::malformed : Claim::present;
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3); one of them must be ours.
bool has_audience(const nlohmann::json& payload, std::string_view audience) {
  const auto it = payload.find("aud");
  if (it == payload.end()) {
    return false;
  }
  if (it->is_string()) {
    return it->get_ref<const std::string&>() == audience;
  }
  if (!it->is_array()) {
    return false;
  }
  for (const auto& a : *it) {
    if (a.is_string() && a.get_ref<const std::string&>() == audience) {
      return true;
    }
  }
  return false;
}

/// The claims of a payload whose signature is good, against the rules.
Status check_claims(const nlohmann::json& payload, const TokenRules& rules, std::int64_t now_unix) {
  const std::int64_t leeway = rules.leeway.count();
  std::int64_t exp = 0;
  std::int64_t nbf = 0;
  std::int64_t iat = 0;
  const Claim has_exp = time_claim(payload, "exp", exp);
  if (has_exp == Claim::absent) {
    return unauthorized("token has no exp");
  }
  if (has_exp == Claim::malformed) {
    return unauthorized("token exp is not a whole number of seconds since the epoch");
  }
  if (exp <= now_unix - leeway) {
    return unauthorized("token expired");
  }
  const Claim has_nbf = time_claim(payload, "nbf", nbf);
  if (has_nbf == Claim::malformed) {
    return unauthorized("token nbf is not a whole number of seconds since the epoch");
  }
  if (has_nbf == Claim::present && nbf > now_unix + leeway) {
    return unauthorized("token not valid yet (nbf)");
  }
  const Claim has_iat = time_claim(payload, "iat", iat);
  if (has_iat == Claim::malformed) {
    return unauthorized("token iat is not a whole number of seconds since the epoch");
  }
  if (has_iat == Claim::present && iat > now_unix + leeway) {
    return unauthorized("token issued in the future (iat)");
  }
  if (const std::int64_t max = rules.max_lifetime.count(); max > 0) {
    // A stolen token is good until exp: cap how far ahead exp may be, whatever iat claims.
    if (exp - now_unix > max + leeway || (has_iat == Claim::present && exp - iat > max + leeway)) {
      return unauthorized("token lifetime over the maximum of " + std::to_string(max) + " s");
    }
  }
  if (!rules.issuer.empty()) {
    const auto iss = payload.find("iss");
    if (iss == payload.end() || !iss->is_string() || iss->get_ref<const std::string&>() != rules.issuer) {
      return unauthorized("token iss is not the expected issuer");
    }
  }
  if (!rules.audience.empty() && !has_audience(payload, rules.audience)) {
    return unauthorized("token aud does not name this service");
  }
  return {};
}

}  // namespace

Status verify_token(std::string_view token, const TokenRules& rules, std::chrono::system_clock::time_point now,
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
  // Every JSON access below checks the type first: json::value() and get() throw on a mismatch.
  const auto header = nlohmann::json::parse(header_json, nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return unauthorized("malformed token: header is not a JSON object");
  }
  const auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get_ref<const std::string&>() != "HS256") {
    return unauthorized("unsupported token: alg must be HS256");
  }
  if (header.contains("crit")) {  // RFC 7515 §4.1.11: extensions we do not know must be refused
    return unauthorized("unsupported token: crit header");
  }
  const std::string expected = hmac_sha256(rules.secret, signing_input);
  if (signature.size() != expected.size() ||
      CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0) {
    return unauthorized("bad token signature");
  }
  const auto payload = nlohmann::json::parse(payload_json, nullptr, false);
  if (payload.is_discarded() || !payload.is_object()) {
    return unauthorized("malformed token: payload is not a JSON object");
  }
  const auto sub = payload.find("sub");
  if (sub == payload.end() || !sub->is_string() || !valid_user_id(sub->get_ref<const std::string&>())) {
    return unauthorized("token has no valid sub (user id)");
  }
  const auto now_unix = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (Status s = check_claims(payload, rules, now_unix); !s.ok()) {
    return s;
  }
  out.user_id = sub->get<std::string>();
  out.expires_unix = payload.find("exp")->get<std::int64_t>();
  return {};
}

}  // namespace phasekit::app
