#pragma once
// Socket.IO connection-state recovery for tool calls: the offset each recoverable event carries, and
// what a client that comes back with its last one is missing.
//
// An offset names the event it rides on and the calls still outstanding for the client after it:
//   "<q|r>:<callId>;<callId>,<callId>…"   q: the call's tool:request, r: its tool:result
// The outstanding calls are those whose tool:request went out and whose tool:result had not, on the
// instance that sent the event. A connection delivers in order, so a client whose last event carried
// this offset got every result sent before it, none after it, and none of the outstanding ones. That
// holds whatever order the conversation stored the results in: a worker stores a result, and an
// orchestrator a request, each on its own, so the two orders differ while calls overlap.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace phasekit::app {

struct RecoveryOffset {
  char kind = 'r';  // 'q' tool:request, 'r' tool:result
  std::string call_id;
  std::vector<std::string> outstanding;
};

inline constexpr std::size_t kOffsetOutstandingMost = 64;  // calls listed in one offset, the oldest dropped
inline constexpr std::size_t kOffsetBytesMost = 64 + kOffsetOutstandingMost * 65;

std::string format_offset(const RecoveryOffset& offset);
/// nullopt for anything format_offset does not make: the offset then says nothing.
std::optional<RecoveryOffset> parse_offset(std::string_view text);

/// What to send a client back with `offset`, from the newest entries of its conversation (oldest
/// first, as the store keeps them; an unreadable entry is an empty object): the indexes of the
/// tool results it is missing, oldest first, each call once. A call is missing when it was outstanding
/// for the client, or was requested after the offset's event. `waiting` gets the missing calls whose
/// result is not (yet) in the entries: still running, or older than the entries reach.
std::vector<std::size_t> results_to_replay(const std::vector<nlohmann::json>& entries, const RecoveryOffset& offset,
                                           std::vector<std::string>& waiting);

}  // namespace phasekit::app
