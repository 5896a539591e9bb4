// store=memory: sessions, conversations and the audit log (its newest 100,000 records) in this process's
// memory (one instance only).
#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <tuple>

#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"

namespace phasekit::builtin {
namespace {

using plugin::HostServices;
using plugin::SessionRecord;
using plugin::StoreStats;

/// One session's conversation, within the caps: the oldest entries go first (the newest always stays).
struct Conversation {
  std::deque<std::string> entries;
  std::uint64_t bytes = 0;
  std::uint64_t dropped = 0;
};

/// A session record packed into one string (issue 16: every connected session has a record, and a
/// SessionRecord with its strings costs about 400 bytes where its content is about 80). Each field in
/// SessionRecord's order: a string as its LEB128 length and its bytes; a list as its LEB128 count and
/// its strings; updated_unix_ms as 8 bytes. The id comes first, so that the set orders by it.
class PackedRecord {
 public:
  static std::string pack(const SessionRecord& r) {
    static_assert(sizeof(SessionRecord) == 7 * sizeof(std::string) + 2 * sizeof(std::vector<std::string>) + 8,
                  "SessionRecord changed: pack and unpack its new field");
    std::string out;
    put(out, r.id);
    put(out, r.user_id);
    put(out, r.status);
    put(out, r.cwd);
    put_size(out, r.env.size());
    for (const auto& [name, value] : r.env) {
      put(out, name);
      put(out, value);
    }
    put(out, r.backend);
    put(out, r.workspace);
    put_size(out, r.history.size());
    for (const auto& line : r.history) {
      put(out, line);
    }
    put(out, r.instance);
    const auto ms = static_cast<std::uint64_t>(r.updated_unix_ms);
    for (int i = 0; i < 8; ++i) {
      out.push_back(static_cast<char>((ms >> (8 * i)) & 0xff));
    }
    out.shrink_to_fit();
    return out;
  }

  static SessionRecord unpack(std::string_view in) {
    SessionRecord r;
    r.id = take(in);
    r.user_id = take(in);
    r.status = take(in);
    r.cwd = take(in);
    for (std::size_t n = take_size(in); n > 0; --n) {
      std::string name(take(in));
      r.env.emplace_back(std::move(name), take(in));
    }
    r.backend = take(in);
    r.workspace = take(in);
    for (std::size_t n = take_size(in); n > 0; --n) {
      r.history.emplace_back(take(in));
    }
    r.instance = take(in);
    std::uint64_t ms = 0;
    for (int i = 0; i < 8 && static_cast<std::size_t>(i) < in.size(); ++i) {
      ms |= std::uint64_t{static_cast<unsigned char>(in[static_cast<std::size_t>(i)])} << (8 * i);
    }
    r.updated_unix_ms = static_cast<std::int64_t>(ms);
    return r;
  }

  /// The id of a packed record (its first field).
  static std::string_view id_of(std::string_view packed) { return take(packed); }

 private:
  static void put_size(std::string& out, std::size_t n) {
    do {
      const auto low = static_cast<unsigned char>(n & 0x7f);
      n >>= 7;
      out.push_back(static_cast<char>(n != 0 ? low | 0x80 : low));
    } while (n != 0);
  }
  static void put(std::string& out, std::string_view s) {
    put_size(out, s.size());
    out.append(s);
  }
  // What pack() wrote is read back: the bounds checks only keep a bug from reading past the end.
  static std::size_t take_size(std::string_view& in) {
    std::size_t n = 0;
    for (int shift = 0; !in.empty() && shift < 64; shift += 7) {
      const auto byte = static_cast<unsigned char>(in.front());
      in.remove_prefix(1);
      n |= std::size_t{byte & 0x7fU} << shift;
      if ((byte & 0x80U) == 0) {
        break;
      }
    }
    return n;
  }
  static std::string_view take(std::string_view& in) {
    const std::size_t n = std::min(take_size(in), in.size());
    const std::string_view s = in.substr(0, n);
    in.remove_prefix(n);
    return s;
  }
};

class MemoryStore final : public plugin::StoreStrategy {
 public:
  MemoryStore(HostServices& host, plugin::ConversationCaps caps, std::int64_t audit_retention_ms)
      : host_(host), caps_(caps), audit_retention_ms_(audit_retention_ms) {}

  /// This process's memory: gone with it.
  [[nodiscard]] bool shared() const noexcept override { return false; }
  [[nodiscard]] bool reachable() const noexcept override { return true; }
  void put_session(SessionRecord record, std::function<void(Status)> done) noexcept override {
    {
      std::string packed = PackedRecord::pack(record);
      const std::lock_guard lock(mutex_);
      if (const auto it = sessions_.find(std::string_view(record.id)); it != sessions_.end()) {
        auto node = sessions_.extract(it);
        node.value() = std::move(packed);  // the same id: its place in the set stays
        sessions_.insert(std::move(node));
      } else {
        sessions_.insert(std::move(packed));
      }
    }
    complete(std::move(done), Status());
  }

  void update_session(std::string id, plugin::SessionUpdate update, std::function<void(Status)> done) noexcept override {
    Status status;
    {
      const std::lock_guard lock(mutex_);
      if (const auto it = sessions_.find(std::string_view(id)); it != sessions_.end()) {
        auto node = sessions_.extract(it);  // a set's element is changed out of it (its id stays)
        SessionRecord record = PackedRecord::unpack(node.value());
        apply(record, std::move(update));
        node.value() = PackedRecord::pack(record);
        sessions_.insert(std::move(node));
      } else {
        status = Status(Code::not_found, "no such session");
      }
    }
    complete(std::move(done), std::move(status));
  }

  void get_session(std::string id, std::function<void(Status, SessionRecord)> done) noexcept override {
    Status status;
    SessionRecord record;
    {
      const std::lock_guard lock(mutex_);
      if (const auto it = sessions_.find(std::string_view(id)); it != sessions_.end()) {
        record = PackedRecord::unpack(*it);
      } else {
        status = Status(Code::not_found, "no such session");
      }
    }
    boost::asio::post(host_.executor(), [done = std::move(done), status = std::move(status),
                                         record = std::move(record)]() mutable {
      done(std::move(status), std::move(record));
    });
  }

  void remove_session(std::string id, std::function<void(Status)> done) noexcept override {
    {
      const std::lock_guard lock(mutex_);
      if (const auto it = sessions_.find(std::string_view(id)); it != sessions_.end()) {
        sessions_.erase(it);
      }
      if (const auto it = conversations_.find(id); it != conversations_.end()) {
        bytes_ -= it->second.bytes;
        entries_ -= it->second.entries.size();
        conversations_.erase(it);
      }
    }
    complete(std::move(done), Status());
  }

  void append_conversation(std::string session_id, std::string entry,
                           std::function<void(Status)> done) noexcept override {
    {
      const std::lock_guard lock(mutex_);
      append_locked(std::move(session_id), std::move(entry));
    }
    complete(std::move(done), Status());
  }

  void append_result(std::string session_id, std::string entry, plugin::AuditRecord record,
                     std::function<void(Status)> done) noexcept override {
    const std::int64_t now = now_ms();
    {
      const std::lock_guard lock(mutex_);
      append_locked(std::move(session_id), std::move(entry));
      audit_locked(std::move(record));
      expire_audit_locked(now);
    }
    complete(std::move(done), Status());
  }

  void read_conversation(std::string session_id, plugin::ConversationRange range,
                         std::function<void(Status, plugin::ConversationPage)> done) noexcept override {
    plugin::ConversationPage page;
    {
      const std::lock_guard lock(mutex_);
      if (const auto it = conversations_.find(session_id); it != conversations_.end()) {
        page = read_page(it->second, range);
      }
    }
    boost::asio::post(host_.executor(), [done = std::move(done), page = std::move(page)]() mutable {
      done(Status(), std::move(page));
    });
  }

  void append_audit(std::vector<plugin::AuditRecord> records, std::function<void(Status)> done) noexcept override {
    const std::int64_t now = now_ms();
    {
      const std::lock_guard lock(mutex_);
      for (auto& r : records) {
        audit_locked(std::move(r));
      }
      expire_audit_locked(now);
    }
    complete(std::move(done), Status());
  }

  void read_audit(plugin::AuditQuery query, std::function<void(Status, plugin::AuditPage)> done) noexcept override {
    Status status;
    plugin::AuditPage page;
    plugin::AuditRecord at;
    if (!query.cursor.empty() && !plugin::audit_position(query.cursor, at)) {
      status = Status(Code::bad_request, "audit: not a cursor of this log");
    } else {
      const std::lock_guard lock(mutex_);
      auto it = query.cursor.empty()
                    ? audit_.lower_bound(AuditPosition{query.since_unix_ms, {}, {}})
                    : audit_.upper_bound(AuditPosition{at.finished_unix_ms, at.session_id, at.call_id});
      const std::size_t limit = std::clamp<std::size_t>(query.limit, 1, plugin::kAuditPageMost);
      for (; it != audit_.end() && std::get<0>(it->first) < query.until_unix_ms; ++it) {
        if (!plugin::audit_matches(query, it->second)) {
          continue;
        }
        if (page.records.size() == limit) {
          page.next = plugin::audit_cursor(page.records.back());
          break;
        }
        page.records.push_back(it->second);
      }
    }
    boost::asio::post(host_.executor(), [done = std::move(done), status = std::move(status),
                                         page = std::move(page)]() mutable { done(std::move(status), std::move(page)); });
  }

  [[nodiscard]] StoreStats stats() const noexcept override {
    const std::lock_guard lock(mutex_);
    return StoreStats{sessions_.size(), entries_, bytes_};
  }

  void async_shutdown(std::function<void()> done) noexcept override {
    boost::asio::post(host_.executor(), std::move(done));
  }

 private:
  [[nodiscard]] std::int64_t now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(host_.clock().wall().time_since_epoch()).count();
  }

  /// Appends, then drops the oldest entries while the conversation is over a cap (the newest stays).
  void append_locked(std::string session_id, std::string entry) {
    Conversation& c = conversations_[std::move(session_id)];
    bytes_ += entry.size();
    ++entries_;
    c.bytes += entry.size();
    c.entries.push_back(std::move(entry));
    while (c.entries.size() > 1 && (c.entries.size() > caps_.max_entries || c.bytes > caps_.max_bytes)) {
      c.bytes -= c.entries.front().size();
      bytes_ -= c.entries.front().size();
      --entries_;
      ++c.dropped;
      c.entries.pop_front();
    }
  }

  void audit_locked(plugin::AuditRecord r) {
    AuditKey key{r.session_id, r.call_id};
    if (const auto it = audit_at_.find(key); it != audit_at_.end()) {
      audit_.erase(AuditPosition{it->second, key.first, key.second});  // written again: it replaces the first
    }
    audit_at_[key] = r.finished_unix_ms;
    audit_.emplace(AuditPosition{r.finished_unix_ms, std::move(key.first), std::move(key.second)}, std::move(r));
  }

  /// Past its retention or its count: the oldest go.
  void expire_audit_locked(std::int64_t now) {
    while (!audit_.empty() &&
           (audit_.size() > kAuditMost || std::get<0>(audit_.begin()->first) < now - audit_retention_ms_)) {
      const auto& [finished, session, call] = audit_.begin()->first;
      audit_at_.erase(AuditKey{session, call});
      audit_.erase(audit_.begin());
    }
  }

  void complete(std::function<void(Status)> done, Status status) {
    boost::asio::post(host_.executor(),
                      [done = std::move(done), status = std::move(status)]() mutable { done(std::move(status)); });
  }

  /// The newest entries below range.before that fit the range (at least one when there is one).
  static plugin::ConversationPage read_page(const Conversation& c, const plugin::ConversationRange& range) {
    plugin::ConversationPage page;
    page.dropped = c.dropped;
    page.total = c.dropped + c.entries.size();
    const std::uint64_t end = std::clamp(range.before, c.dropped, page.total) - c.dropped;  // in c.entries
    std::uint64_t begin = end;
    std::size_t bytes = 0;
    while (begin > 0 && end - begin < range.max_entries &&
           (begin == end || bytes + c.entries[begin - 1].size() <= range.max_bytes)) {
      bytes += c.entries[--begin].size();
    }
    page.first = c.dropped + begin;
    page.entries.assign(c.entries.begin() + static_cast<std::ptrdiff_t>(begin),
                        c.entries.begin() + static_cast<std::ptrdiff_t>(end));
    return page;
  }

  HostServices& host_;
  const plugin::ConversationCaps caps_;
  mutable std::mutex mutex_;
  /// Packed records (PackedRecord) ordered by their id; looked up by an id.
  struct ById {
    using is_transparent = void;
    bool operator()(const std::string& a, const std::string& b) const {  // two packed records
      return PackedRecord::id_of(a) < PackedRecord::id_of(b);
    }
    bool operator()(const std::string& packed, std::string_view id) const { return PackedRecord::id_of(packed) < id; }
    bool operator()(std::string_view id, const std::string& packed) const { return id < PackedRecord::id_of(packed); }
  };
  std::set<std::string, ById> sessions_;
  std::map<std::string, Conversation, std::less<>> conversations_;
  std::uint64_t entries_ = 0;
  std::uint64_t bytes_ = 0;
  /// The audit log in its order (plugin::audit_before), and where each call's record is in it.
  using AuditPosition = std::tuple<std::int64_t, std::string, std::string>;  // finished, session, call
  using AuditKey = std::pair<std::string, std::string>;                     // session, call
  static constexpr std::size_t kAuditMost = 100000;
  const std::int64_t audit_retention_ms_;
  std::map<AuditPosition, plugin::AuditRecord> audit_;
  std::map<AuditKey, std::int64_t> audit_at_;
};

struct Factory {
  static std::unique_ptr<plugin::StoreStrategy> create(HostServices& host, std::string_view json) {
    PluginOptions options(json);
    options.ignore("redis_url");
    options.ignore("redis_password");
    options.ignore("session_grace_ms");
    options.ignore("ttl_ms");
    options.ignore("store_path");
    options.ignore("postgres_url");
    options.ignore("pool_size");
    options.ignore("read_only");  // phasekit history: reads only what it is asked
    plugin::ConversationCaps caps;
    caps.max_entries = static_cast<std::size_t>(options.integer("conversation_max_entries", 1000, 1, 10000000));
    caps.max_bytes = static_cast<std::size_t>(options.integer("conversation_max_bytes", 4194304, 1024, 1LL << 40));
    const std::int64_t retention = options.integer("audit_retention_ms", 30LL * 86400000, 3600000, 3650LL * 86400000);
    options.finish();
    return std::make_unique<MemoryStore>(host, caps, retention);
  }
};

}  // namespace

PHASEKIT_BUILTIN_PLUGIN(store_memory_entry, PHK_KIND_STORE, "memory", "1.0.0",
                        "sessions and conversations in this process's memory", Factory)
}  // namespace phasekit::builtin
