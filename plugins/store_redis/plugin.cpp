// store=redis: sessions and conversations in redis, shared by every orchestrator and worker, so a client
// that reconnects to another instance finds its session as it left it.
//
//   <prefix>sess:<id>   hash: user, status, cwd, env (JSON [[name, value], …]), backend, workspace,
//                       history (JSON array), instance, updated. Hash fields are bytes; inside the JSON
//                       ones a string that is not UTF-8 is {"base64": …} (phasekit/bytes.hpp)
//   <prefix>conv:<id>   list of conversation entries (opaque: compressed by the host when enabled),
//                       the newest conversation_max_entries / conversation_max_bytes of them
//   <prefix>convmeta:<id>  hash: bytes (of the list), dropped (entries the caps removed, oldest first)
//   <prefix>audit       sorted set of "<session, NUL escaped>\0<call>" by the time the call finished: the log,
//                       the records in <prefix>audit:rec (JSON) and their users in <prefix>audit:user,
//                       both hashes by the same member; records past audit_retention_ms go as others come
//
// Every key carries a TTL, renewed on each write: ttl_ms while the session is active, the grace period
// plus a minute once it is detached or ended, so sessions whose instance died without ending them go
// away by themselves. Every call goes through the host's "redis" circuit breaker.
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <type_traits>

#include "guarded.hpp"
#include "io_thread.hpp"
#include "phasekit/bytes.hpp"
#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"
#include "shell_fields.hpp"
#include "store_options.hpp"

namespace phasekit::store_redis {
namespace {

using plugin::HostServices;
using plugin::SessionRecord;
using plugin::SessionUpdate;
using plugin::StoreStats;
using json = nlohmann::json;
using redis_plugins::guarded;
using redis_plugins::Script;

/// ARGV: prefix, id, ttl_ms, then field/value pairs → writes them, renews the TTLs. With `only_if_exists`
/// (first ARGV "1") nothing happens unless the session exists, and 0 is returned.
const Script kWrite(R"lua(
local p, id, ttl = ARGV[2], ARGV[3], ARGV[4]
local sk = p .. 'sess:' .. id
if ARGV[1] == '1' and redis.call('EXISTS', sk) == 0 then return 0 end
if ARGV[1] == '0' then redis.call('DEL', sk) end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('HSET', sk, unpack(fields)) end
redis.call('PEXPIRE', sk, ttl)
if redis.call('EXISTS', p .. 'conv:' .. id) == 1 then redis.call('PEXPIRE', p .. 'conv:' .. id, ttl) end
if redis.call('EXISTS', p .. 'convmeta:' .. id) == 1 then redis.call('PEXPIRE', p .. 'convmeta:' .. id, ttl) end
return 1
)lua");

/// ARGV: prefix, id, ttl_ms, max_entries, max_bytes, entry; sets n, the list's length. Appends, then
/// drops the oldest entries while the list is over either cap (the newest always stays).
constexpr std::string_view kAppendBody = R"lua(
local ck, mk = ARGV[1] .. 'conv:' .. ARGV[2], ARGV[1] .. 'convmeta:' .. ARGV[2]
local maxn, maxb = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = redis.call('RPUSH', ck, ARGV[6])
local bytes = redis.call('HINCRBY', mk, 'bytes', #ARGV[6])
local dropped = 0
while n > 1 and (n > maxn or bytes > maxb) do
  bytes = bytes - #redis.call('LPOP', ck)
  n = n - 1
  dropped = dropped + 1
end
if dropped > 0 then
  redis.call('HSET', mk, 'bytes', bytes)
  redis.call('HINCRBY', mk, 'dropped', dropped)
end
redis.call('PEXPIRE', ck, ARGV[3])
redis.call('PEXPIRE', mk, ARGV[3])
)lua";

/// ARGV from index `first` on: (member, finished, record, user) per record, where member is
/// audit_member(session, call); `cutoff` (ms): older records go, at most 1,000 ('' for none: one result in
/// kTrimEvery trims, the others leave it to it). One record per member: a record written again replaces
/// the first. Sets old, the records that went.
constexpr std::string_view kAuditBody = R"lua(
local z, h, u = ARGV[1] .. 'audit', ARGV[1] .. 'audit:rec', ARGV[1] .. 'audit:user'
for i = first, #ARGV, 4 do
  redis.call('ZADD', z, ARGV[i + 1], ARGV[i])
  redis.call('HSET', h, ARGV[i], ARGV[i + 2])
  redis.call('HSET', u, ARGV[i], ARGV[i + 3])
end
local old = {}
if cutoff ~= '' then old = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. cutoff, 'LIMIT', 0, 1000) end
if #old > 0 then
  redis.call('ZREM', z, unpack(old))
  redis.call('HDEL', h, unpack(old))
  redis.call('HDEL', u, unpack(old))
end
)lua";

/// ARGV as kAppendBody's → the list's length.
const Script kAppend(std::string(kAppendBody) + "return n\n");

/// One result's script in this many trims the audit log (result_cutoff()).
constexpr std::uint64_t kTrimEvery = 64;

/// ARGV: kAppendBody's (1 to 6), the audit log's cutoff, then one record as kAuditBody's → the list's
/// length. A call's result: its conversation entry and its audit record in one script (one round trip,
/// and no client sees one without the other).
const Script kAppendResult(std::string(kAppendBody) + "local cutoff, first = ARGV[7], 8\n" + std::string(kAuditBody) +
                           "return n\n");

/// ARGV: prefix, id, before (-1: the newest), max_entries, max_bytes → {dropped, first, total, entries…}:
/// the newest entries below index `before` that fit (at least one when there is one).
const Script kPage(R"lua(
local ck = ARGV[1] .. 'conv:' .. ARGV[2]
local dropped = tonumber(redis.call('HGET', ARGV[1] .. 'convmeta:' .. ARGV[2], 'dropped') or '0')
local n = redis.call('LLEN', ck)
local before, maxn, maxb = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local e = n
if before >= 0 then e = math.min(math.max(before - dropped, 0), n) end
local b = math.max(e - maxn, 0)
local items = {}
if e > b then items = redis.call('LRANGE', ck, b, e - 1) end
local keep, bytes = 0, 0
for i = #items, 1, -1 do
  if keep > 0 and bytes + #items[i] > maxb then break end
  bytes = bytes + #items[i]
  keep = keep + 1
end
local out = {dropped, dropped + e - keep, dropped + n}
for i = #items - keep + 1, #items do out[#out + 1] = items[i] end
return out
)lua");

/// ARGV: prefix, cutoff, then records as kAuditBody's → how many records went.
const Script kAuditAppend("local cutoff, first = ARGV[2], 3\n" + std::string(kAuditBody) + "return #old\n");

/// ARGV: prefix, since, until, user ('' any), the prefix of the session's members ('' any), limit, cursor
/// finished ('' none), cursor member → {next finished, next member, record…}: the records in
/// (finished, member) order after the cursor, at most `limit`, scanning at most 10,000 members; next is
/// '' when the listing is done.
const Script kAuditRead(R"lua(
local z, h, u = ARGV[1] .. 'audit', ARGV[1] .. 'audit:rec', ARGV[1] .. 'audit:user'
local since, till, user, session = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local limit, cs, cm = tonumber(ARGV[6]), ARGV[7], ARGV[8]
-- Byte order, as the sorted set orders members (Lua's < follows the server's locale).
local function less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local rank
local past = cs == ''  -- true once the scan is past the cursor
if cs == '' then
  rank = redis.call('ZCOUNT', z, '-inf', '(' .. ARGV[2])
else
  local r = redis.call('ZRANK', z, cm)
  local s = redis.call('ZSCORE', z, cm)
  if r and s and tonumber(s) == tonumber(cs) then
    rank, past = r + 1, true
  else
    rank = redis.call('ZCOUNT', z, '-inf', '(' .. cs)
  end
end
local out = {'', ''}
local found, scanned = 0, 0
local last_s, last_m = '', ''
while scanned < 10000 do
  local batch = redis.call('ZRANGE', z, rank, rank + 499, 'WITHSCORES')
  if #batch == 0 then return out end
  for i = 1, #batch, 2 do
    local m, s = batch[i], batch[i + 1]
    local sn = tonumber(s)
    if sn >= till then return out end
    scanned = scanned + 1
    past = past or sn > tonumber(cs) or (sn == tonumber(cs) and less(cm, m))
    if past and sn >= since and (session == '' or string.sub(m, 1, #session) == session)
       and (user == '' or redis.call('HGET', u, m) == user) then
      if found == limit then
        out[1], out[2] = last_s, last_m
        return out
      end
      found = found + 1
      out[#out + 1] = redis.call('HGET', h, m)
      last_s, last_m = s, m
    elseif scanned >= 10000 then
      out[1], out[2] = s, m
      return out
    end
  end
  rank = rank + #batch / 2
end
if found > 0 or last_s ~= '' then out[1], out[2] = last_s, last_m end
return out
)lua");

/// The sorted-set member of a call: the session with its NUL and \x01 bytes escaped (\x01\x01 and
/// \x01\x02), a NUL, the call. Unambiguous whatever bytes the ids hold, and ordered as (session, call).
std::string audit_session_prefix(std::string_view session) {
  std::string out;
  out.reserve(session.size() + 1);
  for (const char c : session) {
    if (c == '\0' || c == '\x01') {
      out += '\x01';
      out += c == '\0' ? '\x01' : '\x02';
    } else {
      out += c;
    }
  }
  out += '\0';
  return out;
}

std::string audit_member(std::string_view session, std::string_view call) {
  return audit_session_prefix(session) + std::string(call);
}

/// audit_member() read back; false when `member` is not one.
bool audit_ids(std::string_view member, std::string& session, std::string& call) {
  session.clear();
  for (std::size_t i = 0; i < member.size(); ++i) {
    if (member[i] == '\0') {
      call.assign(member.substr(i + 1));
      return true;
    }
    if (member[i] == '\x01') {
      if (i + 1 == member.size() || (member[i + 1] != '\x01' && member[i + 1] != '\x02')) {
        return false;
      }
      session += member[++i] == '\x01' ? '\0' : '\x01';
    } else {
      session += member[i];
    }
  }
  return false;
}

/// An audit record as store=redis keeps it: JSON, its strings byte-safe.
std::string audit_text(const plugin::AuditRecord& r) {
  const nlohmann::json j{{"call", bytes::to_json(r.call_id)},    {"user", bytes::to_json(r.user_id)},
                         {"session", bytes::to_json(r.session_id)}, {"instance", bytes::to_json(r.instance)},
                         {"tool", bytes::to_json(r.tool)},        {"args", bytes::to_json(r.args)},
                         {"argsTruncated", r.args_truncated},     {"approved", r.approved},
                         {"outcome", bytes::to_json(r.outcome)},  {"exitCode", r.exit_code},
                         {"durationMs", r.duration_ms},           {"outputBytes", r.output_bytes},
                         {"attempt", r.attempt},                  {"requested", r.requested_unix_ms},
                         {"finished", r.finished_unix_ms}};
  return bytes::dump(j);
}

Status parse_audit(std::string_view text, plugin::AuditRecord& r) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  const auto number = [&](const char* k, auto& out) {
    if (!j.contains(k) || !j[k].is_number_integer()) {
      return false;
    }
    out = j[k].get<std::remove_reference_t<decltype(out)>>();
    return true;
  };
  if (j.is_object() && j.contains("call") && bytes::from_json(j["call"], r.call_id) && j.contains("user") &&
      bytes::from_json(j["user"], r.user_id) && j.contains("session") && bytes::from_json(j["session"], r.session_id) &&
      j.contains("instance") && bytes::from_json(j["instance"], r.instance) && j.contains("tool") &&
      bytes::from_json(j["tool"], r.tool) && j.contains("args") && bytes::from_json(j["args"], r.args) &&
      j.contains("outcome") && bytes::from_json(j["outcome"], r.outcome) && j.value("argsTruncated", json()).is_boolean() &&
      j.value("approved", json()).is_boolean() && number("exitCode", r.exit_code) &&
      number("durationMs", r.duration_ms) && number("outputBytes", r.output_bytes) && number("attempt", r.attempt) &&
      number("requested", r.requested_unix_ms) && number("finished", r.finished_unix_ms)) {
    r.args_truncated = j["argsTruncated"].get<bool>();
    r.approved = j["approved"].get<bool>();
    return {};
  }
  return Status(Code::internal, "audit: a record in redis is not one this store wrote");
}

struct Options {
  redis::Endpoint endpoint;
  std::string prefix = "phasekit:";
  store_common::Lifetimes lifetimes;
};

class RedisStore final : public plugin::StoreStrategy {
 public:
  RedisStore(HostServices& host, Options options)
      : host_(host), log_(host.logger("store.redis")), guard_(host.breaker("redis")), options_(std::move(options)) {
    redis::ClientOptions co;
    co.endpoint = options_.endpoint;
    co.name = "store";
    client_ = redis::Client::create(io_.executor(), co, log_);  // io_thread.hpp says why not the host's
    client_->on_state([&guard = guard_](bool up) {
      if (up) {
        guard.recovered();  // redis answers again: an open breaker probes now (plugin::Guard)
      }
    });
    client_->start();
  }
  ~RedisStore() override {
    client_->stop();
    client_.reset();
    io_.drain();
  }
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  /// Every instance reads the same redis.
  [[nodiscard]] bool shared() const noexcept override { return true; }
  [[nodiscard]] bool reachable() const noexcept override { return guard_.state() != "open"; }
  void put_session(SessionRecord record, std::function<void(Status)> done) noexcept override {
    std::vector<std::string> argv{"EVALSHA",        kWrite.sha1(), "0", "0", options_.prefix, record.id,
                                  ttl_for(record.status)};
    append_fields(argv, record.status, record.instance, true, record);
    argv.insert(argv.end(), {"user", record.user_id});
    write(std::move(argv), std::move(done), true);
  }

  void update_session(std::string id, SessionUpdate update, std::function<void(Status)> done) noexcept override {
    std::vector<std::string> argv{"EVALSHA", kWrite.sha1(), "0", "1", options_.prefix, id,
                                  ttl_for(update.status.value_or("active"))};
    SessionRecord shell;
    if (update.shell) {
      shell.cwd = std::move(update.cwd);
      shell.env = std::move(update.env);
      shell.backend = std::move(update.backend);
      shell.workspace = std::move(update.workspace);
      shell.history = std::move(update.history);
    }
    append_fields(argv, update.status.value_or(""), update.instance.value_or(""), update.shell, shell);
    if (update.status) {
      argv.insert(argv.end(), {"status", *update.status});
    }
    if (update.instance) {
      argv.insert(argv.end(), {"instance", *update.instance});
    }
    argv.insert(argv.end(), {"updated", std::to_string(update.updated_unix_ms)});
    write(std::move(argv), std::move(done), false);
  }

  void get_session(std::string id, std::function<void(Status, SessionRecord)> done) noexcept override {
    guarded(guard_, client_, {"HGETALL", options_.prefix + "sess:" + id},
            [id, done = std::move(done)](Status s, redis::Reply r) {
              SessionRecord record;
              if (s.ok() && (!r.is_array() || r.elements().empty())) {
                s = Status(Code::not_found, "no such session");
              }
              if (s.ok()) {
                s = parse(id, r.elements(), record);
              }
              done(std::move(s), std::move(record));
            });
  }

  void remove_session(std::string id, std::function<void(Status)> done) noexcept override {
    guarded(guard_, client_,
            {"DEL", options_.prefix + "sess:" + id, options_.prefix + "conv:" + id, options_.prefix + "convmeta:" + id},
            [done = std::move(done)](Status s, redis::Reply) { done(std::move(s)); });
  }

  void append_conversation(std::string session_id, std::string entry, std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = entry.size();
    std::vector<std::string> argv = append_argv(kAppend, std::move(session_id), std::move(entry));
    guarded(guard_, client_, kAppend, std::move(argv), [this, bytes, done = std::move(done)](Status s, redis::Reply) {
      if (s.ok()) {
        counts_.conversation({}, {1, bytes});
      }
      done(std::move(s));
    });
  }

  void append_result(std::string session_id, std::string entry, plugin::AuditRecord record,
                     std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = entry.size();
    std::vector<std::string> argv = append_argv(kAppendResult, std::move(session_id), std::move(entry));
    argv.push_back(result_cutoff());
    push_audit(argv, record);
    guarded(guard_, client_, kAppendResult, std::move(argv), [this, bytes, done = std::move(done)](Status s, redis::Reply) {
      if (s.ok()) {
        counts_.conversation({}, {1, bytes});
      }
      done(std::move(s));
    });
  }

  void read_conversation(std::string session_id, plugin::ConversationRange range,
                         std::function<void(Status, plugin::ConversationPage)> done) noexcept override {
    const std::string before = range.before == UINT64_MAX ? "-1" : std::to_string(range.before);
    guarded(guard_, client_, kPage,
            {"EVALSHA", kPage.sha1(), "0", options_.prefix, session_id, before, std::to_string(range.max_entries),
             std::to_string(range.max_bytes)},
            [done = std::move(done)](Status s, redis::Reply r) {
              plugin::ConversationPage page;
              if (s.ok() && (!r.is_array() || r.elements().size() < 3)) {
                s = Status(Code::internal, "conversation page: unexpected reply");
              }
              if (s.ok()) {
                auto& e = r.elements();
                page.dropped = static_cast<std::uint64_t>(std::max(0LL, e[0].integer()));
                page.first = static_cast<std::uint64_t>(std::max(0LL, e[1].integer()));
                page.total = static_cast<std::uint64_t>(std::max(0LL, e[2].integer()));
                page.entries.reserve(e.size() - 3);
                for (std::size_t i = 3; i < e.size(); ++i) {
                  page.entries.push_back(e[i].take_str());
                }
              }
              done(std::move(s), std::move(page));
            });
  }

  void append_audit(std::vector<plugin::AuditRecord> records, std::function<void(Status)> done) noexcept override {
    std::vector<std::string> argv{"EVALSHA", kAuditAppend.sha1(), "0", options_.prefix, audit_cutoff()};
    argv.reserve(argv.size() + 4 * records.size());
    for (const auto& r : records) {
      push_audit(argv, r);
    }
    guarded(guard_, client_, kAuditAppend, std::move(argv),
            [done = std::move(done)](Status s, redis::Reply) { done(std::move(s)); });
  }

  void read_audit(plugin::AuditQuery query, std::function<void(Status, plugin::AuditPage)> done) noexcept override {
    plugin::AuditRecord at;
    if (!query.cursor.empty() && !plugin::audit_position(query.cursor, at)) {
      boost::asio::post(host_.executor(), [done = std::move(done)] {
        done(Status(Code::bad_request, "audit: not a cursor of this log"), plugin::AuditPage());
      });
      return;
    }
    const std::size_t limit = std::clamp<std::size_t>(query.limit, 1, plugin::kAuditPageMost);
    guarded(guard_, client_, kAuditRead,
            {"EVALSHA", kAuditRead.sha1(), "0", options_.prefix, std::to_string(query.since_unix_ms),
             std::to_string(query.until_unix_ms), query.user_id,
             query.session_id.empty() ? std::string() : audit_session_prefix(query.session_id), std::to_string(limit),
             query.cursor.empty() ? "" : std::to_string(at.finished_unix_ms), audit_member(at.session_id, at.call_id)},
            [done = std::move(done)](Status s, redis::Reply r) {
              plugin::AuditPage page;
              if (s.ok() && (!r.is_array() || r.elements().size() < 2)) {
                s = Status(Code::internal, "audit: unexpected reply");
              }
              if (s.ok()) {
                auto& e = r.elements();
                for (std::size_t i = 2; i < e.size() && s.ok(); ++i) {
                  plugin::AuditRecord rec;
                  s = parse_audit(e[i].str(), rec);
                  page.records.push_back(std::move(rec));
                }
                if (s.ok() && !e[0].str().empty()) {
                  plugin::AuditRecord next;
                  next.finished_unix_ms = std::strtoll(e[0].str().c_str(), nullptr, 10);
                  if (audit_ids(e[1].str(), next.session_id, next.call_id)) {
                    page.next = plugin::audit_cursor(next);
                  } else {
                    s = Status(Code::internal, "audit: a member in redis is not one this store wrote");
                  }
                }
              }
              if (!s.ok()) {
                page = plugin::AuditPage();
              }
              done(std::move(s), std::move(page));
            });
  }

  /// This instance's own writes (the shared totals live in redis: `redis-cli --scan --pattern 'phasekit:sess:*'`).
  [[nodiscard]] StoreStats stats() const noexcept override {
    return counts_.stats();
  }

  void async_shutdown(std::function<void()> done) noexcept override {
    boost::asio::post(host_.executor(), std::move(done));
  }

 private:
  std::string ttl_for(std::string_view status) const {
    return std::to_string(options_.lifetimes.ttl_for(status));
  }

  /// The EVALSHA of `script` with kAppendBody's arguments.
  std::vector<std::string> append_argv(const Script& script, std::string session_id, std::string entry) const {
    return {"EVALSHA",
            script.sha1(),
            "0",
            options_.prefix,
            std::move(session_id),
            std::to_string(options_.lifetimes.ttl_ms),
            std::to_string(options_.lifetimes.caps.max_entries),
            std::to_string(options_.lifetimes.caps.max_bytes),
            std::move(entry)};
  }

  /// Audit records finished before this (ms) go.
  std::string audit_cutoff() const {
    return std::to_string(store_common::now_ms(host_) - options_.lifetimes.audit_retention_ms);
  }
  /// audit_cutoff() for one result in kTrimEvery, '' (no trim) for the others: a trim takes up to 1,000
  /// records, so the log still sheds far faster than results come, and a result's script runs one
  /// redis command less.
  std::string result_cutoff() {
    return results_.fetch_add(1, std::memory_order_relaxed) % kTrimEvery == 0 ? audit_cutoff() : std::string();
  }

  /// One record's arguments, as kAuditBody reads them.
  static void push_audit(std::vector<std::string>& argv, const plugin::AuditRecord& r) {
    argv.push_back(audit_member(r.session_id, r.call_id));
    argv.push_back(std::to_string(r.finished_unix_ms));
    argv.push_back(audit_text(r));
    argv.push_back(r.user_id);
  }

  static void append_fields(std::vector<std::string>& argv, const std::string& status, const std::string& instance,
                            bool shell, const SessionRecord& r) {
    if (!status.empty() && argv[3] == "0") {
      argv.insert(argv.end(), {"status", status});
    }
    if (!instance.empty() && argv[3] == "0") {
      argv.insert(argv.end(), {"instance", instance});
    }
    if (shell) {
      argv.insert(argv.end(), {"cwd", r.cwd, "env", store_common::env_text(r.env), "backend", r.backend, "workspace",
                               r.workspace, "history", store_common::history_text(r.history)});
    }
    if (argv[3] == "0") {
      argv.insert(argv.end(), {"updated", std::to_string(r.updated_unix_ms)});
    }
  }

  void write(std::vector<std::string> argv, std::function<void(Status)> done, bool creates) {
    guarded(guard_, client_, kWrite, std::move(argv), [this, creates, done = std::move(done)](Status s, redis::Reply r) {
      if (s.ok() && r.integer() == 0) {
        s = Status(Code::not_found, "no such session");
      }
      if (s.ok() && creates) {
        counts_.add_session();
      }
      done(std::move(s));
    });
  }

  static Status parse(const std::string& id, const std::vector<redis::Reply>& kv, SessionRecord& out) {
    out.id = id;
    for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
      const std::string& k = kv[i].str();
      const std::string& v = kv[i + 1].str();
      if (k == "user") {
        out.user_id = v;
      } else if (k == "status") {
        out.status = v;
      } else if (k == "cwd") {
        out.cwd = v;
      } else if (k == "backend") {
        out.backend = v;
      } else if (k == "workspace") {
        out.workspace = v;
      } else if (k == "instance") {
        out.instance = v;
      } else if (k == "updated") {
        out.updated_unix_ms = std::strtoll(v.c_str(), nullptr, 10);
      } else if (k == "env") {
        if (Status s = store_common::parse_env(id, v, out.env); !s.ok()) {
          return s;
        }
      } else if (k == "history") {
        if (Status s = store_common::parse_history(id, v, out.history); !s.ok()) {
          return s;
        }
      }
    }
    return {};
  }

  HostServices& host_;
  Logger& log_;
  plugin::Guard& guard_;
  const Options options_;
  redis_plugins::IoThread io_;
  std::shared_ptr<redis::Client> client_;
  store_common::Counts counts_;  // this instance's own writes
  std::atomic<std::uint64_t> results_{0};  // append_result calls, for result_cutoff()
};

struct Factory {
  static std::unique_ptr<plugin::StoreStrategy> create(HostServices& host, std::string_view config) {
    PluginOptions o(config);
    Options options;
    options.endpoint = redis_plugins::endpoint_of(o.text("redis_url", "redis://127.0.0.1:6379"),
                                                   o.text("redis_password", ""));
    options.prefix = o.text("prefix", "phasekit:");
    options.lifetimes = store_common::read_lifetimes(o);
    store_common::ignore_other_stores(o);
    o.finish();
    return std::make_unique<RedisStore>(host, std::move(options));
  }
};

}  // namespace
}  // namespace phasekit::store_redis

PHASEKIT_PLUGIN(PHK_KIND_STORE, "redis", "1.0.0",
                "sessions and conversations in redis, shared by every instance, with TTL cleanup",
                phasekit::store_redis::Factory)
