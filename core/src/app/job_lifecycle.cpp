#include "phasekit/app/job_lifecycle.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <optional>

#include "phasekit/app/session_state.hpp"
#include "phasekit/backend/shell_backend.hpp"
#include "phasekit/bytes.hpp"

namespace phasekit::app {
namespace {

using json = nlohmann::json;

backend::ShellBackendPtr shell_of(const plugin::BackendPtr& backend) {
  return std::dynamic_pointer_cast<backend::ShellBackend>(backend);
}

}  // namespace

struct JobLifecycle::Run {
  plugin::Job job;
  json payload;
  std::optional<std::string> command;  // set for shell calls
  plugin::QueueStrategy::EventSink sink;
  plugin::QueueStrategy::JobDone done;
  HoldPtr hold;                // null while the session is not found, and when the job may not touch it
  plugin::BackendPtr backend;  // what the tool runs on
  bool ran = false;            // execute_tool was called: the shell state may have changed
  bool brought = false;        // the session's files reached the backend whole: only then are they committed back
  json result;
  Status status;
  /// Until when the result's store writes (conversation, audit) are tried again, together.
  std::optional<std::chrono::steady_clock::time_point> write_deadline;
};

JobLifecycle::JobLifecycle(LifecycleOptions options, plugin::PoolStrategy& pool, plugin::StoreStrategy& store,
                           plugin::CompressionStrategy& compression, plugin::HostServices& host, Logger& log,
                           FindHeld find_held, InflightLimiter* backends_per_user)
    : options_(std::move(options)),
      pool_(pool),
      store_(store),
      compression_(compression),
      host_(host),
      log_(log),
      find_held_(std::move(find_held)),
      backends_per_user_(options_.tenure == Tenure::held ? backends_per_user : nullptr),
      acquire_times_(host.metrics()),
      audit_batcher_(std::make_shared<AuditBatcher>(store, &host)) {
  if (options_.tenure == Tenure::leased) {
    options_.persist = true;  // nothing stays on a leased backend
  }
}

void JobLifecycle::run(plugin::Job job, plugin::QueueStrategy::EventSink sink, plugin::QueueStrategy::JobDone done) {
  ++in_flight_;
  auto r = std::make_shared<Run>();
  r->job = std::move(job);
  r->sink = std::move(sink);
  r->done = std::move(done);
  r->payload = json::parse(r->job.payload, nullptr, false);
  untag_binary(r->payload);
  if (r->payload.is_discarded() || !r->payload.is_object() || !r->payload.contains("tool")) {
    const Status bad(Code::bad_request, "malformed job");
    finish(r, error_result(bad), bad);
    return;
  }
  r->command = shell_command(r->payload);
  if (options_.tenure == Tenure::leased) {
    load_record(r);
    return;
  }
  r->hold = find_held_ ? find_held_(r->job.session_id) : nullptr;
  if (!r->hold) {
    const Status gone(Code::unavailable, "session ended before the job ran");
    finish(r, error_result(gone), gone);
    return;
  }
  boost::asio::post(r->hold->strand, [self = shared_from_this(), r] { self->start(r); });
}

void JobLifecycle::load_record(const RunPtr& r) {
  store_.get_session(r->job.session_id, [self = shared_from_this(), r](Status s, plugin::SessionRecord record) {
    if (!s.ok() && s.code() != Code::not_found) {
      const Status down(Code::unavailable, "session store: " + s.message());
      self->finish(r, error_result(down), down);
      return;
    }
    auto hold = std::make_shared<SessionHold>(r->job.session_id, s.ok() ? record.user_id : std::string(),
                                              make_io_strand(self->host_.executor()));
    if (s.ok()) {
      hold->take_shell_fields(record);
      hold->stored = true;
    }
    hold->restore = true;  // a leased backend comes fresh from the pool: the session is elsewhere
    r->hold = std::move(hold);
    boost::asio::post(r->hold->strand, [self, r] { self->start(r); });
  });
}

void JobLifecycle::start(const RunPtr& r) {
  if (!r->hold->user.empty() && r->hold->user != r->job.user_id) {
    r->hold = nullptr;  // another user's session: nothing of it is read or written
    const Status denied(Code::unauthorized, "the job's user does not own its session");
    finish(r, error_result(denied), denied);
    return;
  }
  if (options_.tenure == Tenure::held) {
    use_held_backend(r);
  } else {
    lease_backend(r);
  }
}

void JobLifecycle::use_held_backend(const RunPtr& r) {
  SessionHold& hold = *r->hold;
  if (hold.ended) {
    const Status ended(Code::unavailable, "session ended");
    finish(r, error_result(ended), ended);
    return;
  }
  if (hold.backend && !hold.backend->alive()) {
    drop_backend(hold, false);
  }
  if (hold.backend) {
    r->backend = hold.backend;
    run_tool(r);
    return;
  }
  hold.waiters.push_back([self = shared_from_this(), r](Status s) {
    if (!s.ok()) {
      self->finish(r, error_result(s), s);
      return;
    }
    r->backend = r->hold->backend;
    self->run_tool(r);
  });
  if (hold.acquiring) {
    return;
  }
  if (backends_per_user_ != nullptr && !backends_per_user_->try_acquire(hold.user)) {
    wake(hold, Status(Code::resource_exhausted,
                      fmt::format("this user's sessions hold {} backends already (MAX_BACKENDS_PER_USER); end "
                                  "or disconnect one of them",
                                  backends_per_user_->limit())));
    return;
  }
  hold.acquiring = true;
  const auto started = std::chrono::steady_clock::now();
  pool_.acquire({hold.user, hold.id}, [self = shared_from_this(), hold = r->hold, started](Status s,
                                                                                          plugin::Lease lease) {
    // Timed when the pool answers, before the hop onto the session's strand: under load that queue
    // is the event loop's delay, not the pool's.
    self->acquire_times_.observe(s, lease, started);
    boost::asio::post(hold->strand, [self, hold, s = std::move(s), lease = std::move(lease)]() mutable {
      hold->acquiring = false;
      if (!s.ok()) {
        self->uncount_backend(*hold);
        self->wake(*hold, s);
        return;
      }
      if (hold->ended) {
        self->pool_.release(std::move(lease.backend), true);
        self->uncount_backend(*hold);
        self->wake(*hold, Status(Code::unavailable, "session ended"));
        return;
      }
      hold->backend = std::move(lease.backend);
      self->bring_over(hold, [self, hold](Status brought) { self->wake(*hold, brought); });
    });
  });
}

void JobLifecycle::lease_backend(const RunPtr& r) {
  const auto started = std::chrono::steady_clock::now();
  pool_.acquire({r->job.user_id, r->job.session_id}, [self = shared_from_this(), r, started](Status s,
                                                                                           plugin::Lease lease) {
    self->acquire_times_.observe(s, lease, started);
    boost::asio::post(r->hold->strand, [self, r, s = std::move(s), lease = std::move(lease)]() mutable {
      if (!s.ok()) {
        self->finish(r, error_result(s), s);
        return;
      }
      if (lease_lost(r)) {
        // Before the session's files move: they stay where the job's next run finds them.
        self->pool_.release(std::move(lease.backend), true);
        self->abandon(r, "before its files were brought over");
        return;
      }
      r->backend = lease.backend;
      r->hold->backend = std::move(lease.backend);
      self->bring_over(r->hold, [self, r](Status brought) {
        if (!brought.ok()) {
          self->finish(r, error_result(brought), brought);
          return;
        }
        r->brought = true;
        self->run_tool(r);
      });
    });
  });
}

void JobLifecycle::wake(SessionHold& hold, const Status& status) {
  auto waiters = std::exchange(hold.waiters, {});
  for (auto& w : waiters) {
    w(status);
  }
}

void JobLifecycle::bring_over(const HoldPtr& hold, std::function<void(Status)> then) {
  if (!options_.persist) {
    then(Status());  // the session lives on this backend alone
    return;
  }
  auto shell = shell_of(hold->backend);
  if (!shell) {
    then(Status(Code::internal, "backend cannot run tools"));
    return;
  }
  const bool held = options_.tenure == Tenure::held;
  if (!std::exchange(hold->restore, false)) {
    settle_on(hold, std::string(shell->id()), shell->workspace(), std::move(then));
    return;
  }
  const std::string& root = options_.workspace_root;
  const std::string parked = session_folder(root, hold->id);
  std::string from = parked;
  if (!hold->workspace.empty()) {
    if (Status s = check_beneath(root, hold->workspace); s.ok()) {
      from = hold->workspace;
    } else {
      log_.warn("session.workspace_refused", {{"session", hold->id}, {"error", s.message()}});
    }
  }
  if (from != shell->workspace() && !held) {
    // Copied, not moved: the session folder stays whole until this job commits over it, so a run of
    // this job whose lease is lost meanwhile leaves it as the next run needs it.
    if (Status copied = copy_entries(from, shell->workspace(), hold->files_base_dev, hold->files_base_ino);
        !copied.ok()) {
      then(copied);
      return;
    }
    if (from != parked) {
      folder_identity(parked, hold->files_base_dev, hold->files_base_ino);
    }
  } else if (from != shell->workspace()) {
    if (Status moved = move_entries(from, shell->workspace()); !moved.ok()) {
      if (!held) {
        then(moved);
        return;
      }
      log_.warn("session.workspace_not_moved", {{"session", hold->id}, {"error", moved.message()}});
    } else {
      // Nothing comes back to it: a dead backend's workspace or, for a held session, the sessions
      // folder until the next park makes it again. A leased job parks its files there at its end.
      std::error_code ec;
      std::filesystem::remove(from, ec);
    }
  }
  if (hold->shell.cwd.empty() && hold->shell.env.empty()) {
    settle_on(hold, std::string(shell->id()), shell->workspace(), std::move(then));
    return;
  }
  restore_state(shell, hold->shell, [self = shared_from_this(), hold, shell, held,
                                     then = std::move(then)](Status s) mutable {
    boost::asio::post(hold->strand, [self, hold, shell, held, s, then = std::move(then)]() mutable {
      if (!s.ok()) {
        if (!held) {
          then(s);
          return;
        }
        self->log_.warn("session.state_not_restored", {{"session", hold->id}, {"error", s.message()}});
      }
      self->settle_on(hold, std::string(shell->id()), shell->workspace(), std::move(then));
    });
  });
}

void JobLifecycle::settle_on(const HoldPtr& hold, const std::string& backend_id, const std::string& workspace,
                             std::function<void(Status)> then) {
  if (options_.tenure == Tenure::leased) {
    then(Status());  // recorded when the job hands the backend back
    return;
  }
  // The record names the backend that holds the session's files now, for a client resuming elsewhere.
  hold->backend_id = backend_id;
  hold->workspace = workspace;
  save(hold, true, [then = std::move(then)] { then(Status()); });
}

bool JobLifecycle::lease_lost(const RunPtr& r) {
  return r->job.leased && !r->job.leased();
}

void JobLifecycle::abandon(const RunPtr& r, const char* when) {
  // The queue gave (or will give) the job to another run: this one writes, commits and publishes
  // nothing more, and its backend goes back without its files being parked over the next run's.
  log_.warn("job.lease_lost", {{"callId", r->job.id}, {"session", r->job.session_id},
                               {"epoch", r->job.lease_epoch}, {"when", when}});
  if (r->hold && options_.tenure == Tenure::leased && r->hold->backend) {
    drop_backend(*r->hold, false);
  }
  count_job("lease_lost");
  --in_flight_;
  r->done(Status(Code::unavailable, "the job's lease was lost; it is redelivered"));
}

void JobLifecycle::run_tool(const RunPtr& r) {
  if (lease_lost(r)) {
    abandon(r, "before the tool started");
    return;
  }
  r->ran = true;
  execute_tool(options_.limits, shell_of(r->backend), r->payload, r->job.id, r->job.session_id,
               std::chrono::milliseconds(r->job.timeout_ms), r->sink,
               [self = shared_from_this(), r](json result, Status status) {
                 boost::asio::post(r->hold->strand, [self, r, result = std::move(result), status]() mutable {
                   self->finish(r, std::move(result), std::move(status));
                 });
               });
}

void JobLifecycle::finish(const RunPtr& r, json result, Status status) {
  result["callId"] = r->job.id;
  if (r->job.attempt > 1) {
    // A redelivery, said to the user: its command may have run in the lost attempt too.
    result["attempt"] = r->job.attempt;
  }
  r->result = std::move(result);
  r->status = std::move(status);
  read_back(r);
}

void JobLifecycle::read_back(const RunPtr& r) {
  // Only a command that ran can have changed the shell; a held session that ended meanwhile has
  // given its backend away, and nothing of it is saved any more.
  auto shell = shell_of(r->backend);
  if (!options_.persist || !r->hold || !r->ran || !r->command || !shell || r->hold->backend != r->backend) {
    put_away(r, false);
    return;
  }
  remember_command(r->hold->history, *r->command, options_.history_limit);
  capture_state(shell, [self = shared_from_this(), r](Status s, ShellState state) {
    boost::asio::post(r->hold->strand, [self, r, s, state = std::move(state)]() mutable {
      if (s.ok()) {
        r->hold->shell = std::move(state);
      } else {
        self->log_.warn("session.state_unreadable", {{"session", r->hold->id}, {"error", s.message()}});
      }
      self->put_away(r, true);
    });
  });
}

void JobLifecycle::put_away(const RunPtr& r, bool changed) {
  if (lease_lost(r)) {
    abandon(r, r->ran ? "after the tool ran" : "before the tool started (it ended without running)");
    return;
  }
  if (r->hold && options_.tenure == Tenure::leased && r->hold->backend) {
    if (!r->brought) {
      // The files never reached the backend whole (a full disk stopped the copy): what it holds is
      // no version of the session's, and the session folder, untouched, stays the one to bring over.
      parked_in(*r->hold, session_folder(options_.workspace_root, r->hold->id));
    } else if (!commit(r)) {
      return;
    } else {
      changed = true;
    }
  }
  if (!r->hold || !r->hold->stored || !changed) {
    publish(r);
    return;
  }
  // Saved before the result is published: a client that resumes elsewhere after seeing it finds it.
  save(r->hold, true, [self = shared_from_this(), r] { self->publish(r); });
}

bool JobLifecycle::commit(const RunPtr& r) {
  SessionHold& hold = *r->hold;
  const std::string folder = session_folder(options_.workspace_root, hold.id);
  if (auto shell = shell_of(hold.backend)) {
    bool conflict = false;
    const Status s = commit_files(folder, shell->workspace(), fmt::format("{}.{}", r->job.id, r->job.lease_epoch),
                                  hold.files_base_dev, hold.files_base_ino, r->job.leased, conflict);
    if (conflict) {
      abandon(r, s.message().c_str());
      return false;
    }
    if (!s.ok()) {
      // A lease ends with its job whatever happens: the pool resets the backend and what the job
      // wrote is lost. The session folder keeps its files from before the job, and the user is told.
      log_.error("worker.workspace_not_saved", {{"session", hold.id}, {"error", s.message()}});
      r->status = Status(Code::unavailable, "the call ran, but its files could not be saved: " + s.message());
      r->result["error"] = {{"code", wire_name(r->status.code())}, {"message", r->status.message()}};
    }
  }
  parked_in(hold, folder);
  return true;
}

Status JobLifecycle::hand_back(SessionHold& hold) {
  // Only a held session parks (Session::detach, through park()); a leased job commits its files
  // with commit_files instead, and never gets here.
  const std::string folder = session_folder(options_.workspace_root, hold.id);
  if (auto shell = shell_of(hold.backend)) {
    if (Status moved = park_files(folder, shell->workspace()); !moved.ok()) {
      log_.warn("session.workspace_not_parked", {{"session", hold.id}, {"error", moved.message()}});
      return moved;  // keep the backend: the files are still on it
    }
  }
  parked_in(hold, folder);
  return Status();
}

void JobLifecycle::parked_in(SessionHold& hold, const std::string& folder) {
  hold.workspace = folder;
  hold.backend_id.clear();
  hold.restore = true;
  drop_backend(hold, true);
}

void JobLifecycle::drop_backend(SessionHold& hold, bool reusable) {
  pool_.release(std::exchange(hold.backend, nullptr), reusable);
  uncount_backend(hold);
}

void JobLifecycle::uncount_backend(const SessionHold& hold) {
  if (backends_per_user_ != nullptr) {
    backends_per_user_->release(hold.user);
  }
}

void JobLifecycle::publish(const RunPtr& r) {
  if (lease_lost(r)) {
    abandon(r, "before its result was appended");
    return;
  }
  if (!r->hold || !r->hold->stored) {
    audit_and_deliver(r);
    return;
  }
  if (!r->job.confirm) {
    record(r);
    return;
  }
  // The history must say the attempt the user's tool:result will say, and another worker's recovery
  // may have raised it while this run went on (Job::confirm).
  r->job.confirm([self = shared_from_this(), r](std::uint32_t attempt) {
    boost::asio::post(r->hold->strand, [self, r, attempt] {
      if (attempt == 0) {
        self->abandon(r, "before its result was appended");
        return;
      }
      if (attempt > r->job.attempt) {
        r->job.attempt = attempt;
        r->result["attempt"] = attempt;
      }
      self->record(r);
    });
  });
}

void JobLifecycle::record(const RunPtr& r) {
  auto blob = std::make_shared<std::string>();
  if (Status s = conversation_blob(json{{"role", "tool"}, {"result", r->result}}, host_.clock(), compression_, *blob);
      !s.ok()) {
    log_.warn("history.append_failed", {{"session", r->hold->id}, {"callId", r->job.id}, {"error", s.message()}});
    audit_and_deliver(r);
    return;
  }
  r->write_deadline = host_.clock().now() + kWriteRetryFor;
  // The history entry and the audit record in one store write (one commit for a call that ends alone).
  auto record = std::make_shared<const plugin::AuditRecord>(run_record(r));
  write_through(
      r->hold->strand,
      [this, id = r->hold->id, blob, record](std::function<void(Status)> done) {
        store_.append_result(id, *blob, *record, std::move(done));
      },
      [r] { return !lease_lost(r); }, *r->write_deadline,
      [self = shared_from_this(), r](Status s) {
        if (s.ok()) {
          self->deliver(r);
          return;
        }
        // Neither was written: the audit record gets a write of its own (what remains of the deadline).
        self->log_.warn("history.append_failed",
                        {{"session", r->hold->id}, {"callId", r->job.id}, {"error", s.message()}});
        self->audit_and_deliver(r);
      });
}

void JobLifecycle::audit_and_deliver(const RunPtr& r) {
  auto then = [self = shared_from_this(), r] { self->deliver(r); };
  const auto give_up = r->write_deadline.value_or(host_.clock().now() + kWriteRetryFor);
  audit(r->hold ? r->hold->strand : make_io_strand(host_.executor()), run_record(r), [r] { return !lease_lost(r); },
        give_up, std::move(then));
}

plugin::AuditRecord JobLifecycle::run_record(const RunPtr& r) const {
  plugin::AuditRecord a = audit_record(r->job.id, r->job.user_id, r->job.session_id, r->job.payload);
  a.approved = true;
  a.attempt = r->job.attempt;
  a.outcome = r->status.ok() ? "ok" : std::string(wire_name(r->status.code()));
  const json& result = r->result;
  if (const auto it = result.find("exitCode"); it != result.end() && it->is_number_integer()) {
    a.exit_code = it->get<std::int64_t>();
  }
  if (const auto it = result.find("durationMs"); it != result.end() && it->is_number()) {
    a.duration_ms = it->get<std::int64_t>();
  }
  std::string output;
  if (const auto it = result.find("outputBytes"); it != result.end() && it->is_number_unsigned()) {
    a.output_bytes = it->get<std::uint64_t>();
  } else if (const auto out = result.find("output"); out != result.end() && bytes::from_json(*out, output)) {
    a.output_bytes = output.size();
  }
  return a;
}

plugin::AuditRecord JobLifecycle::audit_record(const std::string& call_id, const std::string& user_id,
                                               const std::string& session_id, std::string_view payload) const {
  plugin::AuditRecord a;
  a.call_id = call_id;
  a.user_id = user_id;
  a.session_id = session_id;
  a.instance = options_.instance_id;
  const json p = json::parse(payload, nullptr, false);
  if (p.is_object()) {
    if (const auto tool = p.find("tool"); tool != p.end() && tool->is_string()) {
      a.tool = tool->get<std::string>();
    }
    if (const auto args = p.find("args"); args != p.end()) {
      a.args = bytes::dump(*args);
    }
    if (const auto at = p.find("requested"); at != p.end() && at->is_number_integer()) {
      a.requested_unix_ms = at->get<std::int64_t>();
    }
  }
  if (a.args.size() > plugin::kAuditArgsMost) {
    a.args.resize(bytes::utf8_complete_prefix(std::string_view(a.args).substr(0, plugin::kAuditArgsMost)));
    a.args_truncated = true;
  }
  a.finished_unix_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(host_.clock().wall().time_since_epoch()).count();
  if (a.requested_unix_ms == 0) {
    a.requested_unix_ms = a.finished_unix_ms;
  }
  return a;
}

void JobLifecycle::audit(SessionHold::Strand strand, plugin::AuditRecord record, std::function<bool()> keep_trying,
                         std::chrono::steady_clock::time_point give_up, std::function<void()> then) {
  auto held = std::make_shared<const plugin::AuditRecord>(std::move(record));
  write_through(
      std::move(strand),
      [batcher = audit_batcher_, held](std::function<void(Status)> done) { batcher->add(*held, std::move(done)); },
      keep_trying, give_up,
      [self = shared_from_this(), held, keep_trying, then = std::move(then)](Status s) {
        const auto& a = *held;
        if (!s.ok() && (s.code() == Code::unavailable || s.code() == Code::timeout) && keep_trying()) {
          // The store is still away and the result goes out now: its record is written once the store
          // is back (AuditBatcher::defer), so the log still gets every result a client saw.
          self->log_.warn("audit.append_deferred",
                          {{"session", a.session_id}, {"callId", a.call_id}, {"error", s.message()}});
          self->audit_batcher_->defer(a);
        } else if (!s.ok()) {
          self->log_.warn("audit.append_failed",
                          {{"session", a.session_id}, {"callId", a.call_id}, {"error", s.message()}});
        }
        then();
      });
}

void JobLifecycle::audit_settled(const HoldPtr& hold, const std::string& call_id, const std::string& payload,
                                 bool approved, std::string outcome, std::uint32_t attempt, std::function<void()> then) {
  plugin::AuditRecord a = audit_record(call_id, hold->user, hold->id, payload);
  a.approved = approved;
  a.outcome = std::move(outcome);
  a.attempt = attempt;
  // Tried while the session lasts: the user waits for the answer to the denial meanwhile.
  audit(hold->strand, std::move(a), [hold] { return !hold->ended; }, host_.clock().now() + kWriteRetryFor,
        std::move(then));
}

void JobLifecycle::write_through(SessionHold::Strand strand, std::function<void(std::function<void(Status)>)> write,
                                 std::function<bool()> keep_trying, std::chrono::steady_clock::time_point give_up,
                                 std::function<void(Status)> then) {
  auto attempt = std::make_shared<Retry>(Retry{std::move(strand), std::move(write), std::move(keep_trying),
                                               std::move(then), kWriteFirstBackoff, give_up});
  try_write(std::move(attempt));
}

void JobLifecycle::try_write(std::shared_ptr<Retry> w) {
  w->write([self = shared_from_this(), w](Status s) {
    boost::asio::post(w->strand, [self, w, s] {
      // Redis dropped the connection, or its breaker is open: the result waits for it rather than go
      // out with the history missing it. The job cannot end meanwhile anyway (its completion needs
      // redis too), and a lost lease ends the wait.
      const bool transient = s.code() == Code::unavailable || s.code() == Code::timeout;
      if (transient && w->keep_trying() && self->host_.clock().now() + w->backoff < w->give_up) {
        auto timer = std::make_shared<boost::asio::steady_timer>(w->strand, w->backoff);
        w->backoff = std::min(w->backoff * 2, kWriteMaxBackoff);
        timer->async_wait([self, w, timer](boost::system::error_code) { self->try_write(w); });
        return;
      }
      w->then(s);
    });
  });
}

void JobLifecycle::deliver(const RunPtr& r) {
  if (lease_lost(r)) {
    abandon(r, "before its result was published");
    return;
  }
  // "audited": this result's call is in the history and the audit log already; the Session that emits
  // it takes the mark off. A result without it was settled by the queue itself (Session::on_job_event).
  json published = r->result;
  published["audited"] = true;
  r->sink(plugin::JobEvent{r->job.id, r->job.session_id, plugin::JobEventType::result, bytes::dump(published)});
  --in_flight_;
  count_job(r->status.ok() ? "ok" : r->status.code() == Code::timeout ? "timeout" : "error");
  r->done(r->status);
}

void JobLifecycle::count_job(const char* outcome) {
  const std::array<Label, 1> labels{{{"outcome", outcome}}};
  host_.metrics().counter("phasekit_jobs_total", "Jobs run, by outcome.", labels).inc();
}

void JobLifecycle::save(const HoldPtr& hold, bool shell, std::function<void()> then) {
  plugin::SessionUpdate update;
  if (options_.tenure == Tenure::held) {
    update.status = std::string(to_string(hold->status));
    update.instance = options_.instance_id;
  }
  update.updated_unix_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(host_.clock().wall().time_since_epoch()).count();
  if (shell) {
    update.shell = true;
    update.cwd = hold->shell.cwd;
    update.env = hold->shell.env;
    update.backend = hold->backend_id;
    update.workspace = hold->workspace;
    update.history = hold->history;
  }
  store_.update_session(hold->id, std::move(update), [self = shared_from_this(), hold,
                                                      then = std::move(then)](Status s) mutable {
    // A leased job's session may have ended while it ran; a held session's record is there until
    // its end.
    if (!s.ok() && !(s.code() == Code::not_found && self->options_.tenure == Tenure::leased)) {
      self->log_.warn("store.update_session_failed", {{"session", hold->id}, {"error", s.message()}});
    }
    boost::asio::post(hold->strand, std::move(then));
  });
}

void JobLifecycle::append(const HoldPtr& hold, json entry, std::function<void(Status)> done) {
  std::string blob;
  if (Status s = conversation_blob(std::move(entry), host_.clock(), compression_, blob); !s.ok()) {
    done(s);
    return;
  }
  store_.append_conversation(hold->id, std::move(blob), [hold, done = std::move(done)](Status s) mutable {
    boost::asio::post(hold->strand, [done = std::move(done), s] { done(s); });
  });
}

bool JobLifecycle::park(const HoldPtr& hold) {
  if (!options_.persist || options_.workspace_root.empty() || !shell_of(hold->backend)) {
    return false;
  }
  return hand_back(*hold).ok();
}

void JobLifecycle::end(const HoldPtr& hold) {
  hold->ended = true;
  if (hold->backend) {
    drop_backend(*hold, true);
  }
  wake(*hold, Status(Code::unavailable, "session ended"));
}

}  // namespace phasekit::app
