// queue=inproc: jobs run in this process, at most `concurrency` at once, in arrival order; events go
// straight to the session's subscriber. Bounded: beyond `capacity` queued jobs, enqueue is refused.
#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>

#include "idle_shutdown.hpp"
#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"

namespace phasekit::builtin {
namespace {

using plugin::HostServices;
using plugin::Job;
using plugin::JobEvent;
using plugin::QueueStats;

class InprocQueue final : public plugin::QueueStrategy {
 public:
  InprocQueue(HostServices& host, std::uint64_t capacity) : host_(host), capacity_(capacity) {}

  /// Jobs run in this process.
  [[nodiscard]] bool remote() const noexcept override { return false; }
  void enqueue(Job job, std::function<void(Status)> queued) noexcept override {
    Status status;
    {
      const std::lock_guard lock(mutex_);
      if (shutdown_.begun()) {
        status = Status(Code::unavailable, "shutting down");
      } else if (jobs_.size() >= capacity_) {
        ++stats_.rejected;
        status = Status(Code::unavailable, fmt::format("queue full ({} jobs waiting)", capacity_));
      } else {
        jobs_.push_back(std::move(job));
        ++stats_.enqueued;
      }
    }
    boost::asio::post(host_.executor(), [queued = std::move(queued), status]() { queued(status); });
    dispatch();
  }

  void consume(unsigned concurrency, JobHandler handler) noexcept override {
    {
      const std::lock_guard lock(mutex_);
      if (handler_) {
        return;  // consume() is called once
      }
      concurrency_ = concurrency == 0 ? 1 : concurrency;
      handler_ = std::move(handler);
    }
    dispatch();
  }

  void set_concurrency(unsigned concurrency) noexcept override {
    {
      const std::lock_guard lock(mutex_);
      concurrency_ = concurrency == 0 ? 1 : concurrency;
    }
    dispatch();
  }

  void subscribe(std::string session_id, EventSink on_event) noexcept override {
    const std::lock_guard lock(mutex_);
    subscribers_[std::move(session_id)] = std::move(on_event);
  }

  void unsubscribe(std::string_view session_id) noexcept override {
    const std::lock_guard lock(mutex_);
    if (const auto it = subscribers_.find(session_id); it != subscribers_.end()) {
      subscribers_.erase(it);
    }
  }

  [[nodiscard]] QueueStats stats() const noexcept override {
    const std::lock_guard lock(mutex_);
    QueueStats s = stats_;
    s.depth = jobs_.size();
    s.in_flight = in_flight_;
    return s;
  }

  void async_shutdown(std::function<void()> done) noexcept override {
    shutdown_.begin(mutex_, host_.executor(), std::move(done), [this] { return idle(); });
  }

 private:
  // Starts queued jobs while slots are free. Jobs still queued at shutdown are started too: they
  // were acknowledged, so they run (or fail) rather than vanish.
  void dispatch() {
    for (;;) {
      Job job;
      {
        const std::lock_guard lock(mutex_);
        if (!handler_ || jobs_.empty() || in_flight_ >= concurrency_) {
          return;
        }
        job = std::move(jobs_.front());
        jobs_.pop_front();
        ++in_flight_;
      }
      auto finished_once = std::make_shared<std::atomic<bool>>(false);
      EventSink sink = [this](JobEvent event) { deliver(std::move(event)); };
      JobDone done = [this, finished_once](Status status) {
        if (finished_once->exchange(true)) {
          return;  // a job ends once
        }
        finish(status);
      };
      boost::asio::post(host_.executor(), [handler = handler_, job = std::move(job), sink = std::move(sink),
                                           done = std::move(done)]() mutable {
        handler(std::move(job), std::move(sink), std::move(done));
      });
    }
  }

  void deliver(JobEvent event) {
    EventSink target;
    {
      const std::lock_guard lock(mutex_);
      if (const auto it = subscribers_.find(event.session_id); it != subscribers_.end()) {
        target = it->second;
      }
    }
    if (target) {
      boost::asio::post(host_.executor(),
                        [target = std::move(target), event = std::move(event)]() mutable { target(std::move(event)); });
    }
  }

  void finish(const Status& status) {
    std::function<void()> finished;
    {
      const std::lock_guard lock(mutex_);
      --in_flight_;
      if (status.ok()) {
        ++stats_.completed;
      } else {
        ++stats_.failed;
      }
      finished = shutdown_.take_if(idle());
    }
    IdleShutdown::post_if(host_.executor(), std::move(finished));
    dispatch();
  }

  /// Nothing in flight: shutdown may answer (under mutex_).
  [[nodiscard]] bool idle() const { return in_flight_ == 0 && (jobs_.empty() || !handler_); }

  HostServices& host_;
  const std::uint64_t capacity_;
  mutable std::mutex mutex_;
  std::deque<Job> jobs_;
  std::map<std::string, EventSink, std::less<>> subscribers_;
  JobHandler handler_;
  unsigned concurrency_ = 1;
  std::uint64_t in_flight_ = 0;
  QueueStats stats_;
  IdleShutdown shutdown_;
};

struct Factory {
  static std::unique_ptr<plugin::QueueStrategy> create(HostServices& host, std::string_view json) {
    PluginOptions options(json);
    const auto capacity = options.integer("capacity", 100000, 1, 100000000);
    options.ignore("concurrency");  // given to consume()
    options.ignore("job_timeout_ms");  // enforced by the executor that runs the job
    options.ignore("redis_url");
    options.ignore("redis_password");
    options.ignore("shutdown_grace_ms");  // the host's drain waits for jobs in flight
    options.ignore("max_attempts");       // a job here dies with its process: never redelivered
    options.ignore("lease_ms");           // and is never leased to another worker
    options.finish();
    return std::make_unique<InprocQueue>(host, static_cast<std::uint64_t>(capacity));
  }
};

}  // namespace

PHASEKIT_BUILTIN_PLUGIN(queue_inproc_entry, PHK_KIND_QUEUE, "inproc", "1.0.0",
                        "jobs run in this process, bounded, in arrival order", Factory)
}  // namespace phasekit::builtin
