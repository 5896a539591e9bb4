#pragma once
// kind = store: sessions and conversation history. `memory` for one instance; `redis` shared by all
// instances, so a session survives the death of the instance that held its socket.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "phasekit/status.hpp"

namespace phasekit::plugin {

struct SessionRecord {
  std::string id;
  std::string user_id;
  std::string status;  // "active", "detached", "ended"
  std::string cwd;
  std::vector<std::pair<std::string, std::string>> env;
  std::int64_t updated_unix_ms = 0;

  friend bool operator==(const SessionRecord&, const SessionRecord&) = default;
};

struct StoreStats {
  std::uint64_t sessions = 0;
  std::uint64_t conversation_entries = 0;
  std::uint64_t bytes = 0;
};

class StoreStrategy {
 public:
  virtual ~StoreStrategy() = default;
  virtual void put_session(SessionRecord record, std::function<void(Status)> done) noexcept = 0;
  /// NOT_FOUND when there is no such session.
  virtual void get_session(std::string id, std::function<void(Status, SessionRecord)> done) noexcept = 0;
  /// Removes the session and its conversation. Removing an unknown session is not an error.
  virtual void remove_session(std::string id, std::function<void(Status)> done) noexcept = 0;
  /// Appends one opaque entry (already compressed by the host if compression is on).
  virtual void append_conversation(std::string session_id, std::string entry,
                                   std::function<void(Status)> done) noexcept = 0;
  virtual void read_conversation(std::string session_id,
                                 std::function<void(Status, std::vector<std::string>)> done) noexcept = 0;
  [[nodiscard]] virtual StoreStats stats() const noexcept = 0;
  virtual void async_shutdown(std::function<void()> done) noexcept = 0;
};

}  // namespace phasekit::plugin
