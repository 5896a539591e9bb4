#pragma once
// Where a session is in its life, and why it ended. The store keeps it as text (plugin::SessionRecord::status, which
// store plugins persist and read back); core works with the enum and converts at that boundary only,
// with these two functions.
#include <cstdint>
#include <optional>
#include <string_view>

namespace phasekit::app {

enum class SessionStatus : std::uint8_t {
  active,    // a client is connected to it
  detached,  // its client went away; it waits SESSION_GRACE_MS to be resumed
  ended,
};

/// "active", "detached", "ended": the text the store keeps.
std::string_view to_string(SessionStatus status) noexcept;
/// The status a store's text names; nothing for any other text (a record written by a newer or
/// foreign version, or damaged), which the caller must decide about.
std::optional<SessionStatus> parse_session_status(std::string_view text) noexcept;

/// Why a session ended: what happens to its stored record depends on it (see Session::end).
enum class EndReason : std::uint8_t {
  disconnected,  // its client went away and SESSION_GRACE_MS is 0
  grace_over,    // its client went away and did not come back within SESSION_GRACE_MS
  shutdown,      // this instance is shutting down
};

/// The words the log line and the client's close reason carry: "disconnected", "grace period over",
/// "server shutting down".
std::string_view to_string(EndReason reason) noexcept;

}  // namespace phasekit::app
