#pragma once
// kind = store: sessions and conversation history. `memory` for one instance; `redis` shared by all
// instances, so a session survives the death of the instance that held its socket.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
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

/// One tool call as the audit log keeps it: who ran what, when, with what result (issue 19). Written by
/// the process that ran the call (or that the user refused it to) before its tool:result went out, so
/// a call the user heard of is in the log. A store keeps one record per (session_id, call_id): a record
/// written again (a retry, a redelivered call) replaces the first.
struct AuditRecord {
  std::string call_id;
  std::string user_id;
  std::string session_id;
  std::string instance;  // the orchestrator or worker that ran it, or refused it
  std::string tool;
  std::string args;              // the call's arguments as JSON text, at most kAuditArgsMost bytes
  bool args_truncated = false;   // the arguments were longer (cut at a UTF-8 boundary, not valid JSON)
  bool approved = false;         // false: the user denied it, and it did not run
  std::string outcome;           // "ok" (ran, any exit code), "denied", or the failure's code: "timeout", …
  std::int64_t exit_code = -1;   // the command's, when it ran to its end; -1 otherwise
  std::int64_t duration_ms = 0;  // from its start on a backend to its end; 0 when it did not run
  std::uint64_t output_bytes = 0;
  std::uint32_t attempt = 1;
  std::int64_t requested_unix_ms = 0;  // when the user asked for it
  std::int64_t finished_unix_ms = 0;   // when its result (or refusal) was settled

  friend bool operator==(const AuditRecord&, const AuditRecord&) = default;
};

/// Arguments beyond this many bytes are cut (AuditRecord::args_truncated).
inline constexpr std::size_t kAuditArgsMost = 4096;

/// One read_audit page holds at most this many records, whatever AuditQuery::limit asks.
inline constexpr std::size_t kAuditPageMost = 100000;

/// Which records: those of `user_id` and `session_id` (when set) that finished in [since, until), in
/// the log's order (audit_before), at most `limit` of them, from where `cursor` says (AuditPage::next).
struct AuditQuery {
  std::string user_id;
  std::string session_id;
  std::int64_t since_unix_ms = 0;
  std::int64_t until_unix_ms = INT64_MAX;
  std::size_t limit = 1000;
  std::string cursor;  // "": from the start
};

/// What one read_audit gives: the records, and the cursor of the next page ("" when there is none).
/// A page may hold fewer than `limit` records and still have a next one (a store bounds what one call
/// scans).
struct AuditPage {
  std::vector<AuditRecord> records;
  std::string next;
};

/// The audit log's order: by finish time, then session, then call.
inline bool audit_before(const AuditRecord& a, const AuditRecord& b) noexcept {
  return std::tie(a.finished_unix_ms, a.session_id, a.call_id) < std::tie(b.finished_unix_ms, b.session_id, b.call_id);
}

/// The cursor of the page after record `r` (AuditPage::next): "<finished>:<length of session>:<session><call>",
/// byte-safe whatever the ids hold.
inline std::string audit_cursor(const AuditRecord& r) {
  return std::to_string(r.finished_unix_ms) + ":" + std::to_string(r.session_id.size()) + ":" + r.session_id +
         r.call_id;
}

/// The position a cursor names, in `at` (finished_unix_ms, session_id, call_id); false when `cursor`
/// is not one audit_cursor() made.
inline bool audit_position(std::string_view cursor, AuditRecord& at) {
  const char* p = cursor.data();
  const char* end = cursor.data() + cursor.size();
  std::int64_t finished = 0;
  std::size_t session = 0;
  auto r = std::from_chars(p, end, finished);
  if (r.ec != std::errc() || r.ptr == end || *r.ptr != ':') {
    return false;
  }
  r = std::from_chars(r.ptr + 1, end, session);
  if (r.ec != std::errc() || r.ptr == end || *r.ptr != ':' || static_cast<std::size_t>(end - r.ptr - 1) < session) {
    return false;
  }
  at.finished_unix_ms = finished;
  at.session_id.assign(r.ptr + 1, session);
  at.call_id.assign(r.ptr + 1 + session, end);
  return true;
}

/// Whether `r` is one of those `q` asks for (its limit and cursor aside).
inline bool audit_matches(const AuditQuery& q, const AuditRecord& r) noexcept {
  return (q.user_id.empty() || r.user_id == q.user_id) && (q.session_id.empty() || r.session_id == q.session_id) &&
         r.finished_unix_ms >= q.since_unix_ms && r.finished_unix_ms < q.until_unix_ms;
}

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
  /// False while calls fail fast because the store cannot be reached (its circuit breaker is open);
  /// a store in this process is always reachable. Called from any thread (/ready reports it).
  [[nodiscard]] virtual bool reachable() const noexcept = 0;
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
  /// A call's result, in one write: `entry` appended to the session's conversation (as
  /// append_conversation) and `record` added to the audit log (as append_audit). Both are stored or
  /// neither is, and a call that ends alone costs the store one commit, not two.
  virtual void append_result(std::string session_id, std::string entry, AuditRecord record,
                             std::function<void(Status)> done) noexcept = 0;
  /// One page of the conversation (an unknown session's is empty).
  virtual void read_conversation(std::string session_id, ConversationRange range,
                                 std::function<void(Status, ConversationPage)> done) noexcept = 0;
  /// Adds records to the audit log (one per call: a record of a (session_id, call_id) already there
  /// replaces it). The store drops records older than its `audit_retention_ms` option.
  virtual void append_audit(std::vector<AuditRecord> records, std::function<void(Status)> done) noexcept = 0;
  /// Records of the audit log, as AuditQuery says; BAD_REQUEST for a cursor it did not give.
  virtual void read_audit(AuditQuery query, std::function<void(Status, AuditPage)> done) noexcept = 0;
  [[nodiscard]] virtual StoreStats stats() const noexcept = 0;
  virtual void async_shutdown(std::function<void()> done) noexcept = 0;
};

}  // namespace phasekit::plugin
