#pragma once
// What the persistent stores (redis, sqlite, postgres) read from their options alike, and count alike.
//
// plugin_config_json gives every store the same object (every store setting), so each store takes the
// keys meant for the others without using them (ignore_other_stores), and PluginOptions::finish() still
// refuses a key no store knows.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin/store.hpp"
#include "phasekit/plugin_options.hpp"

namespace phasekit::store_common {

/// How long what a store keeps lives, and how much of a conversation it keeps.
struct Lifetimes {
  std::int64_t ttl_ms = 86400000;                     // an active session's record and conversation
  std::int64_t grace_ms = 30000;                      // SESSION_GRACE_MS
  std::int64_t audit_retention_ms = 30LL * 86400000;  // HISTORY_RETENTION_DAYS
  plugin::ConversationCaps caps;

  /// A session's record, after a write that leaves it in `status`: ttl_ms while it is active, the grace
  /// period plus a minute once it is detached or ended.
  [[nodiscard]] std::int64_t ttl_for(std::string_view status) const {
    return status == "active" ? ttl_ms : grace_ms + 60000;
  }
};

inline Lifetimes read_lifetimes(PluginOptions& o) {
  Lifetimes l;
  l.ttl_ms = o.integer("ttl_ms", l.ttl_ms, 1000, 365LL * 86400000);
  l.grace_ms = o.integer("session_grace_ms", l.grace_ms, 0, 86400000);
  l.audit_retention_ms = o.integer("audit_retention_ms", l.audit_retention_ms, 3600000, 3650LL * 86400000);
  l.caps.max_entries = static_cast<std::size_t>(o.integer("conversation_max_entries", 1000, 1, 10000000));
  l.caps.max_bytes = static_cast<std::size_t>(o.integer("conversation_max_bytes", 4194304, 1024, 1LL << 40));
  return l;
}

/// The bytes a call carries, as a store's bounded queue counts them: a session's record or update,
/// and an audit record.
inline std::size_t carried(const std::string& cwd, const std::vector<std::pair<std::string, std::string>>& env,
                           const std::string& workspace, const std::vector<std::string>& history) {
  std::size_t n = cwd.size() + workspace.size();
  for (const auto& [name, value] : env) {
    n += name.size() + value.size();
  }
  for (const auto& line : history) {
    n += line.size();
  }
  return n;
}
inline std::size_t carried(const plugin::AuditRecord& r) {
  return r.call_id.size() + r.user_id.size() + r.session_id.size() + r.instance.size() + r.tool.size() +
         r.args.size() + r.outcome.size();
}

/// Takes every store's keys a store may not use itself (those it read are taken already).
inline void ignore_other_stores(PluginOptions& o) {
  for (const char* key : {"redis_url", "redis_password", "store_path", "postgres_url", "pool_size", "read_only"}) {
    o.ignore(key);
  }
}

/// The wall clock in milliseconds since the epoch (TTLs and audit times).
inline std::int64_t now_ms(const plugin::HostServices& host) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(host.clock().wall().time_since_epoch()).count();
}

/// What a store holds, as StoreStats says it, updated as its writes commit.
class Counts {
 public:
  /// Entries and bytes one conversation kept.
  struct Kept {
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
  };

  void add_session() { ++sessions_; }
  /// A conversation went from `before` to `after`.
  void conversation(Kept before, Kept after) {
    forget(before, 0);
    entries_ += after.entries;
    bytes_ += after.bytes;
  }
  /// Conversations and sessions removed.
  void forget(Kept gone, std::uint64_t sessions) {
    entries_ -= std::min(gone.entries, entries_.load());
    bytes_ -= std::min(gone.bytes, bytes_.load());
    sessions_ -= std::min(sessions, sessions_.load());
  }
  void set(std::uint64_t sessions, std::uint64_t entries, std::uint64_t bytes) {
    sessions_ = sessions;
    entries_ = entries;
    bytes_ = bytes;
  }
  [[nodiscard]] plugin::StoreStats stats() const { return {sessions_.load(), entries_.load(), bytes_.load()}; }

 private:
  std::atomic<std::uint64_t> sessions_{0};
  std::atomic<std::uint64_t> entries_{0};
  std::atomic<std::uint64_t> bytes_{0};
};

}  // namespace phasekit::store_common
