// store=sqlite: sessions and conversations in one SQLite file (store_path: STORE_PATH) that outlives
// the process: the embedded store for a single node that must survive restarts. Processes on the same
// host may share the file (SQLite locks it; a writer waits up to busy_timeout_ms for another).
//
//   sessions(id, user, status, cwd, env, backend, workspace, history, instance, updated, expires)
//   conversations(session, total, dropped, bytes, expires)  one row per session that has a conversation
//   entries(session, idx, entry)                             its kept entries, numbered from 0 for good
//   audit(session, call, user, …, finished)                  the audit log: one row per tool call
//
// env and history are byte-safe JSON text (store_common/shell_fields.hpp); cwd, workspace and entries
// are blobs, byte for byte. TTLs are store=redis's: a session's row and its conversation expire ttl_ms
// after their last write while the session is active, the grace period plus a minute once it is
// detached or ended. An expired row reads as absent and is purged every purge_interval_ms, as are
// audit records older than audit_retention_ms (HISTORY_RETENTION_DAYS).
//
// One thread owns the connection (WAL journal, synchronous=NORMAL: a committed call survives the
// process being killed; a power cut may lose the last ones) and runs the calls in the order they came.
// The calls that queued up while it committed go in one transaction (group commit), so a burst of
// appends costs one WAL write. A call is answered, on the host's executor, only once its transaction
// committed. A call whose statements fail is run again alone, so it fails without taking the calls
// batched with it down. While the disk (or another process's lock) holds the writer, at most 100,000
// calls carrying at most queue_max_bytes (256 MiB) wait; a call beyond either fails at once with
// UNAVAILABLE.
#include <sqlite3.h>

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"
#include "shell_fields.hpp"
#include "store_options.hpp"

namespace phasekit::store_sqlite {
namespace {

using plugin::HostServices;
using plugin::SessionRecord;
using plugin::SessionUpdate;
using plugin::StoreStats;

constexpr int kSchemaVersion = 2;

/// The most audit records one read_audit scans (it filters what it scans).
constexpr std::size_t kAuditScanMost = 10000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, user TEXT NOT NULL, status TEXT NOT NULL, cwd BLOB NOT NULL, env TEXT NOT NULL,
  backend TEXT NOT NULL, workspace BLOB NOT NULL, history TEXT NOT NULL, instance TEXT NOT NULL,
  updated INTEGER NOT NULL, expires INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires);
CREATE TABLE IF NOT EXISTS conversations (
  session TEXT PRIMARY KEY, total INTEGER NOT NULL, dropped INTEGER NOT NULL, bytes INTEGER NOT NULL,
  expires INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_expires ON conversations (expires);
CREATE TABLE IF NOT EXISTS entries (
  session TEXT NOT NULL, idx INTEGER NOT NULL, entry BLOB NOT NULL, PRIMARY KEY (session, idx));
CREATE TABLE IF NOT EXISTS audit (
  session TEXT NOT NULL, call TEXT NOT NULL, user TEXT NOT NULL, instance TEXT NOT NULL, tool TEXT NOT NULL,
  args BLOB NOT NULL, args_truncated INTEGER NOT NULL, approved INTEGER NOT NULL, outcome TEXT NOT NULL,
  exit_code INTEGER NOT NULL, duration_ms INTEGER NOT NULL, output_bytes INTEGER NOT NULL,
  attempt INTEGER NOT NULL, requested INTEGER NOT NULL, finished INTEGER NOT NULL,
  PRIMARY KEY (finished, session, call), UNIQUE (session, call)) WITHOUT ROWID;
)sql";

/// Version 1's audit table to version 2's, the rows kept. Version 1 was a rowid table keyed by (session,
/// call) with two indexes, the log's order and (user, finished): a record went into four B-trees, a page
/// of the WAL each for a call that commits alone. Version 2 keeps the rows in the log's order (WITHOUT
/// ROWID) beside the (session, call) key, two B-trees; a user's records are found by scanning the log's
/// order (read_audit), as store=redis does. Measured: the audit log added 50 µs of CPU to a call that
/// commits alone, 28 µs without the user index (bench/audit_bench.cpp, BM_AuditAdded/sqlite_alone).
constexpr const char* kAuditFromVersion1 = R"sql(
DROP INDEX IF EXISTS audit_order;
DROP INDEX IF EXISTS audit_user;
ALTER TABLE audit RENAME TO audit_version1;
)sql";
constexpr const char* kAuditFromVersion1Rows = R"sql(
INSERT INTO audit (session, call, user, instance, tool, args, args_truncated, approved, outcome, exit_code,
                   duration_ms, output_bytes, attempt, requested, finished)
  SELECT session, call, user, instance, tool, args, args_truncated, approved, outcome, exit_code, duration_ms,
         output_bytes, attempt, requested, finished FROM audit_version1;
DROP TABLE audit_version1;
)sql";

/// A statement that failed: the transaction it ran in is rolled back.
struct DbError {
  Status status;
};

/// UNAVAILABLE for what passes (another process holds the lock, the disk is full or failing), INTERNAL
/// for what does not (a corrupt file, a bug).
Status status_of(int rc, std::string_view what) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
      return Status(Code::unavailable, fmt::format("sqlite: {}", what));
    default:
      return Status(Code::internal, fmt::format("sqlite: {}", what));
  }
}

/// The connection, used by one thread at a time; prepared statements are kept for its life.
class Db {
 public:
  /// `read_only`: an existing file, opened for reading (phasekit history); nothing is made or changed.
  Db(const std::string& path, std::int64_t busy_timeout_ms, bool read_only) {
    const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw std::invalid_argument(fmt::format("store_path {}: {}", path, why));
    }
    try {
      sqlite3_busy_timeout(db_, static_cast<int>(busy_timeout_ms));
      // WAL: readers (phasekit history, another process) do not block the writer, and a commit is one
      // append to the log. NORMAL: no fsync per commit; what committed survives a kill of the process.
      if (read_only) {
        // A file some other program wrote is not read as ours.
        if (text_of("SELECT count(*) FROM sqlite_schema WHERE name = 'audit'") != "1") {
          throw DbError{Status(Code::internal, "sqlite: not a phasekit store (it has no audit table)")};
        }
        return;
      }
      if (const std::string mode = text_of("PRAGMA journal_mode=WAL"); mode != "wal") {
        throw DbError{Status(Code::internal, fmt::format("sqlite: journal_mode is {}, not wal", mode))};
      }
      exec("PRAGMA synchronous=NORMAL");
      // The version is read under the write lock: two processes opening one file upgrade it once.
      exec("BEGIN IMMEDIATE");
      const std::int64_t version = std::stoll(text_of("PRAGMA user_version"));
      if (version > kSchemaVersion) {
        throw DbError{Status(Code::internal, fmt::format("sqlite: the file's schema is version {}, newer than this "
                                                         "build's {}",
                                                         version, kSchemaVersion))};
      }
      if (version < kSchemaVersion) {
        const bool from_version1 = version == 1 && text_of("SELECT count(*) FROM sqlite_schema WHERE name = 'audit'") == "1";
        if (from_version1) {
          exec(kAuditFromVersion1);
        }
        exec(kSchema);
        if (from_version1) {
          exec(kAuditFromVersion1Rows);
        }
        exec(fmt::format("PRAGMA user_version={}", kSchemaVersion).c_str());
      }
      exec("COMMIT");
    } catch (const DbError& e) {
      close();
      throw std::invalid_argument(fmt::format("store_path {}: {}", path, e.status.message()));
    }
  }
  ~Db() { close(); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const char* sql) {
    char* error = nullptr;
    if (const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error); rc != SQLITE_OK) {
      const std::string why = error != nullptr ? error : sqlite3_errstr(rc);
      sqlite3_free(error);
      throw DbError{status_of(rc, why)};
    }
  }
  /// Runs `sql` (a transaction's end) and says whether it went through; never throws.
  bool try_exec(const char* sql) noexcept {
    return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
  }

  sqlite3_stmt* statement(const char* sql) {
    auto& stmt = statements_[sql];
    if (stmt == nullptr) {
      if (const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr); rc != SQLITE_OK) {
        statements_.erase(sql);
        fail(rc);
      }
    }
    return stmt;
  }

  [[noreturn]] void fail(int rc) const { throw DbError{status_of(rc, sqlite3_errmsg(db_))}; }
  [[nodiscard]] std::int64_t changes() const noexcept { return sqlite3_changes64(db_); }

 private:
  std::string text_of(const char* sql) {
    std::string out;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
    if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      out = text != nullptr ? text : "";
      rc = SQLITE_OK;
    }
    const std::string why = sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
      throw DbError{status_of(rc, why)};
    }
    return out;
  }

  void close() noexcept {
    for (auto& [sql, stmt] : statements_) {
      sqlite3_finalize(stmt);
    }
    statements_.clear();
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }

  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;  // keyed by the SQL literal's address
};

/// One use of a prepared statement: bind, step, read; reset when it goes.
class Query {
 public:
  Query(Db& db, const char* sql) : db_(db), stmt_(db.statement(sql)) {}
  ~Query() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& text(int i, std::string_view v) { return check(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8)); }
  Query& blob(int i, std::string_view v) { return check(sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT)); }
  Query& integer(int i, std::int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  Query& null(int i) { return check(sqlite3_bind_null(stmt_, i)); }

  /// True: a row is there to read; false: done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc != SQLITE_DONE) {
      db_.fail(rc);
    }
    return false;
  }
  [[nodiscard]] std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  [[nodiscard]] std::string bytes(int col) const {
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    const int n = sqlite3_column_bytes(stmt_, col);
    return data != nullptr ? std::string(data, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  Query& check(int rc) {
    if (rc != SQLITE_OK) {
      db_.fail(rc);
    }
    return *this;
  }

  Db& db_;
  sqlite3_stmt* stmt_;
};

struct Options {
  std::string path = "phasekit.db";
  store_common::Lifetimes lifetimes;
  std::int64_t busy_timeout_ms = 5000;
  std::int64_t purge_interval_ms = 60000;
  std::size_t max_pending = 100000;             // calls waiting for the writer, at most
  std::size_t max_pending_bytes = 256U << 20;  // and the bytes they carry (entries, records, sessions)
  bool read_only = false;  // phasekit history: reads an existing file, writes nothing
};

class SqliteStore final : public plugin::StoreStrategy {
 public:
  SqliteStore(HostServices& host, Options options)
      : host_(host), log_(host.logger("store.sqlite")), options_(std::move(options)),
        db_(std::make_unique<Db>(options_.path, options_.busy_timeout_ms, options_.read_only)) {
    try {
      count_what_is_there();
    } catch (const DbError& e) {
      throw std::invalid_argument(fmt::format("store_path {}: {}", options_.path, e.status.message()));
    }
    thread_ = std::thread([this] { writer(); });
    log_.info("store.sqlite_opened", {{"path", options_.path}, {"sessions", counts_.stats().sessions},
                                      {"conversation_entries", counts_.stats().conversation_entries}});
  }
  ~SqliteStore() override {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();  // runs what was queued first: nothing acknowledged is dropped
  }
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  /// What it keeps outlives the process, so sessions are persisted as they change.
  [[nodiscard]] bool shared() const noexcept override { return true; }
  /// A file on this host: a failing disk fails its calls, it never makes them fail fast.
  [[nodiscard]] bool reachable() const noexcept override { return true; }

  void put_session(SessionRecord record, std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = store_common::carried(record.cwd, record.env, record.workspace, record.history);
    submit(failing(done), [this, record = std::move(record), done](Db& db) {
      const std::int64_t now = now_ms();
      bool existed = false;
      {
        Query q(db, "SELECT 1 FROM sessions WHERE id = ?1");
        existed = q.text(1, record.id).step();
      }
      Query(db, "INSERT OR REPLACE INTO sessions (id, user, status, cwd, env, backend, workspace, history, instance, "
                "updated, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
          .text(1, record.id)
          .text(2, record.user_id)
          .text(3, record.status)
          .blob(4, record.cwd)
          .text(5, store_common::env_text(record.env))
          .text(6, record.backend)
          .blob(7, record.workspace)
          .text(8, store_common::history_text(record.history))
          .text(9, record.instance)
          .integer(10, record.updated_unix_ms)
          .integer(11, now + ttl_for(record.status))
          .step();
      renew_conversation(db, record.id, now + ttl_for(record.status), now);
      return [this, existed, done] {
        if (!existed) {
          counts_.add_session();
        }
        answer(done, Status());
      };
    }, bytes);
  }

  void update_session(std::string id, SessionUpdate update, std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = store_common::carried(update.cwd, update.env, update.workspace, update.history);
    submit(failing(done), [this, id = std::move(id), update = std::move(update), done](Db& db) {
      const std::int64_t now = now_ms();
      const std::int64_t expires = now + ttl_for(update.status.value_or("active"));
      Query q(db, R"sql(UPDATE sessions SET
          status = coalesce(?2, status), instance = coalesce(?3, instance),
          cwd = CASE WHEN ?4 THEN ?5 ELSE cwd END, env = CASE WHEN ?4 THEN ?6 ELSE env END,
          backend = CASE WHEN ?4 THEN ?7 ELSE backend END, workspace = CASE WHEN ?4 THEN ?8 ELSE workspace END,
          history = CASE WHEN ?4 THEN ?9 ELSE history END, updated = ?10, expires = ?11
        WHERE id = ?1 AND expires > ?12)sql");
      q.text(1, id);
      update.status ? q.text(2, *update.status) : q.null(2);
      update.instance ? q.text(3, *update.instance) : q.null(3);
      q.integer(4, update.shell ? 1 : 0)
          .blob(5, update.cwd)
          .text(6, store_common::env_text(update.env))
          .text(7, update.backend)
          .blob(8, update.workspace)
          .text(9, store_common::history_text(update.history))
          .integer(10, update.updated_unix_ms)
          .integer(11, expires)
          .integer(12, now)
          .step();
      const bool found = db.changes() > 0;
      if (found) {
        renew_conversation(db, id, expires, now);
      }
      return [this, found, done] { answer(done, found ? Status() : Status(Code::not_found, "no such session")); };
    }, bytes);
  }

  void get_session(std::string id, std::function<void(Status, SessionRecord)> done) noexcept override {
    auto fail = [this, done](Status s) { post([done, s = std::move(s)] { done(s, SessionRecord()); }); };
    submit(std::move(fail), [this, id = std::move(id), done](Db& db) {
      Query q(db, "SELECT user, status, cwd, env, backend, workspace, history, instance, updated FROM sessions "
                  "WHERE id = ?1 AND expires > ?2");
      q.text(1, id).integer(2, now_ms());
      Status s(Code::not_found, "no such session");
      SessionRecord r;
      if (q.step()) {
        r.id = id;
        r.user_id = q.bytes(0);
        r.status = q.bytes(1);
        r.cwd = q.bytes(2);
        r.backend = q.bytes(4);
        r.workspace = q.bytes(5);
        r.instance = q.bytes(7);
        r.updated_unix_ms = q.integer(8);
        s = store_common::parse_env(id, q.bytes(3), r.env);
        if (s.ok()) {
          s = store_common::parse_history(id, q.bytes(6), r.history);
        }
      }
      return [this, done, s = std::move(s), r = std::move(r)]() mutable {
        post([done, s = std::move(s), r = std::move(r)]() mutable { done(s, std::move(r)); });
      };
    });
  }

  void remove_session(std::string id, std::function<void(Status)> done) noexcept override {
    submit(failing(done), [this, id = std::move(id), done](Db& db) {
      const Kept gone = drop_conversation(db, id);
      Query(db, "DELETE FROM sessions WHERE id = ?1").text(1, id).step();
      const bool existed = db.changes() > 0;
      return [this, gone, existed, done] {
        counts_.forget(gone, existed ? 1 : 0);
        answer(done, Status());
      };
    });
  }

  void append_conversation(std::string session_id, std::string entry,
                           std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = entry.size();
    submit(failing(done), [this, id = std::move(session_id), entry = std::move(entry), done](Db& db) {
      const auto [before, after] = append_entry(db, id, entry);
      return [this, before, after, done] {
        counts_.conversation(before, after);
        answer(done, Status());
      };
    }, bytes);
  }

  void append_result(std::string session_id, std::string entry, plugin::AuditRecord record,
                     std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = entry.size() + store_common::carried(record);
    submit(failing(done), [this, id = std::move(session_id), entry = std::move(entry), record = std::move(record),
                           done](Db& db) {
      const auto [before, after] = append_entry(db, id, entry);
      insert_audit(db, record);
      return [this, before, after, done] {
        counts_.conversation(before, after);
        answer(done, Status());
      };
    }, bytes);
  }

  void read_conversation(std::string session_id, plugin::ConversationRange range,
                         std::function<void(Status, plugin::ConversationPage)> done) noexcept override {
    auto fail = [this, done](Status s) { post([done, s = std::move(s)] { done(s, plugin::ConversationPage()); }); };
    submit(std::move(fail), [this, id = std::move(session_id), range, done](Db& db) {
      plugin::ConversationPage page;
      {
        Query q(db, "SELECT total, dropped FROM conversations WHERE session = ?1 AND expires > ?2");
        if (q.text(1, id).integer(2, now_ms()).step()) {
          page.total = static_cast<std::uint64_t>(q.integer(0));
          page.dropped = static_cast<std::uint64_t>(q.integer(1));
        }
      }
      const std::uint64_t end = std::min(std::max(range.before, page.dropped), page.total);
      std::size_t bytes = 0;
      if (end > page.dropped && range.max_entries > 0) {
        Query q(db, "SELECT entry FROM entries WHERE session = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx DESC "
                    "LIMIT ?4");
        q.text(1, id)
            .integer(2, static_cast<std::int64_t>(page.dropped))
            .integer(3, static_cast<std::int64_t>(end))
            .integer(4, static_cast<std::int64_t>(std::min<std::size_t>(range.max_entries, 1U << 30)));
        while (q.step()) {
          std::string entry = q.bytes(0);
          if (!page.entries.empty() && bytes + entry.size() > range.max_bytes) {
            break;
          }
          bytes += entry.size();
          page.entries.push_back(std::move(entry));
        }
      }
      std::reverse(page.entries.begin(), page.entries.end());
      page.first = end - page.entries.size();
      return [this, done, page = std::move(page)]() mutable {
        post([done, page = std::move(page)]() mutable { done(Status(), std::move(page)); });
      };
    });
  }

  void append_audit(std::vector<plugin::AuditRecord> records, std::function<void(Status)> done) noexcept override {
    std::size_t bytes = 0;
    for (const auto& r : records) {
      bytes += store_common::carried(r);
    }
    submit(failing(done), [this, records = std::move(records), done](Db& db) {
      for (const auto& r : records) {
        insert_audit(db, r);
      }
      return [this, done] { answer(done, Status()); };
    }, bytes);
  }

  void read_audit(plugin::AuditQuery query, std::function<void(Status, plugin::AuditPage)> done) noexcept override {
    plugin::AuditRecord at;
    if (!query.cursor.empty() && !plugin::audit_position(query.cursor, at)) {
      post([done] { done(Status(Code::bad_request, "audit: not a cursor of this log"), plugin::AuditPage()); });
      return;
    }
    if (query.cursor.empty()) {
      at.finished_unix_ms = INT64_MIN;
    }
    auto fail = [this, done](Status s) { post([done, s = std::move(s)] { done(s, plugin::AuditPage()); }); };
    submit(std::move(fail), [this, query = std::move(query), at = std::move(at), done](Db& db) {
      // The log in its order from the cursor, at most kAuditScanMost records a call (this thread answers
      // nothing else meanwhile); the user and session filters are applied to what it scans. One match
      // more than the limit: whether there is a next page. A scan that stops at its bound (with a record
      // after it) gives the cursor of the last record it read.
      const std::size_t limit = std::clamp<std::size_t>(query.limit, 1, plugin::kAuditPageMost);
      Query q(db, R"sql(SELECT session, call, user, instance, tool, args, args_truncated, approved, outcome, exit_code,
          duration_ms, output_bytes, attempt, requested, finished FROM audit
        WHERE finished >= ?1 AND finished < ?2 AND (finished, session, call) > (?3, ?4, ?5)
        ORDER BY finished, session, call LIMIT ?6)sql");
      q.integer(1, query.since_unix_ms)
          .integer(2, query.until_unix_ms)
          .integer(3, at.finished_unix_ms)
          .text(4, at.session_id)
          .text(5, at.call_id)
          .integer(6, static_cast<std::int64_t>(kAuditScanMost + 1));
      plugin::AuditPage page;
      plugin::AuditRecord last;  // the last record scanned: its key
      std::size_t scanned = 0;
      while (q.step()) {
        if (++scanned > kAuditScanMost) {  // there is more, past the bound: go on from the last one read
          page.next = plugin::audit_cursor(last);
          break;
        }
        last.session_id = q.bytes(0);
        last.call_id = q.bytes(1);
        last.finished_unix_ms = q.integer(14);
        if ((!query.session_id.empty() && last.session_id != query.session_id) ||
            (!query.user_id.empty() && q.bytes(2) != query.user_id)) {
          continue;
        }
        if (page.records.size() == limit) {
          page.next = plugin::audit_cursor(page.records.back());
          break;
        }
        plugin::AuditRecord r;
        r.session_id = last.session_id;
        r.call_id = last.call_id;
        r.user_id = q.bytes(2);
        r.instance = q.bytes(3);
        r.tool = q.bytes(4);
        r.args = q.bytes(5);
        r.args_truncated = q.integer(6) != 0;
        r.approved = q.integer(7) != 0;
        r.outcome = q.bytes(8);
        r.exit_code = q.integer(9);
        r.duration_ms = q.integer(10);
        r.output_bytes = static_cast<std::uint64_t>(q.integer(11));
        r.attempt = static_cast<std::uint32_t>(q.integer(12));
        r.requested_unix_ms = q.integer(13);
        r.finished_unix_ms = last.finished_unix_ms;
        page.records.push_back(std::move(r));
      }
      return [this, done, page = std::move(page)]() mutable {
        post([done, page = std::move(page)]() mutable { done(Status(), std::move(page)); });
      };
    });
  }

  [[nodiscard]] StoreStats stats() const noexcept override {
    return counts_.stats();
  }

  /// Answered once every call queued before it has committed.
  void async_shutdown(std::function<void()> done) noexcept override {
    submit([this, done](const Status&) { post(done); }, [this, done](Db&) -> Answer {
      return [this, done] { post(done); };
    });
  }

 private:
  /// Runs on the writer thread after the call's transaction committed: counts, then answers.
  using Answer = std::function<void()>;
  /// A call's statements, on the writer thread inside a transaction; throws DbError when one fails.
  using Run = std::function<Answer(Db&)>;
  struct Call {
    Run run;
    std::function<void(Status)> fail;  // the call's answer when its transaction did not commit
    std::size_t bytes = 0;             // what it carries, counted against max_pending_bytes
  };
  using Kept = store_common::Counts::Kept;

  static constexpr std::size_t kBatchMost = 512;

  /// Queues a call that carries `bytes` of data; `fail` answers it when its transaction does not commit,
  /// or at once when the queue is full (by count or by bytes).
  void submit(std::function<void(Status)> fail, Run run, std::size_t bytes = 0) noexcept {
    {
      const std::lock_guard lock(mutex_);
      if (queue_.size() < options_.max_pending && queued_bytes_ + bytes <= options_.max_pending_bytes &&
          !stopping_) {
        queued_bytes_ += bytes;
        queue_.push_back(Call{std::move(run), std::move(fail), bytes});
        wake_.notify_one();
        return;
      }
    }
    fail(Status(Code::unavailable, fmt::format("sqlite store: {} calls or {} MiB already wait for the disk",
                                               options_.max_pending, static_cast<double>(options_.max_pending_bytes) / (1 << 20))));
  }
  /// The `fail` of a call answered by `done(Status)`.
  std::function<void(Status)> failing(std::function<void(Status)> done) {
    return [this, done = std::move(done)](Status s) { answer(done, std::move(s)); };
  }

  void writer() {
    auto next_purge = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.purge_interval_ms);
    for (;;) {
      std::vector<Call> batch;
      {
        std::unique_lock lock(mutex_);
        wake_.wait_until(lock, next_purge, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty() && stopping_) {
          return;
        }
        const std::size_t n = std::min(queue_.size(), kBatchMost);
        batch.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
          queued_bytes_ -= queue_.front().bytes;
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      if (!batch.empty()) {
        run_batch(batch);
      }
      if (!options_.read_only && std::chrono::steady_clock::now() >= next_purge) {
        next_purge = std::chrono::steady_clock::now() +
                     (purge() ? std::chrono::milliseconds(0) : std::chrono::milliseconds(options_.purge_interval_ms));
      }
    }
  }

  void run_batch(std::vector<Call>& batch) {
    std::vector<Answer> answers;
    answers.reserve(batch.size());
    Status failed;
    std::size_t at = batch.size();  // the call that failed; batch.size(): the transaction itself did
    try {
      db_->exec(options_.read_only ? "BEGIN" : "BEGIN IMMEDIATE");
      for (std::size_t i = 0; i < batch.size(); ++i) {
        at = i;
        answers.push_back(batch[i].run(*db_));
      }
      at = batch.size();
      db_->exec("COMMIT");
    } catch (const DbError& e) {
      failed = e.status;
    } catch (const std::exception& e) {
      failed = Status(Code::internal, fmt::format("sqlite store: {}", e.what()));
    }
    if (!failed.ok()) {
      db_->try_exec("ROLLBACK");
      if (batch.size() == 1 || at == batch.size()) {
        // A call at fault, or the transaction (the lock, the disk): no call of the batch went through.
        log_.warn("store.sqlite_call_failed", {{"error", failed.message()}, {"calls", batch.size()}});
        for (auto& call : batch) {
          call.fail(failed);
        }
        return;
      }
      for (auto& call : batch) {  // again one by one: only the call at fault fails
        std::vector<Call> alone;
        alone.push_back(std::move(call));
        run_batch(alone);
      }
      return;
    }
    for (auto& a : answers) {
      a();
    }
  }

  /// Removes what expired, a bounded number of rows at a time; true when there is more to remove.
  bool purge() {
    try {
      db_->exec("BEGIN IMMEDIATE");
      const std::int64_t now = now_ms();
      std::vector<std::string> expired;
      {
        Query q(*db_, "SELECT session FROM conversations WHERE expires <= ?1 LIMIT 256");
        q.integer(1, now);
        while (q.step()) {
          expired.push_back(q.bytes(0));
        }
      }
      Kept gone;
      for (const auto& id : expired) {
        const Kept k = drop_conversation(*db_, id);
        gone.entries += k.entries;
        gone.bytes += k.bytes;
      }
      Query(*db_, "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires <= ?1 LIMIT 256)")
          .integer(1, now)
          .step();
      const auto sessions = static_cast<std::uint64_t>(db_->changes());
      Query(*db_, "DELETE FROM audit WHERE (finished, session, call) IN "
                  "(SELECT finished, session, call FROM audit WHERE finished < ?1 ORDER BY finished LIMIT 1024)")
          .integer(1, now - options_.lifetimes.audit_retention_ms)
          .step();
      const auto audited = db_->changes();
      db_->exec("COMMIT");
      counts_.forget(gone, sessions);
      return expired.size() == 256 || sessions == 256 || audited == 1024;
    } catch (const DbError& e) {
      db_->try_exec("ROLLBACK");
      log_.warn("store.sqlite_purge_failed", {{"error", e.status.message()}});
      return false;
    }
  }

  /// Deletes a conversation and its entries; what it kept.
  static Kept drop_conversation(Db& db, const std::string& id) {
    Kept kept;
    {
      Query q(db, "SELECT total - dropped, bytes FROM conversations WHERE session = ?1");
      if (q.text(1, id).step()) {
        kept = Kept{static_cast<std::uint64_t>(q.integer(0)), static_cast<std::uint64_t>(q.integer(1))};
      }
    }
    Query(db, "DELETE FROM entries WHERE session = ?1").text(1, id).step();
    Query(db, "DELETE FROM conversations WHERE session = ?1").text(1, id).step();
    return kept;
  }

  /// Appends `entry` to the conversation of `id`, then drops the oldest entries while it is over a cap
  /// (the newest always stays); what it kept before and after.
  std::pair<Kept, Kept> append_entry(Db& db, const std::string& id, const std::string& entry) const {
    const std::int64_t now = now_ms();
    Kept before;
    std::int64_t total = 0;
    std::int64_t dropped = 0;
    std::int64_t bytes = 0;
    {
      Query q(db, "SELECT total, dropped, bytes, expires FROM conversations WHERE session = ?1");
      if (q.text(1, id).step()) {
        if (q.integer(3) > now) {
          total = q.integer(0);
          dropped = q.integer(1);
          bytes = q.integer(2);
        }
        before = Kept{static_cast<std::uint64_t>(q.integer(0) - q.integer(1)), static_cast<std::uint64_t>(q.integer(2))};
      }
    }
    if (total == 0 && before.entries > 0) {
      Query(db, "DELETE FROM entries WHERE session = ?1").text(1, id).step();  // expired: it starts again
    }
    Query(db, "INSERT INTO entries (session, idx, entry) VALUES (?1, ?2, ?3)")
        .text(1, id)
        .integer(2, total)
        .blob(3, entry)
        .step();
    ++total;
    bytes += static_cast<std::int64_t>(entry.size());
    // Over a cap: the oldest go (the newest always stays).
    const auto max_entries = static_cast<std::int64_t>(options_.lifetimes.caps.max_entries);
    const auto max_bytes = static_cast<std::int64_t>(options_.lifetimes.caps.max_bytes);
    if (total - dropped > max_entries || bytes > max_bytes) {
      std::int64_t keep_from = dropped;
      {
        Query q(db, "SELECT idx, length(entry) FROM entries WHERE session = ?1 AND idx >= ?2 ORDER BY idx");
        q.text(1, id).integer(2, dropped);
        while (total - keep_from > 1 && (total - keep_from > max_entries || bytes > max_bytes) && q.step()) {
          keep_from = q.integer(0) + 1;
          bytes -= q.integer(1);
        }
      }
      Query(db, "DELETE FROM entries WHERE session = ?1 AND idx < ?2").text(1, id).integer(2, keep_from).step();
      dropped = keep_from;
    }
    Query(db, "INSERT OR REPLACE INTO conversations (session, total, dropped, bytes, expires) "
              "VALUES (?1, ?2, ?3, ?4, ?5)")
        .text(1, id)
        .integer(2, total)
        .integer(3, dropped)
        .integer(4, bytes)
        .integer(5, now + options_.lifetimes.ttl_ms)
        .step();
    return {before, Kept{static_cast<std::uint64_t>(total - dropped), static_cast<std::uint64_t>(bytes)}};
  }

  /// One record of the audit log (a record of the same session and call replaces it).
  static void insert_audit(Db& db, const plugin::AuditRecord& r) {
    Query(db, "INSERT OR REPLACE INTO audit (session, call, user, instance, tool, args, args_truncated, approved, "
              "outcome, exit_code, duration_ms, output_bytes, attempt, requested, finished) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)")
        .text(1, r.session_id)
        .text(2, r.call_id)
        .text(3, r.user_id)
        .text(4, r.instance)
        .text(5, r.tool)
        .blob(6, r.args)
        .integer(7, r.args_truncated ? 1 : 0)
        .integer(8, r.approved ? 1 : 0)
        .text(9, r.outcome)
        .integer(10, r.exit_code)
        .integer(11, r.duration_ms)
        .integer(12, static_cast<std::int64_t>(r.output_bytes))
        .integer(13, r.attempt)
        .integer(14, r.requested_unix_ms)
        .integer(15, r.finished_unix_ms)
        .step();
  }

  /// A session write renews its conversation's TTL too (store=redis does the same).
  static void renew_conversation(Db& db, const std::string& id, std::int64_t expires, std::int64_t now) {
    Query(db, "UPDATE conversations SET expires = ?2 WHERE session = ?1 AND expires > ?3")
        .text(1, id)
        .integer(2, expires)
        .integer(3, now)
        .step();
  }

  void count_what_is_there() {
    std::uint64_t sessions = 0;
    {
      Query q(*db_, "SELECT count(*) FROM sessions");
      sessions = q.step() ? static_cast<std::uint64_t>(q.integer(0)) : 0;
    }
    Query q(*db_, "SELECT coalesce(sum(total - dropped), 0), coalesce(sum(bytes), 0) FROM conversations");
    if (q.step()) {
      counts_.set(sessions, static_cast<std::uint64_t>(q.integer(0)), static_cast<std::uint64_t>(q.integer(1)));
    }
  }

  std::int64_t ttl_for(std::string_view status) const { return options_.lifetimes.ttl_for(status); }
  std::int64_t now_ms() const { return store_common::now_ms(host_); }

  template <class F>
  void post(F f) {
    boost::asio::post(host_.executor(), std::move(f));
  }
  void answer(const std::function<void(Status)>& done, Status s) {
    post([done, s = std::move(s)] { done(s); });
  }

  HostServices& host_;
  Logger& log_;
  const Options options_;
  std::unique_ptr<Db> db_;  // the writer thread's alone once it runs
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Call> queue_;
  std::size_t queued_bytes_ = 0;
  bool stopping_ = false;
  store_common::Counts counts_;
  std::thread thread_;
};

struct Factory {
  static std::unique_ptr<plugin::StoreStrategy> create(HostServices& host, std::string_view config) {
    PluginOptions o(config);
    Options options;
    options.path = o.text("store_path", options.path);
    if (options.path.empty()) {
      throw std::invalid_argument("store_path is empty: expected the SQLite file to keep sessions in");
    }
    options.lifetimes = store_common::read_lifetimes(o);
    options.busy_timeout_ms = o.integer("busy_timeout_ms", 5000, 0, 600000);
    options.purge_interval_ms = o.integer("purge_interval_ms", 60000, 10, 86400000);
    options.max_pending_bytes = static_cast<std::size_t>(
        o.integer("queue_max_bytes", static_cast<std::int64_t>(options.max_pending_bytes), 65536, std::int64_t{1} << 40));
    options.read_only = o.boolean("read_only", false);
    store_common::ignore_other_stores(o);
    o.finish();
    return std::make_unique<SqliteStore>(host, std::move(options));
  }
};

}  // namespace
}  // namespace phasekit::store_sqlite

PHASEKIT_PLUGIN(PHK_KIND_STORE, "sqlite", "1.0.0",
                "sessions and conversations in one SQLite file (WAL) that survives restarts, for a single node",
                phasekit::store_sqlite::Factory)
