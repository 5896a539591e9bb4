#pragma once
// A value as one bash word that expands to exactly it: between single quotes, each ' written '\''.
// Header-only: the sandbox supervisor (a static binary of its own) and the application both use it.
#include <string>
#include <string_view>

namespace phasekit::backend {

inline std::string single_quoted(std::string_view value) {
  std::string out = "'";
  for (const char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

}  // namespace phasekit::backend
