// store=redis: sessions and conversations in redis, shared by every orchestrator and worker, so a client
// that reconnects to another instance finds its session as it left it.
//
//   <prefix>sess:<id>   hash: user, status, cwd, env (JSON [[name, value], …]), backend, workspace,
//                       history (JSON array), instance, updated
//   <prefix>conv:<id>   list of conversation entries (opaque: compressed by the host when enabled)
//
// Every key carries a TTL, renewed on each write: ttl_ms while the session is active, the grace period
// plus a minute once it is detached or ended, so sessions whose instance died without ending them go
// away by themselves. Every call goes through the host's "redis" circuit breaker.
#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <atomic>

#include "guarded.hpp"
#include "io_thread.hpp"
#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"

namespace phasekit::store_redis {
namespace {

using json = nlohmann::json;
using plugin::HostServices;
using plugin::SessionRecord;
using plugin::SessionUpdate;
using plugin::StoreStats;
using redis_plugins::guarded;

/// ARGV: prefix, id, ttl_ms, then field/value pairs → writes them, renews the TTLs. With `only_if_exists`
/// (first ARGV "1") nothing happens unless the session exists, and 0 is returned.
constexpr const char* kWrite = R"lua(
local p, id, ttl = ARGV[2], ARGV[3], ARGV[4]
local sk = p .. 'sess:' .. id
if ARGV[1] == '1' and redis.call('EXISTS', sk) == 0 then return 0 end
if ARGV[1] == '0' then redis.call('DEL', sk) end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('HSET', sk, unpack(fields)) end
redis.call('PEXPIRE', sk, ttl)
if redis.call('EXISTS', p .. 'conv:' .. id) == 1 then redis.call('PEXPIRE', p .. 'conv:' .. id, ttl) end
return 1
)lua";

/// ARGV: prefix, id, ttl_ms, max_entries, entry → the list's length.
constexpr const char* kAppend = R"lua(
local ck = ARGV[1] .. 'conv:' .. ARGV[2]
local n = redis.call('RPUSH', ck, ARGV[5])
if n > tonumber(ARGV[4]) then redis.call('LTRIM', ck, -tonumber(ARGV[4]), -1) end
redis.call('PEXPIRE', ck, ARGV[3])
return n
)lua";

struct Options {
  redis::Endpoint endpoint;
  std::string prefix = "phasekit:";
  std::int64_t ttl_ms = 86400000;
  std::int64_t grace_ms = 30000;
  std::int64_t max_entries = 10000;
};

json env_json(const std::vector<std::pair<std::string, std::string>>& env) {
  json out = json::array();
  for (const auto& [k, v] : env) {
    out.push_back(json::array({k, v}));
  }
  return out;
}

class RedisStore final : public plugin::StoreStrategy {
 public:
  RedisStore(HostServices& host, Options options)
      : host_(host), log_(host.logger("store.redis")), guard_(host.breaker("redis")), options_(std::move(options)) {
    redis::ClientOptions co;
    co.endpoint = options_.endpoint;
    co.name = "store";
    client_ = redis::Client::create(io_.executor(), co, log_);  // io_thread.hpp says why not the host's
    client_->start();
  }
  ~RedisStore() override {
    client_->stop();
    client_.reset();
    io_.drain();
  }
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  void put_session(SessionRecord record, std::function<void(Status)> done) noexcept override {
    std::vector<std::string> argv{"EVAL",          kWrite, "0", "0", options_.prefix, record.id,
                                  ttl_for(record.status)};
    append_fields(argv, record.status, record.instance, true, record);
    argv.insert(argv.end(), {"user", record.user_id});
    write(std::move(argv), std::move(done), true);
  }

  void update_session(std::string id, SessionUpdate update, std::function<void(Status)> done) noexcept override {
    std::vector<std::string> argv{"EVAL", kWrite, "0", "1", options_.prefix, id,
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
    guarded(guard_, client_, {"DEL", options_.prefix + "sess:" + id, options_.prefix + "conv:" + id},
            [done = std::move(done)](Status s, redis::Reply) { done(std::move(s)); });
  }

  void append_conversation(std::string session_id, std::string entry, std::function<void(Status)> done) noexcept override {
    const std::size_t bytes = entry.size();
    guarded(guard_, client_,
            {"EVAL", kAppend, "0", options_.prefix, session_id, std::to_string(options_.ttl_ms),
             std::to_string(options_.max_entries), std::move(entry)},
            [this, bytes, done = std::move(done)](Status s, redis::Reply) {
              if (s.ok()) {
                ++entries_;
                bytes_ += bytes;
              }
              done(std::move(s));
            });
  }

  void read_conversation(std::string session_id,
                         std::function<void(Status, std::vector<std::string>)> done) noexcept override {
    guarded(guard_, client_, {"LRANGE", options_.prefix + "conv:" + session_id, "0", "-1"},
            [done = std::move(done)](Status s, redis::Reply r) {
              std::vector<std::string> entries;
              if (s.ok() && r.is_array()) {
                entries.reserve(r.elements().size());
                for (auto& e : r.elements()) {
                  entries.push_back(e.take_str());
                }
              }
              done(std::move(s), std::move(entries));
            });
  }

  /// This instance's own writes (the shared totals live in redis: `redis-cli --scan --pattern 'phasekit:sess:*'`).
  [[nodiscard]] StoreStats stats() const noexcept override {
    return StoreStats{sessions_.load(), entries_.load(), bytes_.load()};
  }

  void async_shutdown(std::function<void()> done) noexcept override {
    boost::asio::post(host_.executor(), std::move(done));
  }

 private:
  std::string ttl_for(const std::string& status) const {
    return std::to_string(status == "active" ? options_.ttl_ms : options_.grace_ms + 60000);
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
      argv.insert(argv.end(), {"cwd", r.cwd, "env", env_json(r.env).dump(), "backend", r.backend, "workspace",
                               r.workspace, "history", json(r.history).dump(-1, ' ', false, json::error_handler_t::replace)});
    }
    if (argv[3] == "0") {
      argv.insert(argv.end(), {"updated", std::to_string(r.updated_unix_ms)});
    }
  }

  void write(std::vector<std::string> argv, std::function<void(Status)> done, bool creates) {
    guarded(guard_, client_, std::move(argv), [this, creates, done = std::move(done)](Status s, redis::Reply r) {
      if (s.ok() && r.integer() == 0) {
        s = Status(Code::not_found, "no such session");
      }
      if (s.ok() && creates) {
        ++sessions_;
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
      } else if (k == "env" || k == "history") {
        const json j = json::parse(v, nullptr, false);
        if (!j.is_array()) {
          return Status(Code::internal, fmt::format("session {}: field {} is not a JSON array", id, k));
        }
        for (const auto& item : j) {
          if (k == "history" && item.is_string()) {
            out.history.push_back(item.get<std::string>());
          } else if (k == "env" && item.is_array() && item.size() == 2 && item[0].is_string() && item[1].is_string()) {
            out.env.emplace_back(item[0].get<std::string>(), item[1].get<std::string>());
          } else {
            return Status(Code::internal, fmt::format("session {}: malformed {} entry", id, k));
          }
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
  std::atomic<std::uint64_t> sessions_{0};
  std::atomic<std::uint64_t> entries_{0};
  std::atomic<std::uint64_t> bytes_{0};
};

struct Factory {
  static std::unique_ptr<plugin::StoreStrategy> create(HostServices& host, std::string_view config) {
    PluginOptions o(config);
    Options options;
    options.endpoint = redis_plugins::endpoint_of(o.text("redis_url", "redis://127.0.0.1:6379"),
                                                   o.text("redis_password", ""));
    options.prefix = o.text("prefix", "phasekit:");
    options.ttl_ms = o.integer("ttl_ms", 86400000, 1000, 365LL * 86400000);
    options.grace_ms = o.integer("session_grace_ms", 30000, 0, 86400000);
    options.max_entries = o.integer("max_conversation_entries", 10000, 1, 10000000);
    o.finish();
    return std::make_unique<RedisStore>(host, std::move(options));
  }
};

}  // namespace
}  // namespace phasekit::store_redis

PHASEKIT_PLUGIN(PHK_KIND_STORE, "redis", "1.0.0",
                "sessions and conversations in redis, shared by every instance, with TTL cleanup",
                phasekit::store_redis::Factory)
