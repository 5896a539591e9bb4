#pragma once
// The one error vocabulary of phasekit. Each code maps 1:1 to a wire code of DESIGN.md
// (`{ok:false, code, message}` acks and `error` events). Status crosses the plugin boundary by value:
// it holds no std::error_category, whose singleton would be duplicated in every dlopen'd library.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace phasekit {

enum class Code : std::uint8_t {
  ok = 0,
  too_many_requests,
  bad_request,
  unauthorized,
  not_found,
  timeout,
  unavailable,
  internal,
  resource_exhausted,  // a per-user cap (sessions, backends) or a backend's own limit was reached
};

/// "TOO_MANY_REQUESTS", "BAD_REQUEST", … ("OK" for Code::ok).
constexpr std::string_view wire_name(Code code) noexcept {
  switch (code) {
    case Code::ok: return "OK";
    case Code::too_many_requests: return "TOO_MANY_REQUESTS";
    case Code::bad_request: return "BAD_REQUEST";
    case Code::unauthorized: return "UNAUTHORIZED";
    case Code::not_found: return "NOT_FOUND";
    case Code::timeout: return "TIMEOUT";
    case Code::unavailable: return "UNAVAILABLE";
    case Code::internal: return "INTERNAL";
    case Code::resource_exhausted: return "RESOURCE_EXHAUSTED";
  }
  return "INTERNAL";
}

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  [[nodiscard]] bool ok() const noexcept { return code_ == Code::ok; }
  explicit operator bool() const noexcept { return ok(); }
  [[nodiscard]] Code code() const noexcept { return code_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

  friend bool operator==(const Status& a, const Status& b) = default;

 private:
  Code code_ = Code::ok;
  std::string message_;
};

inline Status ok_status() { return {}; }

}  // namespace phasekit
