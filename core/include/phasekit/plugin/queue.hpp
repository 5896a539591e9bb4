#pragma once
// kind = queue: carries approved tool calls (jobs) to whoever runs them, and their output back to
// the session. `inproc` runs them in this process; `redis` hands them to phasekit-workers.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "phasekit/status.hpp"

namespace phasekit::plugin {

struct Job {
  std::string id;          // the callId
  std::string user_id;
  std::string session_id;
  std::string payload;     // JSON: {"tool":…, "args":…}
  std::int64_t timeout_ms = 0;
  std::uint32_t attempt = 1;
  /// The fencing token the queue leased this job under (queue=redis: the incarnation of the worker
  /// that claimed it, which changes whenever that worker's lease lapsed). 0 where there are no leases.
  std::uint64_t lease_epoch = 0;
  /// True while this process still holds the job's lease; empty means always. The runner asks before
  /// each side effect (starting the tool, every store write, committing files, publishing the result):
  /// a job whose lease is gone was or will be redelivered, and its stale run must change nothing.
  std::function<bool()> leased;
  /// Asked once the job has its result, before it is recorded in the session's history: calls back
  /// (on any thread) with 0 when this process no longer holds the job's lease, else the attempt the
  /// queue says the job runs under now. That can be above `attempt`: when two workers ran the job under
  /// one attempt (a redis restart lost a claim), the one that finds out raises it, and the history must
  /// say what the user's tool:result says. Empty: `leased()` and `attempt` are the answer.
  std::function<void(std::function<void(std::uint32_t attempt)>)> confirm;
};

/// output: a tool:output chunk; result: the job's one tool:result; redelivered: a job whose result went
/// out already was run once more under its attempt (a worker that lost its lease ran it meanwhile),
/// data {"callId", "attempt"}: the user hears of it as tool:redelivered, and the history keeps it.
enum class JobEventType : std::uint8_t { output, result, redelivered };

struct JobEvent {
  std::string job_id;
  std::string session_id;
  JobEventType type = JobEventType::result;
  std::string data;  // JSON of the tool:output chunk or the tool:result
};

struct QueueStats {
  std::uint64_t depth = 0;      // queued, not yet taken
  std::uint64_t in_flight = 0;  // taken, not yet done
  std::uint64_t enqueued = 0;
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;
  std::uint64_t redelivered = 0;
  std::uint64_t rejected = 0;
};

class QueueStrategy {
 public:
  using EventSink = std::function<void(JobEvent)>;
  /// Called once per job taken; the job is acknowledged when done is called (Status = how it ended).
  using JobDone = std::function<void(Status)>;
  using JobHandler = std::function<void(Job, EventSink, JobDone)>;

  virtual ~QueueStrategy() = default;
  /// True when the jobs enqueued here are taken by other processes (phasekit-worker) from a queue
  /// they share: an orchestrator with a remote queue runs no backends, and a worker needs one.
  [[nodiscard]] virtual bool remote() const noexcept = 0;
  /// Completes (posted) once the job is durably queued, or with UNAVAILABLE/TOO_MANY_REQUESTS.
  virtual void enqueue(Job job, std::function<void(Status)> queued) noexcept = 0;
  /// Starts taking jobs, at most `concurrency` at once. Called at most once.
  virtual void consume(unsigned concurrency, JobHandler handler) noexcept = 0;
  /// Changes how many jobs run at once from now on (the autoscaler's recommendation); jobs already
  /// running finish.
  virtual void set_concurrency(unsigned concurrency) noexcept = 0;
  /// Events of jobs of this session are delivered (posted) to on_event until unsubscribe.
  virtual void subscribe(std::string session_id, EventSink on_event) noexcept = 0;
  virtual void unsubscribe(std::string_view session_id) noexcept = 0;
  [[nodiscard]] virtual QueueStats stats() const noexcept = 0;
  /// Takes no new jobs, waits for those in flight (or hands them back), then completes.
  virtual void async_shutdown(std::function<void()> done) noexcept = 0;
};

}  // namespace phasekit::plugin
