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
  std::string cwd;     // the shell's working directory, relative to the workspace ("" = its top)
  std::vector<std::pair<std::string, std::string>> env;  // variables the user exported
  std::string backend;    // the backend that holds the session's files now ("" = none)
  std::string workspace;  // where the session's files are between tool calls (a folder under WORKSPACE_ROOT)
  std::vector<std::string> history;  // shell command lines, oldest first (the newest 100)
  std::string instance;   // the orchestrator instance that holds the client's socket
  std::int64_t updated_unix_ms = 0;

  friend bool operator==(const SessionRecord&, const SessionRecord&) = default;
};

/// A partial write: status and instance when set; cwd, env, backend, workspace and history together
/// when `shell` is true (the orchestrator owns the first two, whoever runs the session's tool calls
/// the rest, so neither overwrites the other's fields with a stale copy).
struct SessionUpdate {
  std::optional<std::string> status;
  std::optional<std::string> instance;
  bool shell = false;
  std::string cwd;
  std::vector<std::pair<std::string, std::string>> env;
  std::string backend;
  std::string workspace;
  std::vector<std::string> history;
  std::int64_t updated_unix_ms = 0;
};

/// What every store does with an update: the fields it sets replace the record's.
inline void apply(SessionRecord& record, SessionUpdate update) {
  if (update.status) {
    record.status = std::move(*update.status);
  }
  if (update.instance) {
    record.instance = std::move(*update.instance);
  }
  if (update.shell) {
    record.cwd = std::move(update.cwd);
    record.env = std::move(update.env);
    record.backend = std::move(update.backend);
    record.workspace = std::move(update.workspace);
    record.history = std::move(update.history);
  }
  record.updated_unix_ms = update.updated_unix_ms;
}

struct StoreStats {
  std::uint64_t sessions = 0;
  std::uint64_t conversation_entries = 0;
  std::uint64_t bytes = 0;
};

class StoreStrategy {
 public:
  virtual ~StoreStrategy() = default;
  virtual void put_session(SessionRecord record, std::function<void(Status)> done) noexcept = 0;
  /// Applies `update` to a stored session; NOT_FOUND when there is no such session.
  virtual void update_session(std::string id, SessionUpdate update, std::function<void(Status)> done) noexcept = 0;
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
