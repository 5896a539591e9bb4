#pragma once
// One tool call, from the queue to its published result. The orchestrator (queue=inproc, jobs run in
// the process that holds the session's socket) and phasekit-worker (queue=redis) both run their jobs
// through it:
//
//   find the session → get a backend → bring the session's files and shell state onto it when they
//   are elsewhere → run the tool (execute_tool) → read the shell state back → save it → append the
//   result to the conversation → publish the result → done
//
// Whatever the tenure: a job runs only in a session its user owns (UNAUTHORIZED, and nothing of the
// session read or written, otherwise); the shell state is saved before the result is published, and
// the result is in the conversation before it is published, so what a client has seen is in the
// store; `done` is called once, after the result was published; every failure ends in a published
// error result. Where the queue leases jobs (Job::leased), a run whose lease was lost stops at its
// next step: it neither starts the tool, nor writes the store, nor parks files, nor publishes. A
// malformed job fails before anything is read or written for it.
//
// What differs is how a session has its backend, the Tenure:
//
//                     held (orchestrator)                    leased (phasekit-worker)
//   the session       its Session's hold (FindHeld)          the store's record, loaded per job
//   the backend       acquired on the session's first call,  acquired for the job, handed back after
//                     kept, shared by its calls              it (files parked in sessions/<id>)
//   files and shell   brought over once per backend, when    brought over for every job, from the
//   state             the session was resumed or parked      record's folder or sessions/<id>
//   …if that fails    logged, and the calls run: the backend  the job fails, and the folder and the
//                     is the session's now, there is no      record stay as they were for the next
//                     next attempt to leave them for         job
//   after a shell     cwd and exports read back and saved    the same, then the files parked and the
//   call              (with `persist` only)                  backend handed back
//   record fields     status, instance and the shell fields  the shell fields only (the orchestrator
//   it writes                                                that holds the socket owns the others)
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "phasekit/app/acquire_times.hpp"
#include "phasekit/app/audit_batcher.hpp"
#include "phasekit/app/inflight_limiter.hpp"
#include "phasekit/app/session_hold.hpp"
#include "phasekit/app/tool_exec.hpp"
#include "phasekit/plugin/compression.hpp"
#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin/pool.hpp"
#include "phasekit/plugin/queue.hpp"
#include "phasekit/plugin/store.hpp"

namespace phasekit::app {

/// How a session's calls get their backend.
enum class Tenure : std::uint8_t {
  held,    // the session holds one from its first call to its end
  leased,  // each job leases one and hands it back when it ends
};

struct LifecycleOptions {
  Tenure tenure = Tenure::held;
  /// Sessions live in a shared store and may move to another instance: the shell state is saved after
  /// every shell call, and files are parked in WORKSPACE_ROOT/sessions/<id> when a held backend goes
  /// back. Always so for Tenure::leased, whose backend goes back after every job.
  bool persist = false;
  ToolLimits limits;
  std::string workspace_root;
  std::string instance_id;  // held: the instance the session's record names
  std::size_t history_limit = 100;
};

class JobLifecycle : public std::enable_shared_from_this<JobLifecycle> {
 public:
  /// Tenure::held: the hold of a session this process holds, or null when there is none (any more).
  /// Called from run() only, synchronously.
  using FindHeld = std::function<HoldPtr(const std::string& session_id)>;

  /// `backends_per_user` (held only; null: no cap) counts the backends each user's sessions hold: a
  /// call that would take one more ends with RESOURCE_EXHAUSTED.
  JobLifecycle(LifecycleOptions options, plugin::PoolStrategy& pool, plugin::StoreStrategy& store,
               plugin::CompressionStrategy& compression, plugin::HostServices& host, Logger& log,
               FindHeld find_held = {}, InflightLimiter* backends_per_user = nullptr);

  /// The queue's JobHandler. Thread-safe.
  void run(plugin::Job job, plugin::QueueStrategy::EventSink sink, plugin::QueueStrategy::JobDone done);

  // A held session's life between its calls. Each is called on the hold's strand.

  /// Writes the session's status and instance (held) to the store, and with `shell` its shell fields
  /// too; `then` runs on the strand once the store answered, whatever it answered.
  void save(const HoldPtr& hold, bool shell, std::function<void()> then);
  /// Appends one entry to the session's conversation (compressed); done runs on the strand.
  void append(const HoldPtr& hold, nlohmann::json entry, std::function<void(Status)> done);
  /// With `persist`: parks the held backend's files in sessions/<id> and gives the backend back, so a
  /// session nobody is connected to holds none; its next call brings the files over. False, and the
  /// backend kept, when there is none or its files could not be moved.
  bool park(const HoldPtr& hold);
  /// The session ended: its backend goes back to the pool, calls waiting for one fail UNAVAILABLE.
  void end(const HoldPtr& hold);
  /// A call no run of this lifecycle settled: the user refused it (approved false, outcome "denied"), or
  /// the queue failed it (its workers kept dying, it ran past its deadline, redis forgot it). Its audit
  /// record (`payload`: its job's) is written, then `then` runs on the strand.
  void audit_settled(const HoldPtr& hold, const std::string& call_id, const std::string& payload, bool approved,
                     std::string outcome, std::uint32_t attempt, std::function<void()> then);

  /// Jobs taken and not yet done.
  [[nodiscard]] std::uint64_t in_flight() const noexcept { return in_flight_.load(); }
  [[nodiscard]] const LifecycleOptions& options() const noexcept { return options_; }

 private:
  struct Run;
  using RunPtr = std::shared_ptr<Run>;

  void load_record(const RunPtr& r);
  void start(const RunPtr& r);
  void use_held_backend(const RunPtr& r);
  void lease_backend(const RunPtr& r);
  void wake(SessionHold& hold, const Status& status);
  void bring_over(const HoldPtr& hold, std::function<void(Status)> then);
  void settle_on(const HoldPtr& hold, const std::string& backend_id, const std::string& workspace,
                 std::function<void(Status)> then);
  void run_tool(const RunPtr& r);
  void finish(const RunPtr& r, nlohmann::json result, Status status);
  void read_back(const RunPtr& r);
  void put_away(const RunPtr& r, bool changed);
  /// Held: parks the backend's files in the session folder and gives the backend back (park()).
  Status hand_back(SessionHold& hold);
  /// Leased: commits the job's files over the session folder (commit_files) and hands the backend
  /// back; false when another run committed or the lease was lost (the run is abandoned).
  bool commit(const RunPtr& r);
  /// The session's files are in `folder` now: the next backend brings them over, this one goes back.
  void parked_in(SessionHold& hold, const std::string& folder);
  /// phasekit_jobs_total{outcome}.
  void count_job(const char* outcome);
  /// The hold's backend goes back to the pool, and out of its user's count.
  void drop_backend(SessionHold& hold, bool reusable);
  void uncount_backend(const SessionHold& hold);
  /// Records the result in the session's history under the attempt the queue confirms (Job::confirm),
  /// then delivers it.
  void publish(const RunPtr& r);
  /// Appends the result to the conversation and its audit record to the log in one store write
  /// (StoreStrategy::append_result, through write_through), then delivers it; when that write fails
  /// for good, audit_and_deliver().
  void record(const RunPtr& r);
  /// Writes the call's audit record (write_through, batched), then delivers the result: a result the
  /// user got is in the log.
  void audit_and_deliver(const RunPtr& r);
  /// The audit record of a run that ended: its outcome, exit code, duration and output size.
  [[nodiscard]] plugin::AuditRecord run_record(const RunPtr& r) const;
  [[nodiscard]] plugin::AuditRecord audit_record(const std::string& call_id, const std::string& user_id,
                                                 const std::string& session_id, std::string_view payload) const;
  void audit(SessionHold::Strand strand, plugin::AuditRecord record, std::function<bool()> keep_trying,
             std::chrono::steady_clock::time_point give_up, std::function<void()> then);
  /// A store write, tried again after a transient failure (UNAVAILABLE, TIMEOUT) with a doubling
  /// backoff, until `give_up` (a result's writes share one: kWriteRetryFor from its first) and while
  /// `keep_trying` says so; `then` gets the last status on
  /// `strand` (a failure is the caller's to log: the result goes out anyway). A failure whose command
  /// reached the store (a reply lost with its connection) may leave a conversation entry there twice:
  /// a history that says a result twice beats one that misses a result the user saw. (An audit record
  /// written twice is one: the log keeps one per call.)
  void write_through(SessionHold::Strand strand, std::function<void(std::function<void(Status)>)> write,
                     std::function<bool()> keep_trying, std::chrono::steady_clock::time_point give_up,
                     std::function<void(Status)> then);
  struct Retry {
    SessionHold::Strand strand;
    std::function<void(std::function<void(Status)>)> write;
    std::function<bool()> keep_trying;
    std::function<void(Status)> then;
    std::chrono::milliseconds backoff;
    std::chrono::steady_clock::time_point give_up;
  };
  void try_write(std::shared_ptr<Retry> w);
  static constexpr std::chrono::milliseconds kWriteFirstBackoff{50};
  static constexpr std::chrono::milliseconds kWriteMaxBackoff{2000};
  static constexpr std::chrono::seconds kWriteRetryFor{15};
  void deliver(const RunPtr& r);
  /// The queue says this process no longer holds the job's lease (Job::leased).
  static bool lease_lost(const RunPtr& r);
  /// Ends a run whose lease was lost: nothing more is written or published, `done` says UNAVAILABLE.
  void abandon(const RunPtr& r, const char* when);

  LifecycleOptions options_;
  plugin::PoolStrategy& pool_;
  plugin::StoreStrategy& store_;
  plugin::CompressionStrategy& compression_;
  plugin::HostServices& host_;
  Logger& log_;
  FindHeld find_held_;
  InflightLimiter* backends_per_user_;
  AcquireTimes acquire_times_;
  std::shared_ptr<AuditBatcher> audit_batcher_;  // the audit records of calls that end together: one write
  std::atomic<std::uint64_t> in_flight_{0};
};

}  // namespace phasekit::app
