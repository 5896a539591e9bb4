// store=memory: sessions and conversations in this process's memory (one instance only).
#include <boost/asio/post.hpp>

#include <map>
#include <mutex>

#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"

namespace phasekit::builtin {
namespace {

using plugin::HostServices;
using plugin::SessionRecord;
using plugin::StoreStats;

class MemoryStore final : public plugin::StoreStrategy {
 public:
  explicit MemoryStore(HostServices& host) : host_(host) {}

  void put_session(SessionRecord record, std::function<void(Status)> done) noexcept override {
    {
      const std::lock_guard lock(mutex_);
      std::string id = record.id;
      sessions_[std::move(id)] = std::move(record);
    }
    complete(std::move(done), Status());
  }

  void update_session(std::string id, plugin::SessionUpdate update, std::function<void(Status)> done) noexcept override {
    Status status;
    {
      const std::lock_guard lock(mutex_);
      if (const auto it = sessions_.find(id); it != sessions_.end()) {
        apply(it->second, std::move(update));
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
        record = it->second;
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
      sessions_.erase(id);
      if (const auto it = conversations_.find(id); it != conversations_.end()) {
        for (const std::string& entry : it->second) {
          bytes_ -= entry.size();
        }
        entries_ -= it->second.size();
        conversations_.erase(it);
      }
    }
    complete(std::move(done), Status());
  }

  void append_conversation(std::string session_id, std::string entry,
                           std::function<void(Status)> done) noexcept override {
    {
      const std::lock_guard lock(mutex_);
      bytes_ += entry.size();
      ++entries_;
      conversations_[std::move(session_id)].push_back(std::move(entry));
    }
    complete(std::move(done), Status());
  }

  void read_conversation(std::string session_id,
                         std::function<void(Status, std::vector<std::string>)> done) noexcept override {
    std::vector<std::string> entries;
    {
      const std::lock_guard lock(mutex_);
      if (const auto it = conversations_.find(session_id); it != conversations_.end()) {
        entries = it->second;
      }
    }
    boost::asio::post(host_.executor(), [done = std::move(done), entries = std::move(entries)]() mutable {
      done(Status(), std::move(entries));
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

  HostServices& host_;
  mutable std::mutex mutex_;
  std::map<std::string, SessionRecord, std::less<>> sessions_;
  std::map<std::string, std::vector<std::string>, std::less<>> conversations_;
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
    options.finish();
    return std::make_unique<MemoryStore>(host);
  }
};

}  // namespace

PHASEKIT_BUILTIN_PLUGIN(store_memory_entry, PHK_KIND_STORE, "memory", "1.0.0",
                        "sessions and conversations in this process's memory", Factory)
}  // namespace phasekit::builtin
