#include "warm_pool.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <deque>
#include <mutex>
#include <vector>

namespace phasekit::pool_warm {

using plugin::AcquireSource;
using plugin::BackendPtr;
using plugin::Lease;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

// Work decided under the lock and done after it: the driver may complete inline, and handlers are
// always posted, so nothing re-enters the pool while it holds its mutex.
struct Actions {
  std::vector<std::pair<plugin::PoolStrategy::AcquireHandler, Lease>> grants;
  std::vector<std::pair<plugin::PoolStrategy::AcquireHandler, Status>> refusals;
  std::uint64_t creates = 0;
  std::vector<BackendPtr> resets;
  std::vector<BackendPtr> checks;
  std::vector<BackendPtr> destroys;
  std::function<void()> finished;
};

}  // namespace

class WarmPool::Core final : public std::enable_shared_from_this<Core> {
 public:
  Core(plugin::HostServices& host, const WarmConfig& config)
      : host_(host),
        driver_(host.backends()),
        config_(config),
        log_(host.logger("pool.warm")),
        reaper_(host.executor()),
        acquired_(make_source_counters(host.metrics())),
        waits_(host.metrics().counter("phasekit_pool_waits_total",
                                      "Acquires that found every backend leased and had to wait.")),
        timeouts_(host.metrics().counter("phasekit_pool_acquire_timeouts_total",
                                         "Acquires that waited POOL_ACQUIRE_TIMEOUT_MS in vain.")),
        evictions_(host.metrics().counter(
            "phasekit_pool_evictions_total",
            "Backends the pool destroyed before shutdown: reaped when idle, dead, or failing a reset or check.")),
        created_(host.metrics().counter("phasekit_pool_backends_created_total", "Backends the pool made.")),
        failures_(host.metrics().counter("phasekit_pool_create_failures_total",
                                         "Backends the driver failed to make.")) {}

  void start() {
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      top_up(act);
      arm_reaper();
    }
    run(std::move(act));
  }

  void acquire(plugin::PoolStrategy::AcquireHandler done) {
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      if (driver_ == nullptr || shutting_down_) {
        act.refusals.emplace_back(std::move(done), Status(Code::unavailable, driver_ == nullptr
                                                                                 ? "this process runs no backends"
                                                                                 : "shutting down"));
      } else if (BackendPtr warm = take_idle(act)) {
        grant(std::move(done), std::move(warm), AcquireSource::warm, act);
        top_up(act);
      } else {
        auto waiter = std::make_shared<Waiter>(host_.executor());
        waiter->done = std::move(done);
        if (total() >= config_.max_size) {
          ++stats_.waits;
          waits_.inc();
        }
        waiters_.push_back(waiter);
        waiter->timer.expires_after(config_.acquire_timeout);
        waiter->timer.async_wait([self = shared_from_this(), waiter](boost::system::error_code ec) {
          if (!ec) {
            self->expire(waiter);
          }
        });
        top_up(act);
      }
    }
    run(std::move(act));
  }

  void release(BackendPtr backend, bool reusable) {
    if (!backend) {
      return;
    }
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      if (active_ > 0) {
        --active_;
      }
      if (shutting_down_) {
        destroy(std::move(backend), act);
      } else if (!reusable || !backend->alive()) {
        evict(std::move(backend), act);
      } else {
        ++resetting_;
        act.resets.push_back(std::move(backend));
      }
      top_up(act);
      finish_shutdown(act);
    }
    run(std::move(act));
  }

  /// The autoscaler's recommendation: more idle backends are made at once; the ones above a lower
  /// minimum go the usual way, reaped once idle for idle_timeout.
  void resize(std::uint64_t min_size) {
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      const std::uint64_t target = std::min(min_size, config_.max_size);
      if (target == config_.min_size) {
        return;
      }
      log_.info("pool.resize", {{"from", config_.min_size}, {"to", target}});
      config_.min_size = target;
      top_up(act);
    }
    run(std::move(act));
  }

  plugin::PoolStats stats() const {
    const std::lock_guard lock(mutex_);
    plugin::PoolStats s = stats_;
    s.idle = idle_.size();
    s.active = active_;
    s.total = total();
    s.min_size = config_.min_size;
    s.max_size = config_.max_size;
    return s;
  }

  void shutdown(std::function<void()> done) {
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      shutting_down_ = true;
      on_shutdown_ = std::move(done);
      reaper_.cancel();
      for (auto& w : std::exchange(waiters_, {})) {
        w->timer.cancel();
        act.refusals.emplace_back(std::move(w->done), Status(Code::unavailable, "shutting down"));
      }
      for (auto& i : std::exchange(idle_, {})) {
        destroy(std::move(i.backend), act);
      }
      finish_shutdown(act);
    }
    run(std::move(act));
  }

  /// The strategy object is going away: no timer may keep this state alive or re-arm itself.
  void close() {
    const std::lock_guard lock(mutex_);
    closed_ = true;
    shutting_down_ = true;
    reaper_.cancel();
    for (auto& w : waiters_) {
      w->timer.cancel();
    }
  }

 private:
  struct Idle {
    BackendPtr backend;
    Clock::time_point since;    // idle since (reaping)
    Clock::time_point checked;  // last health check issued
  };
  struct Waiter {
    explicit Waiter(const boost::asio::any_io_executor& ex) : timer(ex) {}
    plugin::PoolStrategy::AcquireHandler done;
    boost::asio::steady_timer timer;
  };
  using WaiterPtr = std::shared_ptr<Waiter>;

  static std::array<Counter*, 3> make_source_counters(Metrics& m) {
    constexpr std::string_view kName = "phasekit_pool_acquisitions_total";
    constexpr std::string_view kHelp = "Backends handed out, by source: warm (idle), cold (made for the caller), "
                                       "waited (freed by another session while the caller waited).";
    const std::array<Label, 1> warm{{{"source", "warm"}}};
    const std::array<Label, 1> cold{{{"source", "cold"}}};
    const std::array<Label, 1> waited{{{"source", "waited"}}};
    return {&m.counter(kName, kHelp, warm), &m.counter(kName, kHelp, cold), &m.counter(kName, kHelp, waited)};
  }

  // ---- everything below runs with mutex_ held, except run() and the completions' prologues ----

  [[nodiscard]] std::uint64_t total() const {
    return idle_.size() + active_ + creating_ + resetting_ + destroying_;
  }

  /// The most recently returned live idle backend (LIFO keeps the hot set small so the rest can be
  /// reaped); dead ones found on the way are evicted.
  BackendPtr take_idle(Actions& act) {
    while (!idle_.empty()) {
      BackendPtr b = std::move(idle_.back().backend);
      idle_.pop_back();
      if (b->alive()) {
        return b;
      }
      evict(std::move(b), act);
    }
    return nullptr;
  }

  void grant(plugin::PoolStrategy::AcquireHandler done, BackendPtr backend, AcquireSource source, Actions& act) {
    ++active_;
    switch (source) {
      case AcquireSource::warm: ++stats_.acquired_warm; break;
      case AcquireSource::cold: ++stats_.acquired_cold; break;
      case AcquireSource::waited: ++stats_.acquired_after_wait; break;
    }
    acquired_[static_cast<std::size_t>(source)]->inc();
    act.grants.emplace_back(std::move(done), Lease{std::move(backend), source});
  }

  /// A backend became available (made, reset): the oldest waiter gets it, else it goes idle.
  void offer(BackendPtr backend, bool fresh, Actions& act) {
    if (shutting_down_) {
      destroy(std::move(backend), act);
      return;
    }
    if (!backend->alive()) {
      evict(std::move(backend), act);
      return;
    }
    if (!waiters_.empty()) {
      WaiterPtr w = std::move(waiters_.front());
      waiters_.pop_front();
      w->timer.cancel();
      grant(std::move(w->done), std::move(backend), fresh ? AcquireSource::cold : AcquireSource::waited, act);
      return;
    }
    const auto now = Clock::now();
    idle_.push_back({std::move(backend), now, now});
  }

  void evict(BackendPtr backend, Actions& act) {
    ++stats_.evictions;
    evictions_.inc();
    destroy(std::move(backend), act);
  }

  void destroy(BackendPtr backend, Actions& act) {
    ++destroying_;
    act.destroys.push_back(std::move(backend));
  }

  /// Makes what is missing: one backend per waiter nothing is on its way for, plus enough to keep
  /// min_size idle (unless making backends has just failed: then retry after a back-off), never
  /// beyond max_size in all, and never more than create_concurrency at once. Making a sandbox is CPU
  /// work: 400 started together on 2 cores all ran into the breaker's timeout and were retried, over
  /// and over (25,000 failed creates in a 2-minute run), where a few at a time make them all; each
  /// completion calls this again for the rest.
  void top_up(Actions& act) {
    if (shutting_down_ || driver_ == nullptr) {
      return;
    }
    const std::uint64_t coming = creating_ + resetting_;
    std::uint64_t want = waiters_.size();
    if (Clock::now() >= backoff_until_) {
      want += config_.min_size;
    }
    const std::uint64_t have = idle_.size() + coming;
    const std::uint64_t room = config_.max_size > total() ? config_.max_size - total() : 0;
    const std::uint64_t slots = config_.create_concurrency > creating_ ? config_.create_concurrency - creating_ : 0;
    const std::uint64_t n = want > have ? std::min({want - have, room, slots}) : 0;
    creating_ += n;
    act.creates += n;
  }

  void finish_shutdown(Actions& act) {
    if (shutting_down_ && on_shutdown_ && idle_.empty() && creating_ == 0 && resetting_ == 0 && checking_ == 0 &&
        destroying_ == 0) {
      act.finished = std::exchange(on_shutdown_, nullptr);
    }
  }

  void arm_reaper() {
    if (closed_ || shutting_down_) {
      return;
    }
    const auto period = std::clamp(std::min(config_.idle_timeout, config_.health_interval) / 4,
                                   std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
    reaper_.expires_after(period);
    reaper_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      if (auto self = weak.lock(); self && !ec) {
        self->reap();
      }
    });
  }

  // ---- completions: each takes the lock itself ----

  void reap() {
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      if (closed_ || shutting_down_) {
        return;
      }
      const auto now = Clock::now();
      // Oldest first: idle_ is ordered by the time each backend was returned.
      while (idle_.size() > config_.min_size && now - idle_.front().since >= config_.idle_timeout) {
        BackendPtr b = std::move(idle_.front().backend);
        idle_.pop_front();
        evict(std::move(b), act);
      }
      for (auto it = idle_.begin(); it != idle_.end();) {
        if (!it->backend->alive()) {
          BackendPtr b = std::move(it->backend);
          it = idle_.erase(it);
          evict(std::move(b), act);
          continue;
        }
        if (now - it->checked >= config_.health_interval) {
          it->checked = now;
          ++checking_;
          act.checks.push_back(it->backend);
        }
        ++it;
      }
      top_up(act);
      arm_reaper();
    }
    run(std::move(act));
  }

  void expire(const WaiterPtr& waiter) {
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      const auto it = std::find(waiters_.begin(), waiters_.end(), waiter);
      if (it == waiters_.end()) {
        return;  // served or refused meanwhile
      }
      waiters_.erase(it);
      ++stats_.timeouts;
      timeouts_.inc();
      act.refusals.emplace_back(
          std::move(waiter->done),
          Status(Code::unavailable, fmt::format("no backend free within {} ms ({} of at most {} in use)",
                                                config_.acquire_timeout.count(), active_, config_.max_size)));
    }
    run(std::move(act));
  }

  void on_created(Status status, BackendPtr backend) {
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      --creating_;
      if (status.ok() && backend) {
        ++stats_.created;
        created_.inc();
        backoff_ = kFirstBackoff;
        backoff_until_ = {};
        offer(std::move(backend), true, act);
      } else {
        ++stats_.failures;
        failures_.inc();
        backoff_until_ = Clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, kMaxBackoff);
        log_.warn("pool.create_failed", {{"error", status.ok() ? "driver returned no backend" : status.message()}});
        // A waiter that nothing else is on its way for learns why now, not at its deadline.
        if (!shutting_down_ && waiters_.size() > creating_ + resetting_) {
          WaiterPtr w = std::move(waiters_.front());
          waiters_.pop_front();
          w->timer.cancel();
          act.refusals.emplace_back(std::move(w->done),
                                    Status(Code::unavailable, "cannot make a backend: " + status.message()));
        }
      }
      top_up(act);
      finish_shutdown(act);
    }
    run(std::move(act));
  }

  void on_reset(Status status, BackendPtr backend) {
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      --resetting_;
      if (status.ok()) {
        offer(std::move(backend), false, act);
      } else {
        log_.warn("pool.reset_failed", {{"backend", backend->id()}, {"error", status.message()}});
        shutting_down_ ? destroy(std::move(backend), act) : evict(std::move(backend), act);
      }
      top_up(act);
      finish_shutdown(act);
    }
    run(std::move(act));
  }

  void on_checked(Status status, const BackendPtr& backend) {
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      --checking_;
      if (!status.ok()) {
        // Only an idle one is ours to evict; one leased meanwhile fails its session's own requests.
        const auto it = std::find_if(idle_.begin(), idle_.end(), [&](const Idle& i) { return i.backend == backend; });
        if (it != idle_.end()) {
          log_.warn("pool.check_failed", {{"backend", backend->id()}, {"error", status.message()}});
          idle_.erase(it);
          evict(backend, act);
          top_up(act);
        }
      }
      finish_shutdown(act);
    }
    run(std::move(act));
  }

  void on_destroyed() {
    Actions act;
    {
      const std::lock_guard lock(mutex_);
      --destroying_;
      ++stats_.destroyed;
      top_up(act);  // a slot freed under max_size may let a waiter's backend be made
      finish_shutdown(act);
    }
    run(std::move(act));
  }

  void run(Actions act) {
    const auto ex = host_.executor();
    for (auto& [done, lease] : act.grants) {
      boost::asio::post(ex, [done = std::move(done), lease = std::move(lease)]() mutable {
        done(Status(), std::move(lease));
      });
    }
    for (auto& [done, status] : act.refusals) {
      boost::asio::post(ex, [done = std::move(done), status = std::move(status)]() mutable {
        done(std::move(status), Lease{});
      });
    }
    auto self = shared_from_this();
    for (std::uint64_t i = 0; i < act.creates; ++i) {
      driver_->create([self](Status s, BackendPtr b) { self->on_created(std::move(s), std::move(b)); });
    }
    for (auto& b : act.resets) {
      driver_->reset(b, [self, b](Status s) { self->on_reset(std::move(s), b); });
    }
    for (auto& b : act.checks) {
      driver_->check(b, [self, b](Status s) { self->on_checked(std::move(s), b); });
    }
    for (auto& b : act.destroys) {
      driver_->destroy(std::move(b), [self] { self->on_destroyed(); });
    }
    if (act.finished) {
      boost::asio::post(ex, std::move(act.finished));
    }
  }

  plugin::HostServices& host_;
  plugin::BackendDriver* const driver_;
  WarmConfig config_;  // min_size changes with resize(), under mutex_
  Logger& log_;
  mutable std::mutex mutex_;
  std::deque<Idle> idle_;
  std::deque<WaiterPtr> waiters_;
  std::uint64_t active_ = 0;
  std::uint64_t creating_ = 0;
  std::uint64_t resetting_ = 0;
  std::uint64_t checking_ = 0;  // idle backends with a health check in flight (they stay in idle_)
  std::uint64_t destroying_ = 0;
  plugin::PoolStats stats_;
  Clock::time_point backoff_until_{};
  std::chrono::milliseconds backoff_ = kFirstBackoff;
  bool shutting_down_ = false;
  bool closed_ = false;
  std::function<void()> on_shutdown_;
  boost::asio::steady_timer reaper_;
  std::array<Counter*, 3> acquired_;
  Counter& waits_;
  Counter& timeouts_;
  Counter& evictions_;
  Counter& created_;
  Counter& failures_;
};

WarmPool::WarmPool(plugin::HostServices& host, const WarmConfig& config)
    : core_(std::make_shared<Core>(host, config)) {
  core_->start();
}

WarmPool::~WarmPool() { core_->close(); }

void WarmPool::acquire(plugin::AcquireRequest /*request*/, AcquireHandler done) noexcept {
  core_->acquire(std::move(done));
}

void WarmPool::release(BackendPtr backend, bool reusable) noexcept { core_->release(std::move(backend), reusable); }

plugin::PoolStats WarmPool::stats() const noexcept { return core_->stats(); }

void WarmPool::resize(std::uint64_t min_size) noexcept { core_->resize(min_size); }

void WarmPool::async_shutdown(std::function<void()> done) noexcept { core_->shutdown(std::move(done)); }

}  // namespace phasekit::pool_warm
