#include "phasekit/config/checks.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <string>

#include "phasekit/net/origin_policy.hpp"
#include "phasekit/hpa_behavior.hpp"
#include "phasekit/redis/url.hpp"

namespace phasekit::config {

const char* check_ip_address(std::string_view value) {
  const std::string s(value);
  unsigned char buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    return nullptr;
  }
  return "an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 or ::";
}

const char* check_absolute_path(std::string_view value) {
  if (!value.empty() && value.front() == '/' && value.find('\0') == std::string_view::npos) {
    return nullptr;
  }
  return "an absolute path";
}

const char* check_allowed_origins(std::string_view value) {
  return net::OriginPolicy::parse(value) ? nullptr
                                         : "empty, * alone, or origins scheme://host[:port] separated by commas (no "
                                           "path, no trailing slash)";
}

const char* check_redis_url(std::string_view value) {
  if (value.empty()) {
    return nullptr;
  }
  // One parser for the whole tree: the client's (phasekit::redis_url). Its message may name the
  // part that is wrong, but this phrase is what the configuration error line shows.
  redis::Endpoint endpoint;
  if (redis::parse_url(value, endpoint)) {
    return nullptr;
  }
  return "empty, redis://[user:password@]host[:port][/db], rediss://... (TLS) or unix:///path";
}

namespace {

// Every example secret this repository ships (k8s/base/secret.yaml, deploy/, docs): a deployment that
// kept one is signed with a key the whole world has.
constexpr std::array<std::string_view, 2> kPlaceholderSecrets{
    "replace-me-with-at-least-32-random-bytes-0123456789",
    "replace-me-with-a-random-redis-password",
};

bool contains_marker(std::string_view value) {
  std::string lowered(value);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const std::string_view marker : {"replace-me", "replace_me", "change-me", "change_me", "changeme"}) {
    if (lowered.find(marker) != std::string::npos) {
      return true;
    }
  }
  return false;
}

bool low_entropy(std::string_view value) {
  std::array<bool, 256> seen{};
  std::size_t distinct = 0;
  std::size_t close_neighbours = 0;  // equal or consecutive: runs ("aaaa") and sequences ("abcd", "4321")
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    distinct += seen[c] ? 0 : 1;
    seen[c] = true;
    if (i > 0) {
      const int diff = static_cast<int>(c) - static_cast<unsigned char>(value[i - 1]);
      close_neighbours += diff >= -1 && diff <= 1 ? 1 : 0;
    }
  }
  if (distinct < 8 || 4 * close_neighbours > 3 * (value.size() - 1)) {
    return true;
  }
  for (std::size_t period = 1; period <= value.size() / 2; ++period) {
    if (value.substr(period) == value.substr(0, value.size() - period)) {
      return true;  // one shorter string repeated
    }
  }
  return false;
}

}  // namespace

bool is_placeholder_secret(std::string_view value) {
  return std::find(kPlaceholderSecrets.begin(), kPlaceholderSecrets.end(), value) != kPlaceholderSecrets.end() ||
         contains_marker(value);
}

const char* check_auth_secret(std::string_view value) {
  if (value.size() < 32) {
    return "a secret of at least 32 bytes";
  }
  if (is_placeholder_secret(value)) {
    return "a secret of your own, not a placeholder (openssl rand -base64 48)";
  }
  if (low_entropy(value)) {
    return "a random secret: at least 8 distinct bytes, not a shorter string repeated, not mostly runs or "
           "sequences (openssl rand -base64 48)";
  }
  return nullptr;
}

const char* check_claim_value(std::string_view value) {
  const bool printable =
      std::all_of(value.begin(), value.end(), [](unsigned char c) { return c >= 0x20 && c < 0x7f; });
  return value.size() <= 256 && printable ? nullptr : "empty or 1..256 printable ASCII characters";
}

const char* check_docker_host(std::string_view value) {
  return value.starts_with("unix:///") && value.find('\0') == std::string_view::npos
             ? nullptr
             : "unix:///path/to/docker.sock (a unix socket: the Engine API is never reached over TCP)";
}

long long nano_cpus(std::string_view value) {
  const auto dot = value.find('.');
  const std::string_view whole = value.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? std::string_view() : value.substr(dot + 1);
  long long units = 0;
  const auto [end, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), units);
  if (whole.empty() || ec != std::errc() || end != whole.data() + whole.size() || units > 1024 ||
      (dot != std::string_view::npos && (frac.empty() || frac.size() > 3))) {
    return -1;
  }
  long long nanos = units * 1'000'000'000LL;
  long long scale = 100'000'000LL;
  for (const char c : frac) {
    if (c < '0' || c > '9') {
      return -1;
    }
    nanos += (c - '0') * scale;
    scale /= 10;
  }
  return nanos > 1024LL * 1'000'000'000LL ? -1 : nanos;
}

const char* check_cpus(std::string_view value) {
  return nano_cpus(value) >= 0 ? nullptr : "a number of CPUs such as 0.5, 1 or 2 (0: no limit; at most 1024)";
}

std::string check_hpa_behavior(const nlohmann::json& value) {
  try {
    hpa::parse_behavior(value, "");
    return {};
  } catch (const json_fields::FieldError& e) {
    return e.what();
  }
}

}  // namespace phasekit::config
