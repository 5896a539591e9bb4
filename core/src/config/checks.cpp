#include "config/checks.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <string>

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

const char* check_redis_url(std::string_view value) {
  constexpr const char* kAllowed = "empty, redis://[user:password@]host[:port][/db] or unix:///path";
  if (value.empty()) {
    return nullptr;
  }
  if (value.starts_with("unix://")) {
    const std::string_view path = value.substr(7);
    return (!path.empty() && path.front() == '/') ? nullptr : kAllowed;
  }
  if (!value.starts_with("redis://")) {
    return kAllowed;
  }
  std::string_view rest = value.substr(8);
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    rest.remove_prefix(at + 1);
  }
  std::string_view db;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest;
  std::string_view port;
  if (rest.starts_with('[')) {  // [::1]:6379
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return kAllowed;
    }
    host = rest.substr(1, close - 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return kAllowed;
      }
      port = after.substr(1);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) {
    return kAllowed;
  }
  auto is_number_in = [](std::string_view digits, unsigned lo, unsigned hi) {
    unsigned n = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    return ec == std::errc() && end == digits.data() + digits.size() && n >= lo && n <= hi;
  };
  if (!port.empty() && !is_number_in(port, 1, 65535)) {
    return kAllowed;
  }
  if (!db.empty() && !is_number_in(db, 0, 100000)) {
    return kAllowed;
  }
  return nullptr;
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

}  // namespace phasekit::config
