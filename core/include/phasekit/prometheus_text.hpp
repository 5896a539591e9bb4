#pragma once
// Pieces of the Prometheus text exposition format (0.0.4) shared by the orchestrator's /metrics and
// phasekit-load's --metrics-port. Header-only; its users link fmt.
#include <fmt/format.h>

#include <cmath>
#include <string>
#include <string_view>

namespace phasekit::prometheus {

/// Appends a label value as the format escapes it: backslash, double quote and line feed.
inline void append_label_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

/// A sample value: the shortest text that reads back as the same double ("0.00025", "60", "1e-05"),
/// and NaN, +Inf, -Inf as the format spells them.
inline std::string format_number(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  return fmt::format("{}", v);
}

}  // namespace phasekit::prometheus
