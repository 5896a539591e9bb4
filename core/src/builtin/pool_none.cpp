// pool=none: a cold backend per acquire, destroyed on release; at most max_size alive at once.
#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <mutex>

#include "idle_shutdown.hpp"
#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"

namespace phasekit::builtin {
namespace {

using plugin::AcquireRequest;
using plugin::BackendPtr;
using plugin::HostServices;
using plugin::Lease;
using plugin::PoolStats;

class NonePool final : public plugin::PoolStrategy {
 public:
  NonePool(HostServices& host, std::uint64_t max_size) : host_(host), max_size_(max_size) {}

  ~NonePool() override {
    // The host shuts the pool down (async_shutdown) before destroying it; nothing may still call back.
  }

  void acquire(AcquireRequest request, AcquireHandler done) noexcept override {
    plugin::BackendDriver* driver = host_.backends();
    Status refusal;
    {
      const std::lock_guard lock(mutex_);
      if (driver == nullptr) {
        refusal = Status(Code::unavailable, "this process runs no backends");
      } else if (shutdown_.begun()) {
        refusal = Status(Code::unavailable, "shutting down");
      } else if (stats_.total >= max_size_) {
        refusal = Status(Code::unavailable, fmt::format("all {} backends are in use", max_size_));
      } else {
        ++stats_.total;
        ++pending_;
      }
    }
    if (!refusal.ok()) {
      fail(std::move(done), std::move(refusal));
      return;
    }
    (void)request;
    driver->create([this, done = std::move(done)](Status status, BackendPtr backend) mutable {
      std::function<void()> finished;
      {
        const std::lock_guard lock(mutex_);
        --pending_;
        if (status.ok() && backend) {
          ++stats_.active;
          ++stats_.acquired_cold;
          ++stats_.created;
        } else {
          --stats_.total;
          ++stats_.failures;
          if (status.ok()) {
            status = Status(Code::internal, "backend driver returned no backend");
          }
          backend.reset();
        }
        finished = shutdown_.take_if(idle());
      }
      boost::asio::post(host_.executor(), [done = std::move(done), status = std::move(status),
                                           lease = Lease{std::move(backend), plugin::AcquireSource::cold}]() mutable {
        done(std::move(status), std::move(lease));
      });
      IdleShutdown::post_if(host_.executor(), std::move(finished));
    });
  }

  void release(BackendPtr backend, bool /*reusable*/) noexcept override {
    plugin::BackendDriver* driver = host_.backends();
    if (!backend || driver == nullptr) {
      return;
    }
    {
      const std::lock_guard lock(mutex_);
      --stats_.active;
      ++pending_;
    }
    driver->destroy(std::move(backend), [this] {
      std::function<void()> finished;
      {
        const std::lock_guard lock(mutex_);
        --pending_;
        --stats_.total;
        ++stats_.destroyed;
        finished = shutdown_.take_if(idle());
      }
      IdleShutdown::post_if(host_.executor(), std::move(finished));
    });
  }

  void resize(std::uint64_t /*min_size*/) noexcept override {}  // keeps no idle backends to size

  [[nodiscard]] PoolStats stats() const noexcept override {
    const std::lock_guard lock(mutex_);
    PoolStats s = stats_;
    s.max_size = max_size_;
    return s;
  }

  void async_shutdown(std::function<void()> done) noexcept override {
    shutdown_.begin(mutex_, host_.executor(), std::move(done), [this] { return idle(); });
  }

 private:
  void fail(AcquireHandler done, Status status) {
    boost::asio::post(host_.executor(), [done = std::move(done), status = std::move(status)]() mutable {
      done(std::move(status), Lease{});
    });
  }

  // Called with mutex_ held: the shutdown completion once no driver call is outstanding. Leased
  // backends belong to their sessions, which release them before the host destroys the pool.
  /// Nothing in flight: shutdown may answer (under mutex_).
  [[nodiscard]] bool idle() const { return pending_ == 0; }

  HostServices& host_;
  const std::uint64_t max_size_;
  mutable std::mutex mutex_;
  PoolStats stats_;
  std::uint64_t pending_ = 0;
  IdleShutdown shutdown_;
};

struct Factory {
  static std::unique_ptr<plugin::PoolStrategy> create(HostServices& host, std::string_view json) {
    PluginOptions options(json);
    const auto max_size = options.integer("max_size", 1000, 1, 1000000);
    options.ignore("min_size");  // nothing is kept warm
    options.ignore("idle_timeout_ms");
    options.ignore("acquire_timeout_ms");
    options.ignore("create_concurrency");  // each acquire makes its own backend, at once
    options.finish();
    return std::make_unique<NonePool>(host, static_cast<std::uint64_t>(max_size));
  }
};

}  // namespace

PHASEKIT_BUILTIN_PLUGIN(pool_none_entry, PHK_KIND_POOL, "none", "1.0.0",
                        "a cold backend for every acquire, destroyed on release", Factory)
}  // namespace phasekit::builtin
