#include "phasekit/app/session_status.hpp"

namespace phasekit::app {

std::string_view to_string(SessionStatus status) noexcept {
  switch (status) {
    case SessionStatus::active: return "active";
    case SessionStatus::detached: return "detached";
    case SessionStatus::ended: return "ended";
  }
  return "ended";
}

std::optional<SessionStatus> parse_session_status(std::string_view text) noexcept {
  for (const SessionStatus s : {SessionStatus::active, SessionStatus::detached, SessionStatus::ended}) {
    if (text == to_string(s)) {
      return s;
    }
  }
  return std::nullopt;
}

std::string_view to_string(EndReason reason) noexcept {
  switch (reason) {
    case EndReason::disconnected: return "disconnected";
    case EndReason::grace_over: return "grace period over";
    case EndReason::shutdown: return "server shutting down";
  }
  return "ended";
}

}  // namespace phasekit::app
