// queue=redis: a reliable queue in redis for phasekit-workers (scripts.hpp has the data layout).
//
//  * enqueue: one script stores the job and queues its id; the approval is acknowledged after it.
//  * consume: a dedicated connection takes ids with BLMOVE into this worker's processing list, CLAIM
//    marks the job running (one job per session at a time), the handler runs it; its result is held
//    back until done, and COMPLETE publishes it in the same atomic step that ends the job, so a job
//    ends once even when the reaper gave it to another worker meanwhile.
//  * liveness: every worker refreshes a heartbeat key; any consumer reaps the jobs of workers whose
//    heartbeat expired (redelivered, or failed after max_attempts) and of jobs past their deadline.
//  * events: published on the session's channel, received by whichever instance subscribed to it.
//    Pub/sub delivers at most once and a redis restart forgets up to its last second of writes, so the
//    ends of jobs are accounted for after every reconnect: an orchestrator asks about the jobs it
//    enqueued and has no result of (kAccount: a result it missed comes again, a job redis lost fails
//    with UNAVAILABLE), and a worker replays the completions redis may have lost (kRecover), so a job
//    that ended does not run again. Subscribers deliver each result once. After a redis restart (a
//    new run_id, which the data set remembers) no worker takes a job for JOB_LEASE_MS, so one whose
//    claim was lost is reclaimed by the worker running it; a job two workers ran under one attempt
//    anyway has its attempt raised, and its tool:result and history say so (or, when its result went
//    out already, a tool:redelivered notice).
#include "redis_queue.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "guarded.hpp"
#include "io_thread.hpp"
#include "phasekit/bytes.hpp"
#include "phasekit/random_id.hpp"
#include "phasekit/recent_ids.hpp"
#include "phasekit/redis/subscriber.hpp"
#include "scripts.hpp"

namespace phasekit::queue_redis {
namespace {

using json = nlohmann::json;
using plugin::HostServices;
using plugin::Job;
using plugin::JobEvent;
using plugin::JobEventType;
using plugin::QueueStats;
using redis_plugins::guarded;
using Strand = boost::asio::strand<boost::asio::any_io_executor>;

std::string worker_name() {
  std::array<char, 128> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) {
    host[0] = '\0';
  }
  return random_id(fmt::format("{}:{}:", host.data(), ::getpid()));
}

std::string envelope(char type, const std::string& job_id, const std::string& session, const std::string& data) {
  // Every field is host-made text, but a dump that throws would end the process in a callback.
  return bytes::dump(json{{"t", std::string(1, type)}, {"j", job_id}, {"s", session}, {"d", data}});
}

/// The attempt kComplete adds to an envelope ("a") when another worker ran the job under the
/// attempt its run had too: the tool:result says so, as it does for a redelivery.
void with_attempt(std::string& data, const json& envelope) {
  const auto a = envelope.find("a");
  if (a == envelope.end() || !a->is_number_unsigned() || a->get<std::uint64_t>() < 2) {
    return;
  }
  json result = json::parse(data, nullptr, false);
  if (!result.is_object()) {
    return;
  }
  const auto had = result.find("attempt");
  if (had == result.end() || !had->is_number_unsigned() || had->get<std::uint64_t>() < a->get<std::uint64_t>()) {
    result["attempt"] = a->get<std::uint64_t>();
    data = bytes::dump(result);
  }
}

/// A result that says the job failed with `code`, as a tool:result's data.
std::string failed_result(const std::string& job_id, Code code, const std::string& message) {
  return bytes::dump(json{{"callId", job_id}, {"exitCode", nullptr}, {"output", ""}, {"truncated", false},
                          {"durationMs", 0}, {"error", {{"code", wire_name(code)}, {"message", message}}}});
}

constexpr std::size_t kRecentResults = 16384;  // far more than a redis reconnect's worth of results
constexpr std::size_t kAccountBatch = 100;     // jobs per kAccount script: ≤ 6.4 MB of results republished
constexpr Ms kAccountEvery{30000};              // and now and then, for a result missed without a reconnect
// Completions kept for a replay: those of the last 5 s before the connection went down (AOF fsyncs
// every second, so a restart forgets about the last 1-2 s), until the replay is done.
constexpr Ms kReplayWindow{5000};
constexpr std::size_t kReplayMost = 4096;

class RedisQueue final : public plugin::QueueStrategy, public std::enable_shared_from_this<RedisQueue> {
 public:
  /// `io` runs this queue's connections and timers (io_thread.hpp says why they are not on the host's).
  RedisQueue(HostServices& host, Options options, boost::asio::any_io_executor io)
      : host_(host),
        io_(std::move(io)),
        log_(host.logger("queue.redis")),
        guard_(host.breaker("redis")),
        options_(std::move(options)),
        worker_base_(worker_name()),
        worker_(worker_base_ + ":1"),
        strand_(boost::asio::make_strand(io_)),
        ticker_(strand_),
        retry_(strand_),
        account_retry_(strand_),
        depth_gauge_(host.metrics().gauge("phasekit_queue_depth", "Jobs waiting in the queue, not yet taken.")),
        enqueued_(counter("enqueued")),
        completed_(counter("completed")),
        failed_(counter("failed")),
        redelivered_(counter("redelivered")),
        deferred_(counter("deferred")),
        lease_refused_(counter("fenced")),
        lease_lapses_(host.metrics().counter("phasekit_queue_lease_lapses_total",
                                             "Times this worker's job lease lapsed (paused, or cut off from "
                                             "redis) and it went on as a new incarnation.")) {
    redis::ClientOptions co;
    co.endpoint = options_.endpoint;
    co.name = "queue";
    client_ = redis::Client::create(io_, co, log_);
  }

  ~RedisQueue() override { close(); }

  /// The host destroys the strategy: timers and connections stop, which releases every completion
  /// holding this queue. Called when no completion of the queue runs concurrently (the host's rule).
  void close() {
    closed_ = true;
    ticker_.cancel();
    retry_.cancel();
    account_retry_.cancel();
    client_->stop();
    if (blocking_) {
      blocking_->stop();
    }
    const std::lock_guard lock(mutex_);
    if (subscriber_) {
      subscriber_->stop();
    }
  }

  /// Connects, and starts the periodic work (depth gauge; heartbeat and reaper once consuming).
  void start() {
    client_->on_state([weak = weak_from_this()](bool up) {
      auto self = weak.lock();
      if (!self) {
        return;
      }
      if (up) {
        // Connected again: redis answers, so an open breaker probes now instead of after its reset
        // timeout (30 s by default, which kept workers from taking jobs that long after a restart).
        self->guard_.recovered();
      }
      // Down: whatever redis forgets meanwhile (a restart) is replayed by the next recover(), before
      // this worker takes a job again; up: that recover runs now.
      boost::asio::post(self->strand_, [self, up] {
        if (self->handler_) {
          self->need_recover();
          if (up) {
            self->take();
          }
        }
      });
    });
    client_->start();
    boost::asio::post(strand_, [self = shared_from_this()] { self->tick(); });
  }

  /// Workers take the jobs from redis.
  [[nodiscard]] bool remote() const noexcept override { return true; }
  void enqueue(Job job, std::function<void(Status)> queued) noexcept override {
    if (stopping_) {
      post(std::move(queued), Status(Code::unavailable, "shutting down"));
      return;
    }
    const std::string channel = options_.prefix + "session:" + job.session_id;
    {
      // Awaited before it is queued: its result cannot come before it is known here.
      const std::lock_guard lock(mutex_);
      awaiting_.insert_or_assign(job.id, Awaited{job.session_id, false});
    }
    guarded(guard_, client_, scripts::kEnqueue,
            {"EVALSHA", scripts::kEnqueue.sha1(), "0", options_.prefix, job.id, job.user_id, job.session_id, job.payload,
             std::to_string(job.timeout_ms > 0 ? job.timeout_ms : options_.job_timeout_ms), channel},
            [self = shared_from_this(), queued = std::move(queued), id = job.id](Status s, redis::Reply r) {
              if (s.ok() && r.integer() == 0) {
                s = Status(Code::bad_request, "a job with this id is already queued");
              }
              {
                // Accounted for only once queued: before, redis would rightly say it has no such job.
                const std::lock_guard lock(self->mutex_);
                if (const auto it = self->awaiting_.find(id); it != self->awaiting_.end()) {
                  if (s.ok()) {
                    it->second.queued = true;
                  } else {
                    self->awaiting_.erase(it);
                  }
                }
              }
              if (s.ok()) {
                self->enqueued_.inc();
                const std::lock_guard lock(self->mutex_);
                ++self->stats_.enqueued;
              } else if (s.code() == Code::timeout || s.code() == Code::internal) {
                s = Status(Code::unavailable, "job queue: " + s.message());
              }
              queued(s);
            });
  }

  void consume(unsigned concurrency, JobHandler handler) noexcept override {
    boost::asio::post(strand_, [self = shared_from_this(), concurrency, handler = std::move(handler)]() mutable {
      if (self->handler_ || self->stopping_) {
        return;
      }
      self->handler_ = std::move(handler);
      self->concurrency_ = std::max(1u, concurrency);
      redis::ClientOptions co;
      co.endpoint = self->options_.endpoint;
      co.name = "queue-take";
      co.command_timeout = self->options_.block + Ms(2000);
      self->blocking_ = redis::Client::create(self->io_, co, self->log_);
      self->blocking_->start();
      self->log_.info("queue.consuming", {{"worker", self->worker_}, {"concurrency", self->concurrency_}});
      self->beat();
      // The first take recovers: nothing to hand back yet, but the reply names the redis this worker
      // started on, so that it knows a restart when it sees one.
      self->need_recover();
      self->take();
    });
  }

  void set_concurrency(unsigned concurrency) noexcept override {
    boost::asio::post(strand_, [self = shared_from_this(), concurrency] {
      self->concurrency_ = std::max(1u, concurrency);
      self->take();
    });
  }

  void subscribe(std::string session_id, EventSink on_event) noexcept override {
    const std::lock_guard lock(mutex_);
    if (!subscriber_) {
      redis::ClientOptions co;
      co.endpoint = options_.endpoint;
      co.name = "queue-events";
      subscriber_ = redis::Subscriber::create(io_, co, log_);
      // Called once every channel is subscribed again: what was published while it was away is asked for.
      subscriber_->on_state([weak = weak_from_this()](bool up) {
        if (auto self = weak.lock(); self && up) {
          boost::asio::post(self->strand_, [self] { self->account(); });
        }
      });
      subscriber_->start();
    }
    auto sink = std::make_shared<const EventSink>(std::move(on_event));
    sinks_.insert_or_assign(session_id, sink);
    subscriber_->subscribe(options_.prefix + "session:" + session_id,
                           [weak = weak_from_this(), sink](std::string /*channel*/, std::string payload) {
                             json e = json::parse(payload, nullptr, false);
                             if (e.is_discarded() || !e.is_object() || !e.contains("d") || !e["d"].is_string()) {
                               return;
                             }
                             const std::string type = e.value("t", "");
                             JobEvent event{e.value("j", ""), e.value("s", ""),
                                            type == "o"   ? JobEventType::output
                                            : type == "n" ? JobEventType::redelivered
                                                          : JobEventType::result,
                                            e["d"].get<std::string>()};
                             if (event.type == JobEventType::result) {
                               with_attempt(event.data, e);
                             }
                             auto self = weak.lock();
                             if (!self || (event.type == JobEventType::result && !self->first_result(event.job_id))) {
                               return;
                             }
                             (*sink)(std::move(event));
                           });
  }

  void unsubscribe(std::string_view session_id) noexcept override {
    const std::lock_guard lock(mutex_);
    sinks_.erase(std::string(session_id));
    std::erase_if(awaiting_, [&](const auto& job) { return job.second.session == session_id; });
    if (subscriber_) {
      subscriber_->unsubscribe(options_.prefix + "session:" + std::string(session_id));
    }
  }

  [[nodiscard]] QueueStats stats() const noexcept override {
    const std::lock_guard lock(mutex_);
    QueueStats s = stats_;
    s.depth = depth_;
    s.in_flight = running_.load();
    return s;
  }

  void async_shutdown(std::function<void()> done) noexcept override {
    boost::asio::post(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
      self->stopping_ = true;
      self->on_shutdown_ = std::move(done);
      self->shutdown_deadline_ = std::chrono::steady_clock::now() + self->options_.shutdown_grace;
      self->maybe_finish_shutdown();
    });
  }

 private:
  struct Running {
    std::string result;  // the result event's data, held back until COMPLETE
    bool has_result = false;
  };
  /// A job's end, as COMPLETE tells redis, and kept a few seconds for replay().
  struct Completion {
    std::string id;
    std::string session;
    std::string outcome;  // done | failed
    std::string worker;   // the incarnation that claimed it
    std::uint32_t attempt = 1;
    std::chrono::steady_clock::time_point at{};
    std::string envelope;  // its result, kept for a replay when small enough for redis to keep
  };

  Counter& counter(std::string_view outcome) {
    const std::array<Label, 1> labels{{{"outcome", outcome}}};
    return host_.metrics().counter("phasekit_queue_jobs_total",
                                   "Jobs through the redis queue: enqueued, completed, failed, redelivered (their "
                                   "worker died), deferred (another job of the session was running).",
                                   labels);
  }

  template <class F>
  void post(F f, Status s) {
    boost::asio::post(host_.executor(), [f = std::move(f), s = std::move(s)]() mutable { f(std::move(s)); });
  }

  // ---- taking jobs (on the strand) ----

  void take() {
    if (!handler_ || stopping_ || taking_) {
      return;
    }
    if (recovering_) {
      recover();  // takes nothing: it runs whatever this worker runs now
      return;
    }
    if (running_ >= concurrency_) {
      return;
    }
    if (const auto now = std::chrono::steady_clock::now(); now < hold_until_) {
      retry_later(std::chrono::ceil<Ms>(hold_until_ - now));  // redis restarted: see recover()
      return;
    }
    if (lease_lapsed()) {
      // Nothing is taken without a lease that redis acknowledged for this incarnation: its
      // processing list is then one the reaper watches.
      retry_later(Ms(100));
      return;
    }
    taking_ = true;
    const std::uint64_t epoch = epoch_.load();
    guarded(
        guard_, blocking_,
        {"BLMOVE", options_.prefix + "jobs", options_.prefix + "processing:" + worker_, "RIGHT", "LEFT",
         fmt::format("{:.3f}", static_cast<double>(options_.block.count()) / 1000.0)},
        [self = shared_from_this(), epoch](Status s, redis::Reply r) {
          boost::asio::post(self->strand_, [self, s, r = std::move(r), epoch]() mutable {
            if (epoch != self->epoch_.load()) {
              return;  // an earlier incarnation's take: what it moved is the reaper's
            }
            if (!s.ok()) {
              // Whether redis moved an id into our processing list is unknown: before the next take,
              // recover() hands back whatever the list holds that this worker does not run.
              self->taking_ = false;
              self->need_recover();
              self->retry_later(Ms(200));
              return;
            }
            if (!r.is_string()) {  // nothing within the block time
              self->taking_ = false;
              self->take();
              return;
            }
            std::string id = r.take_str();
            if (const auto it = self->running_ids_.find(id); it != self->running_ids_.end()) {
              // Back in the queue while this worker runs it: its claim was lost with a redis restart.
              // recover() claims it again; it must not run twice.
              self->taking_ = false;
              self->need_recover();
              self->take();
              return;
            }
            self->claim(std::move(id), epoch);
          });
        },
        options_.block + Ms(2000));
  }

  void claim(std::string id, std::uint64_t epoch) {
    guarded(guard_, client_, scripts::kClaim,
            {"EVALSHA", scripts::kClaim.sha1(), "0", options_.prefix, id, worker_of(epoch), std::to_string(options_.lease.count())},
            [self = shared_from_this(), id, epoch](Status s, redis::Reply r) {
              boost::asio::post(self->strand_, [self, id, s, r = std::move(r), epoch]() mutable {
                if (epoch != self->epoch_.load()) {
                  return;  // fenced meanwhile: the reaper redelivers the id from the old incarnation's list
                }
                self->taking_ = false;
                if (!s.ok() || !r.is_array() || r.elements().empty()) {
                  // The id stays in our processing list, claimed or not: recover() hands it back.
                  self->need_recover();
                  self->retry_later(Ms(200));
                  return;
                }
                const auto code = r.elements()[0].integer();
                if (code == 2) {
                  self->deferred_.inc();
                  self->retry_later(Ms(5));  // let the session's running job finish
                  return;
                }
                if (code == 1 && r.elements().size() >= 6) {
                  self->run(id, r.elements(), epoch);
                }
                self->take();
              });
            });
  }

  void need_recover() {
    recovering_ = true;
    if (!recover_since_) {
      recover_since_ = std::chrono::steady_clock::now();
    }
  }

  /// Replays the completions redis may have lost and hands back what this incarnation's processing
  /// list holds beyond the jobs it runs (kRecover), then takes again; retried while redis cannot be
  /// reached. On the strand.
  ///
  /// A redis restart (a new run_id) that lost the claims of jobs a worker runs puts them back in the
  /// queue under the same attempt. The worker running one reclaims it here, but only once it has
  /// reconnected: a worker quicker to reconnect would take it and run it a second time. So after a
  /// restart no worker takes anything until redis has been up for JOB_LEASE_MS. By then every worker
  /// still running jobs has reconnected and reclaimed them, or its lease lapsed and its runs are
  /// fenced (and counted as redelivered: kRecover's "doubled").
  void recover() {
    taking_ = true;
    forget_old_completions();
    std::vector<std::string> args{"EVALSHA", scripts::kRecover.sha1(), "0", options_.prefix, worker_,
                                  std::to_string(options_.lease.count()), "", ""};
    const std::uint64_t epoch = epoch_.load();
    const auto add_runs = [&](bool of_this_incarnation) {
      std::size_t n = 0;
      for (const auto& [id, run] : running_ids_) {
        if ((run.epoch == epoch) == of_this_incarnation) {
          args.insert(args.end(), {id, std::to_string(run.attempt)});
          ++n;
        }
      }
      return n;
    };
    const std::size_t mine = add_runs(true);
    // Runs fenced off: the reaper redelivers their jobs, unless the restart lost their claims.
    std::size_t fenced = add_runs(false);
    for (const FencedRun& f : fenced_lately_) {
      args.insert(args.end(), {f.id, std::to_string(f.attempt)});
      ++fenced;
    }
    args[6] = std::to_string(mine);
    args[7] = std::to_string(fenced);
    for (const Completion& c : completed_lately_) {
      args.insert(args.end(), {c.id, c.session, c.outcome, c.worker, c.envelope});
    }
    guarded(guard_, client_, scripts::kRecover, std::move(args), [self = shared_from_this()](Status s, redis::Reply r) {
      boost::asio::post(self->strand_, [self, s, r = std::move(r)] {
        self->taking_ = false;
        if (s.ok()) {
          // Done for every incarnation: the replay does not depend on one, and a new incarnation
          // starts with an empty list.
          self->recovering_ = false;
          self->recover_since_.reset();
          const auto count = [&r](std::size_t i) {
            return r.is_array() && r.elements().size() > i ? r.elements()[i].integer() : 0;
          };
          if (count(0) > 0 || count(1) > 0 || count(2) > 0 || count(3) > 0 || count(4) > 0) {
            self->log_.warn("queue.recovered",
                            {{"worker", self->worker_}, {"handed_back", count(0)}, {"replayed", count(1)},
                             {"reclaimed", count(2)}, {"doubled", count(3)}, {"doubled_after_end", count(4)}});
          }
          if (count(3) + count(4) > 0) {
            self->redelivered_.inc(static_cast<double>(count(3) + count(4)));
          }
          if (r.is_array() && r.elements().size() > 7 && r.elements()[5].is_string()) {
            std::string run_id = r.elements()[5].str();
            const Ms up(count(6) * 1000);  // whole seconds: the hold may last up to a second more
            // Restarted: the data set says so (a worker started since knows it too), or this worker
            // saw the run_id change (the data set was saved before it was marked).
            const bool restarted =
                count(7) == 1 || (!self->redis_run_id_.empty() && run_id != self->redis_run_id_);
            if (restarted && up < self->options_.lease) {
              self->hold_until_ = std::chrono::steady_clock::now() + (self->options_.lease - up);
              self->log_.warn("queue.redis_restarted",
                              {{"worker", self->worker_}, {"hold_ms", (self->options_.lease - up).count()}});
            }
            self->redis_run_id_ = std::move(run_id);
          }
          self->fenced_lately_.clear();  // told: redis raised their attempts where it had to
        }
        self->retry_later(s.ok() ? Ms(0) : Ms(200));
      });
    });
  }

  void retry_later(Ms delay) {
    retry_.expires_after(delay);
    retry_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) {
        self->take();
      }
    });
  }

  void run(const std::string& id, const std::vector<redis::Reply>& fields, std::uint64_t epoch) {
    Job job;
    job.id = id;
    job.user_id = fields[1].str();
    job.session_id = fields[2].str();
    job.payload = fields[3].str();
    job.timeout_ms = std::strtoll(fields[4].str().c_str(), nullptr, 10);
    job.attempt = static_cast<std::uint32_t>(std::strtoul(fields[5].str().c_str(), nullptr, 10));
    job.lease_epoch = epoch;
    running_ids_.insert_or_assign(id, RunningId{job.attempt, epoch});
    job.leased = [self = shared_from_this(), epoch] { return self->holds_lease(epoch); };
    job.confirm = [self = shared_from_this(), id, epoch, claimed = job.attempt](std::function<void(std::uint32_t)> answer) {
      self->confirm(id, epoch, claimed, std::move(answer), Ms(50));
    };
    ++running_;
    auto state = std::make_shared<Running>();
    auto once = std::make_shared<std::atomic<bool>>(false);
    const std::uint32_t attempt = job.attempt;
    EventSink sink = [self = shared_from_this(), state, id, session = job.session_id, epoch](JobEvent e) {
      if (!self->holds_lease(epoch)) {
        return;  // fenced: the job is another run's now
      }
      if (e.type == JobEventType::result) {
        boost::asio::post(self->strand_, [state, data = std::move(e.data)]() mutable {
          state->result = std::move(data);
          state->has_result = true;
        });
        return;
      }
      guarded(self->guard_, self->client_,
              {"PUBLISH", self->options_.prefix + "session:" + session, envelope('o', id, session, e.data)},
              [](Status, redis::Reply) {});
    };
    JobDone done = [self = shared_from_this(), state, id, session = job.session_id, once, epoch,
                    attempt](Status status) {
      if (once->exchange(true)) {
        return;
      }
      boost::asio::post(self->strand_, [self, state, id, session, status, epoch, attempt] {
        if (!self->holds_lease(epoch)) {
          self->running_ids_.erase(id);
          // Its command may have run: recover() tells redis, in case another worker claims the job
          // under this attempt (a redis restart that lost the claim hides the redelivery otherwise).
          self->fenced_lately_.push_back(FencedRun{id, attempt, std::chrono::steady_clock::now()});
          // The lease lapsed while the job ran: the reaper redelivers it (or did), and this run's
          // result is refused here rather than raced against the next run's.
          self->lease_refused_.inc();
          self->log_.warn("queue.result_fenced", {{"job", id}, {"epoch", epoch}, {"now", self->epoch_.load()}});
          if (epoch == self->epoch_.load()) {
            self->renew_incarnation("lease lapsed while a job ran");
          }
          --self->running_;
          self->take();
          self->maybe_finish_shutdown();
          return;
        }
        if (!state->has_result) {
          state->result = failed_result(id, status.ok() ? Code::internal : status.code(),
                                        status.ok() ? "the job ended without a result" : status.message());
        }
        self->complete(
            Completion{id, session, status.ok() ? "done" : "failed", self->worker_of(epoch), attempt, {}, {}},
            envelope('r', id, session, state->result), Ms(50));
      });
    };
    boost::asio::post(host_.executor(), [handler = handler_, job = std::move(job), sink = std::move(sink),
                                         done = std::move(done)]() mutable {
      handler(std::move(job), std::move(sink), std::move(done));
    });
  }

  /// Runs `f` on the strand once `delay` has passed: a retry of a redis call that failed.
  template <class F>
  void after(Ms delay, F f) {
    auto timer = std::make_shared<boost::asio::steady_timer>(strand_, delay);
    timer->async_wait([timer, f = std::move(f)](boost::system::error_code) mutable { f(); });
  }
  /// A retry's next backoff: twice the last, at most 2 s.
  static Ms next_backoff(Ms last) { return std::min(last * 2, Ms(2000)); }

  /// Job::confirm: the record as COMPLETE will find it. This run's (running on this worker, or queued
  /// under its attempt after a restart lost the claim): its attempt, raised if another worker's recover
  /// found that it ran the job under this attempt too. Another run's, or the lease gone: 0, and this run
  /// records nothing. Asked again while redis cannot be reached (the job cannot end meanwhile anyway).
  void confirm(std::string id, std::uint64_t epoch, std::uint32_t claimed, std::function<void(std::uint32_t)> answer,
               Ms backoff) {
    if (!holds_lease(epoch)) {
      answer(0);
      return;
    }
    guarded(guard_, client_, {"HMGET", options_.prefix + "job:" + id, "state", "worker", "attempt"},
            [self = shared_from_this(), id, epoch, claimed, answer = std::move(answer), backoff](
                Status s, redis::Reply r) mutable {
              if (!s.ok()) {
                self->after(backoff, [self, id = std::move(id), epoch, claimed, answer = std::move(answer),
                                      backoff]() mutable {
                  self->confirm(std::move(id), epoch, claimed, std::move(answer), next_backoff(backoff));
                });
                return;
              }
              std::uint32_t attempt = 0;
              if (r.is_array() && r.elements().size() == 3 && r.elements()[2].is_string()) {
                const auto& f = r.elements();
                const std::string state = f[0].is_string() ? f[0].str() : "";
                const std::string worker = f[1].is_string() ? f[1].str() : "";
                const auto now = static_cast<std::uint32_t>(std::strtoul(f[2].str().c_str(), nullptr, 10));
                const bool ours = (state == "running" && worker == self->worker_of(epoch)) ||
                                  (state == "queued" && now == claimed);
                attempt = ours ? std::max(claimed, now) : 0;
              }
              answer(self->holds_lease(epoch) ? attempt : 0);
            });
  }

  /// Ends the job; retried while redis cannot be reached (the result is not lost meanwhile, and if the
  /// reaper gave the job to another worker, COMPLETE says 0 and this result is dropped).
  /// `c.worker` is the incarnation that claimed the job: COMPLETE is refused when redis gave the job to
  /// another (or this worker's next incarnation), so a run fenced off since cannot end it.
  void complete(Completion c, std::string message, Ms backoff) {
    if (handed_back_) {
      // Shutting down, the job was handed back to the queue (same attempt): its next run ends it.
      running_ids_.erase(c.id);
      --running_;
      maybe_finish_shutdown();
      return;
    }
    guarded(guard_, client_, scripts::kComplete,
            {"EVALSHA", scripts::kComplete.sha1(), "0", options_.prefix, c.id, c.worker, c.outcome, message,
             std::to_string(c.attempt)},
            [self = shared_from_this(), c, message, backoff](Status s, redis::Reply r) mutable {
              boost::asio::post(self->strand_, [self, c = std::move(c), message = std::move(message), backoff, s,
                                                r = std::move(r)]() mutable {
                if (!s.ok() && !self->handed_back_ && c.worker == self->worker_of(self->epoch_.load())) {
                  self->after(backoff, [self, c = std::move(c), message = std::move(message), backoff]() mutable {
                    self->complete(std::move(c), std::move(message), next_backoff(backoff));
                  });
                  return;
                }
                // Only now is the job off this worker's processing list: until COMPLETE is answered a
                // recover() must not take it for a lost take and hand it back (it ran: a second run
                // under the same attempt would double its effect; drills.worker_partition_short).
                self->running_ids_.erase(c.id);
                if (s.ok() && r.integer() == 1) {
                  const bool ok = c.outcome == "done";
                  (ok ? self->completed_ : self->failed_).inc();
                  {
                    const std::lock_guard lock(self->mutex_);
                    ++(ok ? self->stats_.completed : self->stats_.failed);
                  }
                  c.at = std::chrono::steady_clock::now();
                  if (message.size() <= static_cast<std::size_t>(scripts::kResultKeepMost)) {
                    c.envelope = std::move(message);
                  }
                  self->completed_lately_.push_back(std::move(c));
                  self->forget_old_completions();
                } else if (s.ok()) {
                  self->log_.warn("queue.result_dropped", {{"job", c.id}, {"why", "the job is no longer this worker's"}});
                }
                --self->running_;
                self->take();
                self->maybe_finish_shutdown();
              });
            });
  }

  void forget_old_completions() {
    const auto oldest = recover_since_.value_or(std::chrono::steady_clock::now()) - kReplayWindow;
    while (!completed_lately_.empty() &&
           (completed_lately_.size() > kReplayMost || completed_lately_.front().at < oldest)) {
      completed_lately_.pop_front();
    }
    while (!fenced_lately_.empty() && (fenced_lately_.size() > kReplayMost || fenced_lately_.front().at < oldest)) {
      fenced_lately_.pop_front();
    }
  }

  // ---- results this instance waits for (an orchestrator) ----

  /// True the first time a result for `id` reaches this instance's sinks. Any thread.
  bool first_result(const std::string& id) {
    const std::lock_guard lock(mutex_);
    awaiting_.erase(id);
    return delivered_.insert(id);
  }

  /// Asks redis about every job enqueued here with no result yet (kAccount), after the subscriber
  /// came back: a result published meanwhile comes again, a job redis lost fails with UNAVAILABLE, and
  /// one whose kept result expired fails here. Retried while redis cannot be reached. On the strand.
  void account() {
    if (accounting_) {
      account_again_ = true;
      return;
    }
    std::vector<std::pair<std::string, std::string>> jobs;
    {
      const std::lock_guard lock(mutex_);
      for (const auto& [id, awaited] : awaiting_) {
        if (awaited.queued) {
          jobs.emplace_back(id, awaited.session);
        }
      }
    }
    if (jobs.empty() || closed_) {
      return;
    }
    accounting_ = true;
    auto left = std::make_shared<std::size_t>((jobs.size() + kAccountBatch - 1) / kAccountBatch);
    auto failed = std::make_shared<bool>(false);
    for (std::size_t i = 0; i < jobs.size(); i += kAccountBatch) {
      std::vector<std::string> args{"EVALSHA", scripts::kAccount.sha1(), "0", options_.prefix};
      for (std::size_t j = i; j < std::min(jobs.size(), i + kAccountBatch); ++j) {
        args.insert(args.end(), {jobs[j].first, jobs[j].second});
      }
      guarded(guard_, client_, scripts::kAccount, std::move(args),
              [self = shared_from_this(), left, failed](Status s, redis::Reply r) {
                boost::asio::post(self->strand_, [self, left, failed, s, r = std::move(r)]() mutable {
                  if (s.ok() && r.is_array() && r.elements().size() >= 2) {
                    self->accounted(r.elements());
                  } else {
                    *failed = true;
                  }
                  if (--*left > 0) {
                    return;
                  }
                  self->accounting_ = false;
                  if (*failed) {
                    self->account_retry_.expires_after(Ms(500));
                    self->account_retry_.async_wait([self](boost::system::error_code ec) {
                      if (!ec) {
                        self->account();
                      }
                    });
                  } else if (std::exchange(self->account_again_, false)) {
                    self->account();
                  }
                });
              });
    }
  }

  /// kAccount's answer {lost, republished, gone ids...}: the gone ones fail here. On the strand.
  void accounted(std::vector<redis::Reply>& reply) {
    const auto lost = reply[0].integer();
    const auto republished = reply[1].integer();
    if (lost > 0 || republished > 0 || reply.size() > 2) {
      log_.warn("queue.accounted", {{"lost", lost}, {"republished", republished},
                                    {"result_expired", static_cast<std::int64_t>(reply.size() - 2)}});
    }
    for (std::size_t i = 2; i < reply.size(); ++i) {
      const std::string id = reply[i].take_str();
      std::shared_ptr<const EventSink> sink;
      std::string session;
      {
        const std::lock_guard lock(mutex_);
        const auto job = awaiting_.find(id);
        if (job == awaiting_.end()) {
          continue;  // its result arrived meanwhile
        }
        session = job->second.session;
        const auto it = sinks_.find(session);
        if (it == sinks_.end()) {
          awaiting_.erase(job);  // no one is left to tell
          continue;
        }
        sink = it->second;
      }
      if (sink && first_result(id)) {
        (*sink)(JobEvent{id, session, JobEventType::result,
                         failed_result(id, Code::unavailable,
                                       "the job ended, but its result was lost while this instance was cut off "
                                       "from redis")});
      }
    }
  }

  // ---- periodic: depth, heartbeat, reaper ----

  void tick() {
    if (closed_) {
      return;
    }
    guarded(guard_, client_, {"LLEN", options_.prefix + "jobs"}, [self = shared_from_this()](Status s, redis::Reply r) {
      if (s.ok()) {
        const std::lock_guard lock(self->mutex_);
        self->depth_ = static_cast<std::uint64_t>(std::max(0LL, r.integer()));
        self->depth_gauge_.set(static_cast<double>(self->depth_));
      }
    });
    if (const auto now = std::chrono::steady_clock::now(); now - last_account_ >= kAccountEvery) {
      last_account_ = now;
      account();
    }
    if (handler_ && !handed_back_) {
      if (lease_until_ns_.load() != 0 && lease_lapsed()) {
        renew_incarnation("lease lapsed");
      }
      beat();
      reap();
    }
    if (stopping_) {
      maybe_finish_shutdown();
    }
    ticker_.expires_after(options_.heartbeat);
    ticker_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) {
        self->tick();
      }
    });
  }

  [[nodiscard]] static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  /// This process still holds the leases of the jobs it claimed under `epoch`: it is still that
  /// incarnation, and its last renewal was acknowledged less than JOB_LEASE_MS ago (measured from
  /// when it was sent, so never later than redis lets the key expire). Any thread.
  [[nodiscard]] bool holds_lease(std::uint64_t epoch) const { return epoch_.load() == epoch && !lease_lapsed(); }
  [[nodiscard]] bool lease_lapsed() const { return now_ns() >= lease_until_ns_.load(); }
  [[nodiscard]] std::string worker_of(std::uint64_t epoch) const { return worker_base_ + ":" + std::to_string(epoch); }

  /// The lease lapsed (a pause, a partition, a stalled redis): the jobs claimed under it are fenced
  /// off, and the worker goes on as a new incarnation, so nothing it claims from now on can be
  /// mistaken for what it held before. The old incarnation's jobs are the reaper's to redeliver.
  void renew_incarnation(const std::string& why) {
    const std::uint64_t old = epoch_.load();
    epoch_.store(old + 1);
    lease_until_ns_.store(0);  // the new incarnation holds nothing until redis acknowledges its lease
    worker_ = worker_of(old + 1);
    lease_lapses_.inc();
    log_.warn("queue.new_incarnation",
              {{"worker", worker_}, {"epoch", old + 1}, {"running", running_.load()}, {"why", why}});
    if (blocking_) {
      // A BLMOVE in flight moves into the old incarnation's list: the reaper hands such ids back.
      blocking_->stop();
      redis::ClientOptions co;
      co.endpoint = options_.endpoint;
      co.name = "queue-take";
      co.command_timeout = options_.block + Ms(2000);
      blocking_ = redis::Client::create(io_, co, log_);
      blocking_->start();
      taking_ = false;
    }
    beat();
  }

  void beat() {
    const std::string px = std::to_string(options_.lease.count());
    const std::int64_t sent = now_ns();
    const std::uint64_t epoch = epoch_.load();
    // SADD first, on the same connection: a lease is only acknowledged once the reaper sees the worker.
    guarded(guard_, client_, {"SADD", options_.prefix + "workers", worker_}, [](Status, redis::Reply) {});
    guarded(guard_, client_, {"SET", options_.prefix + "worker:" + worker_, "1", "PX", px},
            [self = shared_from_this(), sent, epoch](Status s, redis::Reply) {
              if (s.ok() && self->epoch_.load() == epoch) {
                const std::int64_t until =
                    sent + std::chrono::duration_cast<std::chrono::nanoseconds>(self->options_.lease).count();
                std::int64_t seen = self->lease_until_ns_.load();
                while (until > seen && !self->lease_until_ns_.compare_exchange_weak(seen, until)) {
                }
              }
            });
  }

  /// One consumer at a time reaps (a lock that expires on its own).
  void reap() {
    guarded(guard_, client_,
            {"SET", options_.prefix + "reaper", worker_, "NX", "PX", std::to_string(options_.heartbeat.count() * 2)},
            [self = shared_from_this()](Status s, redis::Reply r) {
              if (!s.ok() || !r.is_status()) {
                return;
              }
              guarded(self->guard_, self->client_, scripts::kReap,
                      {"EVALSHA", scripts::kReap.sha1(), "0", self->options_.prefix, std::to_string(self->options_.max_attempts)},
                      [self](Status s2, redis::Reply r2) {
                        if (!s2.ok() || !r2.is_array() || r2.elements().size() < 2) {
                          return;
                        }
                        const auto redelivered = r2.elements()[0].integer();
                        const auto failed = r2.elements()[1].integer();
                        if (redelivered > 0 || failed > 0) {
                          self->redelivered_.inc(static_cast<double>(redelivered));
                          self->log_.warn("queue.reaped", {{"redelivered", redelivered}, {"failed", failed}});
                          const std::lock_guard lock(self->mutex_);
                          self->stats_.redelivered += static_cast<std::uint64_t>(redelivered);
                        }
                      });
            });
  }

  // ---- shutdown (on the strand) ----

  void maybe_finish_shutdown() {
    if (!stopping_ || !on_shutdown_ || finishing_) {
      return;
    }
    const bool late = std::chrono::steady_clock::now() >= shutdown_deadline_;
    if (handler_ && running_ > 0 && !late) {
      return;  // the next completion or tick looks again
    }
    finishing_ = true;
    if (!handler_) {
      finish_shutdown();
      return;
    }
    // Leaves the worker set; jobs still running (past the grace period) go back to the queue.
    guarded(guard_, client_, scripts::kHandBack, {"EVALSHA", scripts::kHandBack.sha1(), "0", options_.prefix, worker_},
            [self = shared_from_this()](Status s, redis::Reply r) {
              boost::asio::post(self->strand_, [self, s, r] {
                if (s.ok() && r.integer() > 0) {
                  self->log_.warn("queue.handed_back", {{"jobs", r.integer()}});
                }
                self->handed_back_ = true;
                self->finish_shutdown();
              });
            });
  }

  void finish_shutdown() {
    closed_ = true;
    ticker_.cancel();
    retry_.cancel();
    account_retry_.cancel();
    if (blocking_) {
      blocking_->stop();
    }
    {
      const std::lock_guard lock(mutex_);
      if (subscriber_) {
        subscriber_->stop();
      }
    }
    if (auto done = std::exchange(on_shutdown_, nullptr)) {
      boost::asio::post(host_.executor(), std::move(done));
    }
  }

  HostServices& host_;
  boost::asio::any_io_executor io_;
  Logger& log_;
  plugin::Guard& guard_;
  const Options options_;
  const std::string worker_base_;
  std::string worker_;                            // worker_base_:epoch, the incarnation (on the strand)
  std::atomic<std::uint64_t> epoch_{1};           // the fencing token of the jobs claimed now
  std::atomic<std::int64_t> lease_until_ns_{0};  // steady clock: the lease holds until then
  Strand strand_;
  boost::asio::steady_timer ticker_;
  boost::asio::steady_timer retry_;
  std::shared_ptr<redis::Client> client_;
  std::shared_ptr<redis::Client> blocking_;  // BLMOVE only: it holds up every command behind it
  mutable std::mutex mutex_;                 // guards subscriber_, stats_, depth_
  std::shared_ptr<redis::Subscriber> subscriber_;
  QueueStats stats_;
  std::uint64_t depth_ = 0;
  // On the strand:
  JobHandler handler_;
  unsigned concurrency_ = 1;
  std::atomic<unsigned> running_{0};
  bool taking_ = false;
  bool recovering_ = false;               // a take or claim reply was lost: recover() before the next take
  struct RunningId {
    std::uint32_t attempt = 1;
    std::uint64_t epoch = 0;  // the incarnation that claimed it
  };
  std::map<std::string, RunningId> running_ids_;  // the jobs handed to the handler, not yet completed in redis
  std::optional<std::chrono::steady_clock::time_point> recover_since_;  // recovering_ since then
  std::deque<Completion> completed_lately_;  // within kReplayWindow, for recover() to replay
  struct FencedRun {
    std::string id;
    std::uint32_t attempt = 1;
    std::chrono::steady_clock::time_point at{};
  };
  std::deque<FencedRun> fenced_lately_;  // ended after their lease lapsed, within kReplayWindow
  std::string redis_run_id_;             // the redis server last seen by recover(): a new one restarted
  std::chrono::steady_clock::time_point hold_until_{};  // no take before then (a redis restart)
  bool accounting_ = false;
  std::chrono::steady_clock::time_point last_account_ = std::chrono::steady_clock::now();
  bool account_again_ = false;
  boost::asio::steady_timer account_retry_;
  // Under mutex_ (an orchestrator's): the jobs enqueued here with no result yet (id → session), the
  // sessions' sinks, and the latest results delivered.
  struct Awaited {
    std::string session;
    bool queued = false;  // the enqueue was acknowledged
  };
  std::unordered_map<std::string, Awaited> awaiting_;
  std::unordered_map<std::string, std::shared_ptr<const EventSink>> sinks_;
  RecentIds delivered_{kRecentResults};  // results delivered lately: one published again reaches a sink once
  bool stopping_ = false;
  bool finishing_ = false;
  bool handed_back_ = false;
  std::atomic<bool> closed_{false};
  std::chrono::steady_clock::time_point shutdown_deadline_{};
  std::function<void()> on_shutdown_;
  Gauge& depth_gauge_;
  Counter& enqueued_;
  Counter& completed_;
  Counter& failed_;
  Counter& redelivered_;
  Counter& deferred_;
  Counter& lease_refused_;
  Counter& lease_lapses_;
};

/// The strategy the host owns; the queue itself is shared with its own completions.
class Handle final : public plugin::QueueStrategy {
 public:
  Handle(HostServices& host, Options options)
      : io_(std::make_unique<redis_plugins::IoThread>()),
        queue_(std::make_shared<RedisQueue>(host, std::move(options), io_->executor())) {
    queue_->start();
  }
  ~Handle() override {
    queue_->close();
    queue_.reset();
    io_->drain();  // the queue's last handlers run out and release it
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  [[nodiscard]] bool remote() const noexcept override { return queue_->remote(); }
  void enqueue(Job job, std::function<void(Status)> queued) noexcept override { queue_->enqueue(std::move(job), std::move(queued)); }
  void consume(unsigned concurrency, JobHandler handler) noexcept override { queue_->consume(concurrency, std::move(handler)); }
  void set_concurrency(unsigned concurrency) noexcept override { queue_->set_concurrency(concurrency); }
  void subscribe(std::string session_id, EventSink on_event) noexcept override { queue_->subscribe(std::move(session_id), std::move(on_event)); }
  void unsubscribe(std::string_view session_id) noexcept override { queue_->unsubscribe(session_id); }
  [[nodiscard]] QueueStats stats() const noexcept override { return queue_->stats(); }
  void async_shutdown(std::function<void()> done) noexcept override { queue_->async_shutdown(std::move(done)); }

 private:
  std::unique_ptr<redis_plugins::IoThread> io_;
  std::shared_ptr<RedisQueue> queue_;
};

}  // namespace

std::unique_ptr<plugin::QueueStrategy> make_queue(plugin::HostServices& host, Options options) {
  return std::make_unique<Handle>(host, std::move(options));
}

}  // namespace phasekit::queue_redis
