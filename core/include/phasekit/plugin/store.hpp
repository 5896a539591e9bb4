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

/// One page of a conversation, oldest first. Entries are numbered from 0 (the session's first) for
/// good: an entry keeps its index when older ones are dropped by the store's caps.
struct ConversationPage {
  std::vector<std::string> entries;
  std::uint64_t first = 0;    // index of entries[0] (when there are none: where the page would start)
  std::uint64_t dropped = 0;  // the oldest entries the caps removed: indexes below this are gone
  std::uint64_t total = 0;    // entries ever appended (dropped ones included)
};

/// Which page: the newest entries below index `before` (UINT64_MAX: the newest of all), at most
/// `max_entries` of them, and no more than `max_bytes` together, except that a page holds at least
/// one entry when there is one below `before`.
struct ConversationRange {
  std::uint64_t before = UINT64_MAX;
  std::size_t max_entries = 50;
  std::size_t max_bytes = 512 * 1024;
};

/// What a store keeps of one conversation at most: appending beyond either cap drops the oldest
/// entries (ConversationPage::dropped counts them).
struct ConversationCaps {
  std::size_t max_entries = 1000;
  std::size_t max_bytes = 4 * 1024 * 1024;
};

struct StoreStats {
  std::uint64_t sessions = 0;
  std::uint64_t conversation_entries = 0;
  std::uint64_t bytes = 0;
};

class StoreStrategy {
 public:
  virtual ~StoreStrategy() = default;
  /// True when what is stored outlives this process and other instances read it: sessions are
  /// persisted as they change, and a client may resume its session on another instance.
  [[nodiscard]] virtual bool shared() const noexcept = 0;
  virtual void put_session(SessionRecord record, std::function<void(Status)> done) noexcept = 0;
  /// Applies `update` to a stored session; NOT_FOUND when there is no such session.
  virtual void update_session(std::string id, SessionUpdate update, std::function<void(Status)> done) noexcept = 0;
  /// NOT_FOUND when there is no such session.
  virtual void get_session(std::string id, std::function<void(Status, SessionRecord)> done) noexcept = 0;
  /// Removes the session and its conversation. Removing an unknown session is not an error.
  virtual void remove_session(std::string id, std::function<void(Status)> done) noexcept = 0;
  /// Appends one opaque entry (already compressed by the host if compression is on), then drops the
  /// oldest entries while the conversation is over the store's ConversationCaps (the `conversation_max_entries`
  /// and `conversation_max_bytes` options).
  virtual void append_conversation(std::string session_id, std::string entry,
                                   std::function<void(Status)> done) noexcept = 0;
  /// One page of the conversation (an unknown session's is empty).
  virtual void read_conversation(std::string session_id, ConversationRange range,
                                 std::function<void(Status, ConversationPage)> done) noexcept = 0;
  [[nodiscard]] virtual StoreStats stats() const noexcept = 0;
  virtual void async_shutdown(std::function<void()> done) noexcept = 0;
};

}  // namespace phasekit::plugin
