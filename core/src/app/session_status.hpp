#pragma once
// Where a session is in its life. The store keeps it as text (plugin::SessionRecord::status, which
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

}  // namespace phasekit::app
