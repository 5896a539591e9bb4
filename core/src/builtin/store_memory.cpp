// store=memory: sessions and conversations in this process's memory (one instance only).
#include <boost/asio/post.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string_view>

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

class MemoryStore final : public plugin::StoreStrategy {
 public:
  MemoryStore(HostServices& host, plugin::ConversationCaps caps) : host_(host), caps_(caps) {}

  /// This process's memory: gone with it.
  [[nodiscard]] bool shared() const noexcept override { return false; }
  void put_session(SessionRecord record, std::function<void(Status)> done) noexcept override {
    {
      const std::lock_guard lock(mutex_);
      if (const auto it = sessions_.find(record.id); it != sessions_.end()) {
        auto node = sessions_.extract(it);
        node.value() = std::move(record);
        sessions_.insert(std::move(node));
      } else {
        sessions_.insert(std::move(record));
      }
    }
    complete(std::move(done), Status());
  }

  void update_session(std::string id, plugin::SessionUpdate update, std::function<void(Status)> done) noexcept override {
    Status status;
    {
      const std::lock_guard lock(mutex_);
      if (const auto it = sessions_.find(id); it != sessions_.end()) {
        auto node = sessions_.extract(it);  // a set's element is changed out of it (its id stays)
        apply(node.value(), std::move(update));
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
      if (const auto it = sessions_.find(id); it != sessions_.end()) {
        record = *it;
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
      if (const auto it = sessions_.find(id); it != sessions_.end()) {
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

  [[nodiscard]] StoreStats stats() const noexcept override {
    const std::lock_guard lock(mutex_);
    return StoreStats{sessions_.size(), entries_, bytes_};
  }

  void async_shutdown(std::function<void()> done) noexcept override {
    boost::asio::post(host_.executor(), std::move(done));
  }

 private:
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
  /// Ordered by id, which each record holds once (a map would hold it twice: 64 bytes of every
  /// session, issue 16).
  struct ById {
    using is_transparent = void;
    static std::string_view id(const SessionRecord& r) { return r.id; }
    static std::string_view id(std::string_view key) { return key; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return id(a) < id(b);
    }
  };
  std::set<SessionRecord, ById> sessions_;
  std::map<std::string, Conversation, std::less<>> conversations_;
  std::uint64_t entries_ = 0;
  std::uint64_t bytes_ = 0;
};

struct Factory {
  static std::unique_ptr<plugin::StoreStrategy> create(HostServices& host, std::string_view json) {
    PluginOptions options(json);
    options.ignore("redis_url");
    options.ignore("redis_password");
    options.ignore("session_grace_ms");
    options.ignore("ttl_ms");
    plugin::ConversationCaps caps;
    caps.max_entries = static_cast<std::size_t>(options.integer("conversation_max_entries", 1000, 1, 10000000));
    caps.max_bytes = static_cast<std::size_t>(options.integer("conversation_max_bytes", 4194304, 1024, 1LL << 40));
    options.finish();
    return std::make_unique<MemoryStore>(host, caps);
  }
};

}  // namespace

PHASEKIT_BUILTIN_PLUGIN(store_memory_entry, PHK_KIND_STORE, "memory", "1.0.0",
                        "sessions and conversations in this process's memory", Factory)
}  // namespace phasekit::builtin
