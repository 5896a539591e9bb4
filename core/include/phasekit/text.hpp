#pragma once
// Small text helpers shared by the parsers of HTTP-like fields (header-only: core, the load
// generator and plugins each get their own copy).
#include <string_view>

namespace phasekit::text {

/// s without the spaces and tabs around it: HTTP's optional whitespace (RFC 9110 §5.6.3), as header
/// values, cookie attributes and threshold expressions are read.
constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

static_assert(trim_ows(" \tab c\t ") == "ab c");
static_assert(trim_ows(" \t").empty());

}  // namespace phasekit::text
