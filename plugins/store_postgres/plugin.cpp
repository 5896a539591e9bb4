// store=postgres: sessions, conversations and the audit log in PostgreSQL (POSTGRES_URL), shared by
// every instance as store=redis is, and durable as a database is.
//
//   phasekit_sessions(id, user, status, cwd, env, backend, workspace, history, instance, updated, expires)
//   phasekit_conversations(session, total, dropped, bytes, expires)
//   phasekit_entries(session, idx, entry)
//   phasekit_audit(session, call, user, …, finished)
//
// Every string is BYTEA, sent and read in binary: ids, cwd and entries byte for byte, whatever bytes
// they hold (PostgreSQL's TEXT refuses NUL and invalid UTF-8). TTLs are store=redis's; expired rows read
// as absent and are purged every purge_interval_ms, audit records past audit_retention_ms too.
//
// A pool of pool_size connections (POSTGRES_POOL_SIZE), each owned by a thread of its own that runs one
// call at a time in a transaction with libpq's blocking calls. Every statement is prepared once per
// connection; a result's write (its history entry and audit record) is one statement, phasekit_append()
// on the server, so one round trip. A connection is opened when a call needs it (connect timeout
// connect_timeout_ms; the schema only when the database's is older than kSchemaVersion), closed after
// idle_timeout_ms without a call, replaced when the server closed it while idle, and dropped and
// opened again after a failure, so the pool comes back by itself after a restart of the server. Every
// call goes through the host's "postgres" circuit breaker: while the server is down calls fail fast
// with UNAVAILABLE. Calls wait for a connection in a queue bounded by count (100,000) and by the bytes
// they carry (queue_max_bytes, 256 MiB); past either a call fails at once with UNAVAILABLE. Pool
// figures are in /metrics (phasekit_postgres_pool_*). On shutdown the calls queued are run before the
// threads end.
#include <libpq-fe.h>

#include <endian.h>
#include <poll.h>
#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"
#include "shell_fields.hpp"
#include "store_options.hpp"

namespace phasekit::store_postgres {
namespace {

using plugin::HostServices;
using plugin::SessionRecord;
using plugin::SessionUpdate;
using plugin::StoreStats;
using Clock = std::chrono::steady_clock;

/// The schema's version: a connection runs kSchema only when the database's is older (its DDL takes
/// locks that queue behind, and then hold up, every call in flight). Raise it with every change below.
constexpr std::int64_t kSchemaVersion = 4;  // 2: phasekit_append; 3: narrow audit indexes, HOT conversations; 4: insert vacuums on
constexpr const char* kSchema = R"sql(
SELECT pg_advisory_xact_lock(7243018);
CREATE TABLE IF NOT EXISTS phasekit_sessions (
  id BYTEA PRIMARY KEY, "user" BYTEA NOT NULL, status BYTEA NOT NULL, cwd BYTEA NOT NULL, env BYTEA NOT NULL,
  backend BYTEA NOT NULL, workspace BYTEA NOT NULL, history BYTEA NOT NULL, instance BYTEA NOT NULL,
  updated BIGINT NOT NULL, expires BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS phasekit_sessions_expires ON phasekit_sessions (expires);
CREATE TABLE IF NOT EXISTS phasekit_conversations (
  session BYTEA PRIMARY KEY, total BIGINT NOT NULL, dropped BIGINT NOT NULL, bytes BIGINT NOT NULL,
  expires BIGINT NOT NULL);
-- A conversation's row changes with every append: with no index on what changes (expires is found by
-- the purge's scan, once a minute) and room left in its page, the change is a HOT update. Otherwise
-- every append adds an entry to the key's index, and each lookup of the session walks past every
-- version since the last vacuum: a call cost 270 µs of PostgreSQL's CPU after a second of 4,000 calls
-- a second, 480 µs after twenty.
DROP INDEX IF EXISTS phasekit_conversations_expires;
ALTER TABLE phasekit_conversations SET (fillfactor = 50);
CREATE TABLE IF NOT EXISTS phasekit_entries (
  session BYTEA NOT NULL, idx BIGINT NOT NULL, entry BYTEA NOT NULL, PRIMARY KEY (session, idx));
CREATE TABLE IF NOT EXISTS phasekit_audit (
  session BYTEA NOT NULL, call BYTEA NOT NULL, "user" BYTEA NOT NULL, instance BYTEA NOT NULL, tool BYTEA NOT NULL,
  args BYTEA NOT NULL, args_truncated BOOLEAN NOT NULL, approved BOOLEAN NOT NULL, outcome BYTEA NOT NULL,
  exit_code BIGINT NOT NULL, duration_ms BIGINT NOT NULL, output_bytes BIGINT NOT NULL, attempt BIGINT NOT NULL,
  requested BIGINT NOT NULL, finished BIGINT NOT NULL, PRIMARY KEY (session, call));
-- The log's order and its per-user order: narrow keys (a page's ties on `finished` are sorted on the
-- rows, an incremental sort), so a record costs two small index entries beside its key. Its vacuums
-- after inserts stay on (version 3 had them off): they freeze the log a little at a time, where an
-- anti-wraparound vacuum would read all of it at once.
DROP INDEX IF EXISTS phasekit_audit_order;
DROP INDEX IF EXISTS phasekit_audit_user;
CREATE INDEX IF NOT EXISTS phasekit_audit_finished ON phasekit_audit (finished);
CREATE INDEX IF NOT EXISTS phasekit_audit_user_finished ON phasekit_audit ("user", finished);
ALTER TABLE phasekit_audit RESET (autovacuum_vacuum_insert_threshold);
-- A conversation's append, server-side: one round trip for what took eight. The conversation's row is
-- locked, so appends to one session from several instances go one by one. An expired conversation
-- starts again; past a cap the oldest entries go (the newest always stays). Returns what the
-- conversation kept before and after: entries and bytes.
CREATE OR REPLACE FUNCTION phasekit_append(p_session BYTEA, p_entry BYTEA, p_now BIGINT, p_expires BIGINT,
    p_max_entries BIGINT, p_max_bytes BIGINT, OUT kept_before BIGINT, OUT bytes_before BIGINT,
    OUT kept_after BIGINT, OUT bytes_after BIGINT)
LANGUAGE plpgsql AS $fn$
DECLARE
  v_total BIGINT; v_dropped BIGINT; v_kept BIGINT; v_bytes BIGINT; v_expires BIGINT; old RECORD;
BEGIN
  INSERT INTO phasekit_conversations (session, total, dropped, bytes, expires) VALUES (p_session, 0, 0, 0, 0)
    ON CONFLICT (session) DO NOTHING;
  SELECT total, dropped, bytes, expires INTO v_total, v_dropped, v_bytes, v_expires
    FROM phasekit_conversations WHERE session = p_session FOR UPDATE;
  kept_before := v_total - v_dropped;
  bytes_before := v_bytes;
  IF v_expires <= p_now AND v_total > 0 THEN
    DELETE FROM phasekit_entries WHERE session = p_session;
    v_total := 0; v_dropped := 0; v_bytes := 0;
  END IF;
  INSERT INTO phasekit_entries (session, idx, entry) VALUES (p_session, v_total, p_entry);
  v_total := v_total + 1;
  v_bytes := v_bytes + length(p_entry);
  IF v_total - v_dropped > p_max_entries OR v_bytes > p_max_bytes THEN
    v_kept := v_dropped;
    FOR old IN SELECT idx, length(entry)::BIGINT AS size FROM phasekit_entries
               WHERE session = p_session AND idx >= v_dropped ORDER BY idx LOOP
      EXIT WHEN v_total - v_dropped <= 1 OR (v_total - v_dropped <= p_max_entries AND v_bytes <= p_max_bytes);
      v_dropped := old.idx + 1;
      v_bytes := v_bytes - old.size;
    END LOOP;
    -- Only what goes now: the rows dropped before are dead but still in the index until a vacuum.
    DELETE FROM phasekit_entries WHERE session = p_session AND idx >= v_kept AND idx < v_dropped;
  END IF;
  UPDATE phasekit_conversations SET total = v_total, dropped = v_dropped, bytes = v_bytes, expires = p_expires
    WHERE session = p_session;
  kept_after := v_total - v_dropped;
  bytes_after := v_bytes;
END
$fn$;
CREATE TABLE IF NOT EXISTS phasekit_schema (
  one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), version BIGINT NOT NULL);
)sql";

constexpr unsigned kByteaOid = 17;
constexpr unsigned kInt8Oid = 20;

/// A statement that failed; `broken`: the connection is no longer usable.
struct DbError {
  Status status;
  bool broken = false;
};

/// Parameters of one statement: strings as binary BYTEA, integers as text INT8.
class Params {
 public:
  Params& bytes(std::string_view v) {
    storage_.emplace_back(v);
    push(kByteaOid, 1);
    return *this;
  }
  Params& integer(std::int64_t v) {
    storage_.emplace_back(std::to_string(v));
    push(kInt8Oid, 0);
    return *this;
  }
  Params& null_bytes() {
    storage_.emplace_back();
    push(kByteaOid, 1, true);
    return *this;
  }

  [[nodiscard]] int size() const { return static_cast<int>(storage_.size()); }
  /// Pointers into the strings, taken once every parameter is in (the deque keeps them in place).
  void finish() {
    values_.clear();
    for (std::size_t i = 0; i < storage_.size(); ++i) {
      values_.push_back(nulls_[i] ? nullptr : storage_[i].data());
      lengths_.push_back(static_cast<int>(storage_[i].size()));
    }
  }
  [[nodiscard]] const unsigned* types() const { return types_.data(); }
  [[nodiscard]] const char* const* values() const { return values_.data(); }
  [[nodiscard]] const int* lengths() const { return lengths_.data(); }
  [[nodiscard]] const int* formats() const { return formats_.data(); }

 private:
  void push(unsigned type, int format, bool null = false) {
    types_.push_back(type);
    formats_.push_back(format);
    nulls_.push_back(null);
  }
  std::deque<std::string> storage_;
  std::vector<unsigned> types_;
  std::vector<int> formats_;
  std::vector<bool> nulls_;
  std::vector<const char*> values_;
  std::vector<int> lengths_;
};

/// A result read in binary.
class Rows {
 public:
  explicit Rows(PGresult* r) : r_(r) {}
  ~Rows() { PQclear(r_); }
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;
  Rows(Rows&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}

  [[nodiscard]] int size() const { return PQntuples(r_); }
  [[nodiscard]] std::int64_t affected() const { return std::strtoll(PQcmdTuples(r_), nullptr, 10); }
  [[nodiscard]] std::string bytes(int row, int col) const {
    return std::string(PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col)));
  }
  [[nodiscard]] std::int64_t integer(int row, int col) const {
    std::uint64_t be = 0;
    if (PQgetlength(r_, row, col) == 8) {
      std::memcpy(&be, PQgetvalue(r_, row, col), 8);
    }
    return static_cast<std::int64_t>(be64toh(be));
  }
  [[nodiscard]] bool boolean(int row, int col) const {
    return PQgetlength(r_, row, col) == 1 && PQgetvalue(r_, row, col)[0] != 0;
  }

 private:
  PGresult* r_;
};

/// One pooled connection, used by its thread alone.
class Conn {
 public:
  Conn(const std::string& url, std::int64_t connect_timeout_ms) {
    const std::string timeout = std::to_string(std::max<std::int64_t>(1, (connect_timeout_ms + 999) / 1000));
    const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
    const char* values[] = {url.c_str(), timeout.c_str(), "phasekit", nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);  // expand_dbname: the URL's own settings win
    if (PQstatus(conn_) != CONNECTION_OK) {
      const std::string why = conn_ != nullptr ? first_line(PQerrorMessage(conn_)) : "out of memory";
      PQfinish(conn_);
      conn_ = nullptr;
      throw DbError{Status(Code::unavailable, fmt::format("postgres: {}", why)), true};
    }
    // Notices ("relation … already exists, skipping" from the schema) are not for the service's stderr.
    PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  }
  ~Conn() { PQfinish(conn_); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  /// Runs one statement, prepared on this connection the first time it runs here: the server parses
  /// and plans it once per connection, not once per call. (Every statement is a constant text, so a
  /// connection prepares a bounded few.)
  Rows run(const char* sql, Params p = {}) {
    p.finish();
    const std::string& name = prepared(sql, p);
    PGresult* r = PQexecPrepared(conn_, name.c_str(), p.size(), p.values(), p.lengths(), p.formats(), 1);
    const ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      DbError e = error_of(r);
      PQclear(r);
      throw e;
    }
    return Rows(r);
  }
  /// Several statements without parameters (the schema, BEGIN, COMMIT).
  void exec(const char* sql) {
    PGresult* r = PQexec(conn_, sql);
    const ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      DbError e = error_of(r);
      PQclear(r);
      throw e;
    }
    PQclear(r);
  }
  [[nodiscard]] bool usable() const { return PQstatus(conn_) == CONNECTION_OK; }
  /// Inside a transaction block, failed or not (a ROLLBACK ends it).
  [[nodiscard]] bool in_transaction() const {
    const PGTransactionStatusType t = PQtransactionStatus(conn_);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
  }
  /// False once the server has closed this idle connection: its goodbye (a FATAL error) or the end of
  /// the stream waits on the socket. Nothing else arrives unasked here (no LISTEN; a parameter report
  /// after a reload is read and the connection kept).
  [[nodiscard]] bool still_open() {
    pollfd p{PQsocket(conn_), POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0) {
      if ((p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0 || PQconsumeInput(conn_) == 0) {
        return false;
      }
    }
    return usable() && PQtransactionStatus(conn_) == PQTRANS_IDLE;
  }

  static std::string first_line(const char* text) {
    std::string s = text != nullptr ? text : "";
    if (const auto nl = s.find('\n'); nl != std::string::npos) {
      s.resize(nl);
    }
    return s;
  }

 private:
  const std::string& prepared(const char* sql, const Params& p) {
    if (const auto it = statements_.find(std::string_view(sql)); it != statements_.end()) {
      return it->second;
    }
    std::string name = "phasekit_" + std::to_string(statements_.size());
    PGresult* r = PQprepare(conn_, name.c_str(), sql, p.size(), p.types());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      DbError e = error_of(r);
      PQclear(r);
      throw e;
    }
    PQclear(r);
    return statements_.emplace(sql, std::move(name)).first->second;
  }

  /// UNAVAILABLE for what passes (the connection went, the server shuts down or is busy, a serialization
  /// failure or deadlock), INTERNAL for the rest.
  DbError error_of(PGresult* r) const {
    const char* code = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    const std::string state = code != nullptr ? code : "";
    const std::string why = first_line(r != nullptr ? PQresultErrorMessage(r) : PQerrorMessage(conn_));
    const bool broken = !usable();
    const bool passes = broken || state.starts_with("08") || state.starts_with("57P") || state == "53300" ||
                        state == "40001" || state == "40P01";
    return DbError{Status(passes ? Code::unavailable : Code::internal,
                          fmt::format("postgres: {}", why.empty() ? "connection lost" : why)),
                   broken};
  }

  PGconn* conn_ = nullptr;
  std::map<std::string, std::string, std::less<>> statements_;  // text → its prepared name here
};

struct Options {
  std::string url;
  std::int64_t pool_size = 20;
  std::int64_t idle_timeout_ms = 30000;
  std::int64_t connect_timeout_ms = 2000;
  store_common::Lifetimes lifetimes;
  std::int64_t purge_interval_ms = 60000;
  std::size_t max_pending = 100000;              // calls waiting for a connection at most
  std::size_t max_pending_bytes = 256U << 20;    // and the bytes they carry (entries, records, sessions)
};

/// The audit log's upsert (a record of the same session and call replaces the first), its 15 values
/// from $<first> on, as audit_params() gives them.
std::string audit_upsert(int first) {
  std::string values;
  for (int i = 0; i < 15; ++i) {
    values += fmt::format("{}${}{}", i == 0 ? "" : ", ", first + i, i == 6 || i == 7 ? " = 1" : "");
  }
  return "INSERT INTO phasekit_audit (session, call, \"user\", instance, tool, args, args_truncated, approved, outcome, "
         "exit_code, duration_ms, output_bytes, attempt, requested, finished) VALUES (" +
         values +
         ") ON CONFLICT (session, call) DO UPDATE SET \"user\" = EXCLUDED.\"user\", instance = EXCLUDED.instance, "
         "tool = EXCLUDED.tool, args = EXCLUDED.args, args_truncated = EXCLUDED.args_truncated, "
         "approved = EXCLUDED.approved, outcome = EXCLUDED.outcome, exit_code = EXCLUDED.exit_code, "
         "duration_ms = EXCLUDED.duration_ms, output_bytes = EXCLUDED.output_bytes, attempt = EXCLUDED.attempt, "
         "requested = EXCLUDED.requested, finished = EXCLUDED.finished";
}

/// `p` with a record's 15 values after what it holds (audit_upsert's order).
Params audit_params(Params p, const plugin::AuditRecord& r) {
  p.bytes(r.session_id)
      .bytes(r.call_id)
      .bytes(r.user_id)
      .bytes(r.instance)
      .bytes(r.tool)
      .bytes(r.args)
      .integer(r.args_truncated ? 1 : 0)
      .integer(r.approved ? 1 : 0)
      .bytes(r.outcome)
      .integer(r.exit_code)
      .integer(r.duration_ms)
      .integer(static_cast<std::int64_t>(r.output_bytes))
      .integer(r.attempt)
      .integer(r.requested_unix_ms)
      .integer(r.finished_unix_ms);
  return p;
}

class PostgresStore final : public plugin::StoreStrategy {
 public:
  PostgresStore(HostServices& host, Options options)
      : host_(host),
        log_(host.logger("store.postgres")),
        guard_(host.breaker("postgres")),
        options_(std::move(options)),
        open_(host.metrics().gauge("phasekit_postgres_pool_connections", "Connections the store=postgres pool holds open.")),
        busy_(host.metrics().gauge("phasekit_postgres_pool_busy", "Pool connections running a call.")),
        waiting_(host.metrics().gauge("phasekit_postgres_pool_waiting", "Calls queued for a pool connection.")),
        connects_(host.metrics().counter("phasekit_postgres_pool_connects_total", "Connections the pool opened.")),
        connect_failures_(host.metrics().counter("phasekit_postgres_pool_connect_failures_total",
                                                 "Connections the pool could not open.")) {
    for (std::int64_t i = 0; i < options_.pool_size; ++i) {
      threads_.emplace_back([this, first = i == 0] { worker(first); });  // the first also keeps house
    }
  }
  ~PostgresStore() override {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) {
      t.join();  // each runs what is queued first: nothing accepted is dropped
    }
  }
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  [[nodiscard]] bool shared() const noexcept override { return true; }
  [[nodiscard]] bool reachable() const noexcept override { return guard_.state() != "open"; }

  void put_session(SessionRecord record, std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = store_common::carried(record.cwd, record.env, record.workspace, record.history);
    call<bool>(
        [this, record = std::move(record)](Conn& c) {
          const std::int64_t now = now_ms();
          const std::int64_t expires = now + ttl_for(record.status);
          const Rows r = c.run(
              R"sql(INSERT INTO phasekit_sessions AS s (id, "user", status, cwd, env, backend, workspace, history,
                    instance, updated, expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                  ON CONFLICT (id) DO UPDATE SET "user" = EXCLUDED."user", status = EXCLUDED.status,
                    cwd = EXCLUDED.cwd, env = EXCLUDED.env, backend = EXCLUDED.backend, workspace = EXCLUDED.workspace,
                    history = EXCLUDED.history, instance = EXCLUDED.instance, updated = EXCLUDED.updated,
                    expires = EXCLUDED.expires
                  RETURNING (xmax = 0))sql",
              Params()
                  .bytes(record.id)
                  .bytes(record.user_id)
                  .bytes(record.status)
                  .bytes(record.cwd)
                  .bytes(store_common::env_text(record.env))
                  .bytes(record.backend)
                  .bytes(record.workspace)
                  .bytes(store_common::history_text(record.history))
                  .bytes(record.instance)
                  .integer(record.updated_unix_ms)
                  .integer(expires));
          renew_conversation(c, record.id, expires, now);
          return r.size() == 1 && r.boolean(0, 0);
        },
        [this, done = std::move(done)](Status s, bool created) {
          if (s.ok() && created) {
            counts_.add_session();
          }
          done(std::move(s));
        },
        Tx::wrap, bytes);
  }

  void update_session(std::string id, SessionUpdate update, std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = store_common::carried(update.cwd, update.env, update.workspace, update.history);
    call<bool>(
        [this, id = std::move(id), update = std::move(update)](Conn& c) {
          const std::int64_t now = now_ms();
          const std::int64_t expires = now + ttl_for(update.status.value_or("active"));
          Params p;
          p.bytes(id);
          update.status ? p.bytes(*update.status) : p.null_bytes();
          update.instance ? p.bytes(*update.instance) : p.null_bytes();
          p.integer(update.shell ? 1 : 0)
              .bytes(update.cwd)
              .bytes(store_common::env_text(update.env))
              .bytes(update.backend)
              .bytes(update.workspace)
              .bytes(store_common::history_text(update.history))
              .integer(update.updated_unix_ms)
              .integer(expires)
              .integer(now);
          const Rows r = c.run(R"sql(UPDATE phasekit_sessions SET
                status = coalesce($2, status), instance = coalesce($3, instance),
                cwd = CASE WHEN $4 = 1 THEN $5 ELSE cwd END, env = CASE WHEN $4 = 1 THEN $6 ELSE env END,
                backend = CASE WHEN $4 = 1 THEN $7 ELSE backend END,
                workspace = CASE WHEN $4 = 1 THEN $8 ELSE workspace END,
                history = CASE WHEN $4 = 1 THEN $9 ELSE history END, updated = $10, expires = $11
              WHERE id = $1 AND expires > $12)sql",
                               std::move(p));
          const bool found = r.affected() > 0;
          if (found) {
            renew_conversation(c, id, expires, now);
          }
          return found;
        },
        [done = std::move(done)](Status s, bool found) {
          done(s.ok() && !found ? Status(Code::not_found, "no such session") : std::move(s));
        },
        Tx::wrap, bytes);
  }

  void get_session(std::string id, std::function<void(Status, SessionRecord)> done) noexcept override {
    call<std::pair<Status, SessionRecord>>(
        [this, id = std::move(id)](Conn& c) {
          const Rows r = c.run(R"sql(SELECT "user", status, cwd, env, backend, workspace, history, instance, updated
                                     FROM phasekit_sessions WHERE id = $1 AND expires > $2)sql",
                               Params().bytes(id).integer(now_ms()));
          std::pair<Status, SessionRecord> out{Status(Code::not_found, "no such session"), SessionRecord{}};
          if (r.size() == 1) {
            SessionRecord& rec = out.second;
            rec.id = id;
            rec.user_id = r.bytes(0, 0);
            rec.status = r.bytes(0, 1);
            rec.cwd = r.bytes(0, 2);
            rec.backend = r.bytes(0, 4);
            rec.workspace = r.bytes(0, 5);
            rec.instance = r.bytes(0, 7);
            rec.updated_unix_ms = r.integer(0, 8);
            out.first = store_common::parse_env(id, r.bytes(0, 3), rec.env);
            if (out.first.ok()) {
              out.first = store_common::parse_history(id, r.bytes(0, 6), rec.history);
            }
          }
          return out;
        },
        [done = std::move(done)](Status s, std::pair<Status, SessionRecord> got) {
          if (!s.ok()) {
            done(std::move(s), SessionRecord());
            return;
          }
          done(std::move(got.first), std::move(got.second));
        });
  }

  void remove_session(std::string id, std::function<void(Status)> done) noexcept override {
    call<std::pair<Kept, bool>>(
        [id = std::move(id)](Conn& c) {
          const Kept gone = drop_conversation(c, id);
          const Rows r = c.run("DELETE FROM phasekit_sessions WHERE id = $1", Params().bytes(id));
          return std::pair{gone, r.affected() > 0};
        },
        [this, done = std::move(done)](Status s, std::pair<Kept, bool> gone) {
          if (s.ok()) {
            counts_.forget(gone.first, gone.second ? 1 : 0);
          }
          done(std::move(s));
        });
  }

  void append_conversation(std::string session_id, std::string entry,
                           std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = entry.size();
    call<std::pair<Kept, Kept>>(
        [this, id = std::move(session_id), entry = std::move(entry)](Conn& c) { return append_entry(c, id, entry); },
        [this, done = std::move(done)](Status s, std::pair<Kept, Kept> change) {
          if (s.ok()) {
            counts_.conversation(change.first, change.second);
          }
          done(std::move(s));
        },
        Tx::single, bytes);
  }

  void append_result(std::string session_id, std::string entry, plugin::AuditRecord record,
                     std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = entry.size() + store_common::carried(record);
    call<std::pair<Kept, Kept>>(
        [this, id = std::move(session_id), entry = std::move(entry), record = std::move(record)](Conn& c) {
          return append_entry(c, id, entry, &record);
        },
        [this, done = std::move(done)](Status s, std::pair<Kept, Kept> change) {
          if (s.ok()) {
            counts_.conversation(change.first, change.second);
          }
          done(std::move(s));
        },
        Tx::single, bytes);
  }

  void read_conversation(std::string session_id, plugin::ConversationRange range,
                         std::function<void(Status, plugin::ConversationPage)> done) noexcept override {
    call<plugin::ConversationPage>(
        [this, id = std::move(session_id), range](Conn& c) {
          plugin::ConversationPage page;
          const Rows meta = c.run("SELECT total, dropped FROM phasekit_conversations WHERE session = $1 AND expires > $2",
                                  Params().bytes(id).integer(now_ms()));
          if (meta.size() == 1) {
            page.total = static_cast<std::uint64_t>(meta.integer(0, 0));
            page.dropped = static_cast<std::uint64_t>(meta.integer(0, 1));
          }
          const std::uint64_t end = std::min(std::max(range.before, page.dropped), page.total);
          if (end > page.dropped && range.max_entries > 0) {
            const Rows r = c.run("SELECT entry FROM phasekit_entries WHERE session = $1 AND idx >= $2 AND idx < $3 "
                                 "ORDER BY idx DESC LIMIT $4",
                                 Params()
                                     .bytes(id)
                                     .integer(static_cast<std::int64_t>(page.dropped))
                                     .integer(static_cast<std::int64_t>(end))
                                     .integer(static_cast<std::int64_t>(std::min<std::size_t>(range.max_entries, 1U << 30))));
            std::size_t bytes = 0;
            for (int i = 0; i < r.size(); ++i) {
              std::string entry = r.bytes(i, 0);
              if (!page.entries.empty() && bytes + entry.size() > range.max_bytes) {
                break;
              }
              bytes += entry.size();
              page.entries.push_back(std::move(entry));
            }
          }
          std::reverse(page.entries.begin(), page.entries.end());
          page.first = end - page.entries.size();
          return page;
        },
        std::move(done));
  }

  void append_audit(std::vector<plugin::AuditRecord> records, std::function<void(Status)> done) noexcept override {
    std::size_t bytes = 0;
    for (const auto& r : records) {
      bytes += store_common::carried(r);
    }
    call<bool>(
        [records = std::move(records)](Conn& c) {
          for (const auto& r : records) {
            insert_audit(c, r);
          }
          return true;
        },
        [done = std::move(done)](Status s, bool) { done(std::move(s)); }, Tx::wrap, bytes);
  }

  void read_audit(plugin::AuditQuery query, std::function<void(Status, plugin::AuditPage)> done) noexcept override {
    plugin::AuditRecord at;
    if (!query.cursor.empty() && !plugin::audit_position(query.cursor, at)) {
      boost::asio::post(host_.executor(), [done = std::move(done)] {
        done(Status(Code::bad_request, "audit: not a cursor of this log"), plugin::AuditPage());
      });
      return;
    }
    if (query.cursor.empty()) {
      at.finished_unix_ms = INT64_MIN;
    }
    call<plugin::AuditPage>(
        [query = std::move(query), at = std::move(at)](Conn& c) {
          const std::size_t limit = std::clamp<std::size_t>(query.limit, 1, plugin::kAuditPageMost);
          Params p;
          p.integer(query.since_unix_ms).integer(query.until_unix_ms);
          query.user_id.empty() ? p.null_bytes() : p.bytes(query.user_id);
          query.session_id.empty() ? p.null_bytes() : p.bytes(query.session_id);
          p.integer(at.finished_unix_ms).bytes(at.session_id).bytes(at.call_id).integer(static_cast<std::int64_t>(limit + 1));
          const Rows r = c.run(
              R"sql(SELECT session, call, "user", instance, tool, args, args_truncated, approved, outcome, exit_code,
                      duration_ms, output_bytes, attempt, requested, finished FROM phasekit_audit
                    WHERE finished >= $1 AND finished < $2 AND ($3::BYTEA IS NULL OR "user" = $3)
                      AND ($4::BYTEA IS NULL OR session = $4) AND (finished, session, call) > ($5, $6, $7)
                    ORDER BY finished, session, call LIMIT $8)sql",
              std::move(p));
          plugin::AuditPage page;
          for (int i = 0; i < r.size(); ++i) {
            if (page.records.size() == limit) {
              page.next = plugin::audit_cursor(page.records.back());
              break;
            }
            plugin::AuditRecord a;
            a.session_id = r.bytes(i, 0);
            a.call_id = r.bytes(i, 1);
            a.user_id = r.bytes(i, 2);
            a.instance = r.bytes(i, 3);
            a.tool = r.bytes(i, 4);
            a.args = r.bytes(i, 5);
            a.args_truncated = r.boolean(i, 6);
            a.approved = r.boolean(i, 7);
            a.outcome = r.bytes(i, 8);
            a.exit_code = r.integer(i, 9);
            a.duration_ms = r.integer(i, 10);
            a.output_bytes = static_cast<std::uint64_t>(r.integer(i, 11));
            a.attempt = static_cast<std::uint32_t>(r.integer(i, 12));
            a.requested_unix_ms = r.integer(i, 13);
            a.finished_unix_ms = r.integer(i, 14);
            page.records.push_back(std::move(a));
          }
          return page;
        },
        std::move(done));
  }

  /// This instance's own writes (the shared totals are in the database).
  [[nodiscard]] StoreStats stats() const noexcept override {
    return counts_.stats();
  }

  /// Answered once the calls queued before it are done (the drain of a shutdown).
  void async_shutdown(std::function<void()> done) noexcept override {
    std::unique_lock lock(mutex_);
    if (queue_.empty() && busy_count_ == 0) {
      lock.unlock();
      boost::asio::post(host_.executor(), std::move(done));
      return;
    }
    drained_.push_back(std::move(done));
  }

 private:
  using Kept = store_common::Counts::Kept;
  static constexpr std::chrono::milliseconds kProbeEvery{1000};
  /// How a call's statements commit: between BEGIN and COMMIT (`wrap`), or as one statement that is
  /// its own transaction (`single`: two round trips fewer).
  enum class Tx { wrap, single };
  /// A call: runs on a pool thread inside a transaction, then settles with the transaction's status.
  struct Work {
    std::function<void(Conn&)> run;              // throws DbError
    std::function<void(Status)> settle;          // the transaction's outcome
    Tx tx = Tx::wrap;
    std::size_t bytes = 0;                       // what it carries, counted against max_pending_bytes
  };

  /// Runs `run` in a transaction on a pool connection through the breaker; `done` gets the status and
  /// what `run` returned (a default T when it failed), on the host's executor. With Tx::single, `run`
  /// runs exactly one statement. `bytes`: the data the call carries, for the queue's bound.
  template <class T, class Run, class Done>
  void call(Run run, Done done, Tx tx = Tx::wrap, std::size_t bytes = 0) noexcept {
    auto value = std::make_shared<T>();
    guard_.call(
        [this, run = std::move(run), value, tx, bytes](plugin::Guard::Settle settle) mutable {
          enqueue(Work{[run = std::move(run), value](Conn& c) mutable { *value = run(c); },
                       [settle = std::move(settle)](Status s) { settle(std::move(s)); }, tx, bytes});
        },
        [value, done = std::move(done)](Status s) mutable {
          done(s, s.ok() ? std::move(*value) : T{});
        });
  }

  /// Appends `entry` to the conversation of `id`, then drops the oldest entries while it is over a cap
  /// (the newest always stays); what it kept before and after. One statement, phasekit_append() (the
  /// schema's), run as its own transaction (Tx::single): one round trip.
  /// With `record`, the call's audit record goes in the same statement (a data-modifying WITH).
  std::pair<Kept, Kept> append_entry(Conn& c, const std::string& id, const std::string& entry,
                                     const plugin::AuditRecord* record = nullptr) const {
    static constexpr const char* kAppend = "SELECT * FROM phasekit_append($1, $2, $3, $4, $5, $6)";
    static const std::string with_audit = "WITH audit AS (" + audit_upsert(7) + ") " + kAppend;
    const std::int64_t now = now_ms();
    Params p;
    p.bytes(id)
        .bytes(entry)
        .integer(now)
        .integer(now + options_.lifetimes.ttl_ms)
        .integer(static_cast<std::int64_t>(options_.lifetimes.caps.max_entries))
        .integer(static_cast<std::int64_t>(options_.lifetimes.caps.max_bytes));
    const Rows r = record != nullptr ? c.run(with_audit.c_str(), audit_params(std::move(p), *record))
                                     : c.run(kAppend, std::move(p));
    if (r.size() != 1) {
      throw DbError{Status(Code::internal, "postgres: phasekit_append returned no row"), false};
    }
    const auto kept = [&](int col) {
      return Kept{static_cast<std::uint64_t>(r.integer(0, col)), static_cast<std::uint64_t>(r.integer(0, col + 1))};
    };
    return std::pair{kept(0), kept(2)};
  }

  /// One record of the audit log (a record of the same session and call replaces it).
  static void insert_audit(Conn& c, const plugin::AuditRecord& r) {
    static const std::string sql = audit_upsert(1);
    c.run(sql.c_str(), audit_params(Params(), r));
  }

  void enqueue(Work w) {
    {
      const std::lock_guard lock(mutex_);
      if (queue_.size() < options_.max_pending && queued_bytes_ + w.bytes <= options_.max_pending_bytes &&
          !stopping_) {
        queued_bytes_ += w.bytes;
        queue_.push_back(std::move(w));
        waiting_.set(static_cast<double>(queue_.size()));
        wake_.notify_one();
        return;
      }
    }
    w.settle(Status(Code::unavailable, fmt::format("postgres store: {} calls or {} MiB already wait for a connection",
                                                   options_.max_pending,
                                                   static_cast<double>(options_.max_pending_bytes) / (1 << 20))));
  }

  /// One pool thread: its connection, opened on demand, closed when idle or broken. The housekeeper
  /// (the first thread) also purges what expired, and probes
  /// the server while the breaker is open: once a connection opens again it lets the next call through
  /// (Guard::recovered), so the store is back within a probe interval of the server, not after the
  /// breaker's reset timeout (30 s by default). redis' client does the same when it reconnects.
  void worker(bool housekeeper) {
    std::unique_ptr<Conn> conn;
    auto last_used = Clock::now();
    auto next_purge = Clock::now() + std::chrono::milliseconds(options_.purge_interval_ms);
    auto next_probe = Clock::now() + kProbeEvery;
    for (;;) {
      std::optional<Work> work;
      {
        std::unique_lock lock(mutex_);
        const auto ready = [&] { return stopping_ || !queue_.empty(); };
        std::optional<Clock::time_point> until;  // closing an idle connection, or the next purge
        if (conn) {
          until = last_used + std::chrono::milliseconds(options_.idle_timeout_ms);
        }
        if (housekeeper) {
          until = std::min(until.value_or(next_purge), std::min(next_purge, next_probe));
        }
        if (until) {
          wake_.wait_until(lock, *until, ready);
        } else {
          wake_.wait(lock, ready);
        }
        if (!queue_.empty()) {
          work.emplace(std::move(queue_.front()));
          queue_.pop_front();
          queued_bytes_ -= work->bytes;
          waiting_.set(static_cast<double>(queue_.size()));
          ++busy_count_;
        } else if (stopping_) {
          break;
        }
      }
      if (work) {
        busy_.add(1);
        const Status s = in_transaction(conn, work->run, work->tx);
        busy_.add(-1);
        last_used = Clock::now();
        work->settle(s);
        finish_one();
        continue;
      }
      if (conn && Clock::now() >= last_used + std::chrono::milliseconds(options_.idle_timeout_ms)) {
        conn.reset();  // idle: the pool shrinks, and opens it again when a call comes
        open_.add(-1);
      }
      if (housekeeper && Clock::now() >= next_purge) {
        next_purge = Clock::now() + std::chrono::milliseconds(options_.purge_interval_ms);
        purge(conn);
      }
      if (housekeeper && Clock::now() >= next_probe) {
        next_probe = Clock::now() + kProbeEvery;
        if (guard_.state() == "open" && in_transaction(conn, [](Conn&) {}).ok()) {
          last_used = Clock::now();
          log_.info("store.postgres_reachable", {{"probe", "a new connection answered"}});
          guard_.recovered();
        }
      }
    }
    if (conn) {
      open_.add(-1);
    }
  }

  void finish_one() {
    std::vector<std::function<void()>> drained;
    {
      const std::lock_guard lock(mutex_);
      --busy_count_;
      if (queue_.empty() && busy_count_ == 0) {
        drained.swap(drained_);
      }
    }
    for (auto& d : drained) {
      boost::asio::post(host_.executor(), std::move(d));
    }
  }

  /// Opens the connection if needed, runs `run` in a transaction (`tx`). A broken connection is
  /// dropped: the next call opens another.
  Status in_transaction(std::unique_ptr<Conn>& conn, const std::function<void(Conn&)>& run, Tx tx = Tx::wrap) {
    const auto drop = [&] {
      if (conn) {
        conn.reset();
        open_.add(-1);
      }
    };
    try {
      // The server may have closed this connection while it sat in the pool (a restart, an idle-session
      // timeout): it is replaced before anything runs on it, rather than fail the call. Otherwise every
      // pooled connection would fail one call after a restart, the breaker's probe with it.
      if (conn && !conn->still_open()) {
        drop();
      }
      if (!conn) {
        conn = open();
      }
      if (tx == Tx::single) {
        run(*conn);
        return {};
      }
      conn->exec("BEGIN");
      run(*conn);
      conn->exec("COMMIT");
      return {};
    } catch (const DbError& e) {
      if (conn && (e.broken || !conn->usable())) {
        drop();
      } else if (conn && conn->in_transaction()) {
        try {
          conn->exec("ROLLBACK");
        } catch (const DbError&) {
          drop();
        }
      }
      if (e.status.code() != Code::unavailable) {
        log_.warn("store.postgres_call_failed", {{"error", e.status.message()}});
      }
      return e.status;
    } catch (const std::exception& e) {
      drop();
      return Status(Code::internal, fmt::format("postgres store: {}", e.what()));
    }
  }

  /// A new connection, with the schema brought up to kSchemaVersion if the database's is older.
  std::unique_ptr<Conn> open() {
    std::unique_ptr<Conn> conn;
    try {
      conn = std::make_unique<Conn>(options_.url, options_.connect_timeout_ms);
    } catch (const DbError&) {
      connect_failures_.inc();
      throw;
    }
    connects_.inc();
    const Rows known = conn->run("SELECT to_regclass('phasekit_schema') IS NOT NULL");
    std::int64_t version = 0;
    if (known.size() == 1 && known.boolean(0, 0)) {
      const Rows v = conn->run("SELECT version FROM phasekit_schema");
      version = v.size() == 1 ? v.integer(0, 0) : 0;
    }
    if (version < kSchemaVersion) {
      conn->exec(fmt::format("BEGIN; {} INSERT INTO phasekit_schema (version) VALUES ({}) ON CONFLICT (one) DO UPDATE "
                             "SET version = greatest(phasekit_schema.version, EXCLUDED.version); COMMIT;",
                             kSchema, kSchemaVersion)
                     .c_str());
    }
    open_.add(1);
    return conn;
  }

  void purge(std::unique_ptr<Conn>& conn) {
    const Status s = in_transaction(conn, [this](Conn& c) {
      const std::int64_t now = now_ms();
      const Rows expired = c.run("SELECT session, total - dropped, bytes FROM phasekit_conversations WHERE expires <= $1 "
                                 "LIMIT 256 FOR UPDATE SKIP LOCKED",
                                 Params().integer(now));
      for (int i = 0; i < expired.size(); ++i) {
        const std::string id = expired.bytes(i, 0);
        c.run("DELETE FROM phasekit_entries WHERE session = $1", Params().bytes(id));
        c.run("DELETE FROM phasekit_conversations WHERE session = $1", Params().bytes(id));
      }
      c.run("DELETE FROM phasekit_sessions WHERE id IN (SELECT id FROM phasekit_sessions WHERE expires <= $1 LIMIT 256)",
            Params().integer(now));
      c.run("DELETE FROM phasekit_audit WHERE (session, call) IN (SELECT session, call FROM phasekit_audit WHERE "
            "finished < $1 LIMIT 1024)",
            Params().integer(now - options_.lifetimes.audit_retention_ms));
    });
    if (!s.ok() && s.code() != Code::unavailable) {
      log_.warn("store.postgres_purge_failed", {{"error", s.message()}});
    }
  }

  static Kept drop_conversation(Conn& c, const std::string& id) {
    Kept kept;
    const Rows r = c.run("DELETE FROM phasekit_conversations WHERE session = $1 RETURNING total - dropped, bytes",
                         Params().bytes(id));
    if (r.size() == 1) {
      kept = Kept{static_cast<std::uint64_t>(r.integer(0, 0)), static_cast<std::uint64_t>(r.integer(0, 1))};
    }
    c.run("DELETE FROM phasekit_entries WHERE session = $1", Params().bytes(id));
    return kept;
  }

  static void renew_conversation(Conn& c, const std::string& id, std::int64_t expires, std::int64_t now) {
    c.run("UPDATE phasekit_conversations SET expires = $2 WHERE session = $1 AND expires > $3",
          Params().bytes(id).integer(expires).integer(now));
  }

  std::int64_t ttl_for(std::string_view status) const { return options_.lifetimes.ttl_for(status); }
  std::int64_t now_ms() const { return store_common::now_ms(host_); }

  HostServices& host_;
  Logger& log_;
  plugin::Guard& guard_;
  const Options options_;
  Gauge& open_;
  Gauge& busy_;
  Gauge& waiting_;
  Counter& connects_;
  Counter& connect_failures_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Work> queue_;
  std::size_t queued_bytes_ = 0;
  std::size_t busy_count_ = 0;
  std::vector<std::function<void()>> drained_;
  bool stopping_ = false;
  store_common::Counts counts_;
  std::vector<std::thread> threads_;
};

struct Factory {
  static std::unique_ptr<plugin::StoreStrategy> create(HostServices& host, std::string_view config) {
    PluginOptions o(config);
    Options options;
    options.url = o.text("postgres_url", "");
    if (!options.url.starts_with("postgres://") && !options.url.starts_with("postgresql://")) {
      throw std::invalid_argument("postgres_url: expected postgres://[user[:password]@]host[:port]/database");
    }
    options.pool_size = o.integer("pool_size", 20, 1, 1000);
    options.idle_timeout_ms = o.integer("idle_timeout_ms", 30000, 100, 86400000);
    options.connect_timeout_ms = o.integer("connect_timeout_ms", 2000, 1000, 600000);
    options.lifetimes = store_common::read_lifetimes(o);
    options.purge_interval_ms = o.integer("purge_interval_ms", 60000, 10, 86400000);
    options.max_pending_bytes = static_cast<std::size_t>(
        o.integer("queue_max_bytes", static_cast<std::int64_t>(options.max_pending_bytes), 65536, std::int64_t{1} << 40));
    store_common::ignore_other_stores(o);
    o.finish();
    return std::make_unique<PostgresStore>(host, std::move(options));
  }
};

}  // namespace
}  // namespace phasekit::store_postgres

PHASEKIT_PLUGIN(PHK_KIND_STORE, "postgres", "1.0.0",
                "sessions, conversations and the audit log in PostgreSQL, shared by every instance, through a pool",
                phasekit::store_postgres::Factory)
