#pragma once
// How a virtual user's flow ended: fine, or its first error, which the report counts as
// errors.<code>. The connection's errors come through the driver; the flow's own are here.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "driver/driver.hpp"

namespace phasekit::load {

/// What a flow itself refuses in what the connection delivered, or in its own templates.
enum class FlowErrc : std::uint8_t {
  template_value,  // a {{ }} without a value
  data_mismatch,
  match_failed,
  capture_failed,
};

constexpr std::string_view error_name(FlowErrc code) noexcept {
  switch (code) {
    case FlowErrc::template_value: return "template";
    case FlowErrc::data_mismatch: return "data_mismatch";
    case FlowErrc::match_failed: return "match_failed";
    case FlowErrc::capture_failed: return "capture_failed";
  }
  return "template";
}

class Outcome {
 public:
  Outcome() = default;
  // Implicit, so that a coroutine co_returns a connection's error as it is.
  Outcome(ConnError error) : code_(error.code), detail_(std::move(error.detail)) {}  // NOLINT(google-explicit-constructor)
  Outcome(FlowErrc code, std::string detail) : code_(code), detail_(std::move(detail)) {}

  [[nodiscard]] bool ok() const noexcept { return std::holds_alternative<std::monostate>(code_); }
  [[nodiscard]] bool is(ConnErrc code) const noexcept {
    const ConnErrc* c = std::get_if<ConnErrc>(&code_);
    return c != nullptr && *c == code;
  }
  /// The report's errors.<code>; empty when fine.
  [[nodiscard]] std::string_view code() const noexcept {
    if (const ConnErrc* c = std::get_if<ConnErrc>(&code_)) {
      return error_name(*c);
    }
    if (const FlowErrc* f = std::get_if<FlowErrc>(&code_)) {
      return error_name(*f);
    }
    return {};
  }
  [[nodiscard]] const std::string& detail() const noexcept { return detail_; }

 private:
  std::variant<std::monostate, ConnErrc, FlowErrc> code_;
  std::string detail_;
};

}  // namespace phasekit::load
