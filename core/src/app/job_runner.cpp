#include "app/job_runner.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include "app/session_state.hpp"

namespace phasekit::app {

using json = nlohmann::json;

struct JobRunner::Run {
  explicit Run(boost::asio::any_io_executor executor) : strand(boost::asio::make_strand(std::move(executor))) {}
  boost::asio::strand<boost::asio::any_io_executor> strand;
  plugin::Job job;
  json payload;
  plugin::QueueStrategy::EventSink sink;
  plugin::QueueStrategy::JobDone done;
  plugin::SessionRecord record;
  bool stored = false;  // the session has a record to update
  backend::ShellBackendPtr backend;
  plugin::BackendPtr lease;
  json result;
  Status status;
};

JobRunner::JobRunner(RunnerSettings settings, plugin_host::PluginSet& plugins, plugin::HostServices& host)
    : settings_(std::move(settings)),
      plugins_(plugins),
      host_(host),
      log_(host.logger("worker")),
      acquire_times_(host.metrics()) {}

void JobRunner::run(plugin::Job job, plugin::QueueStrategy::EventSink sink, plugin::QueueStrategy::JobDone done) {
  ++in_flight_;
  auto r = std::make_shared<Run>(host_.executor());
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
  plugins_.store->get_session(r->job.session_id, [self = shared_from_this(), r](Status s, plugin::SessionRecord rec) {
    boost::asio::post(r->strand, [self, r, s, rec = std::move(rec)]() mutable {
      if (s.ok() && !rec.user_id.empty() && rec.user_id != r->job.user_id) {
        const Status denied(Code::unauthorized, "the job's user does not own its session");
        self->finish(r, error_result(denied), denied);
        return;
      }
      if (!s.ok() && s.code() != Code::not_found) {
        const Status down(Code::unavailable, "session store: " + s.message());
        self->finish(r, error_result(down), down);
        return;
      }
      r->stored = s.ok();
      r->record = s.ok() ? std::move(rec) : plugin::SessionRecord{};
      self->start(r);
    });
  });
}

void JobRunner::start(const std::shared_ptr<Run>& r) {
  const auto started = std::chrono::steady_clock::now();
  plugins_.pool->acquire({r->job.user_id, r->job.session_id}, [self = shared_from_this(), r, started](
                                                                  Status s, plugin::Lease lease) {
    self->acquire_times_.observe(s, lease, started);
    boost::asio::post(r->strand, [self, r, s, lease = std::move(lease)]() mutable {
      if (!s.ok()) {
        self->finish(r, error_result(s), s);
        return;
      }
      r->lease = lease.backend;
      r->backend = std::dynamic_pointer_cast<backend::ShellBackend>(lease.backend);
      self->on_backend(r);
    });
  });
}

void JobRunner::on_backend(const std::shared_ptr<Run>& r) {
  if (!r->backend) {
    const Status bad(Code::internal, "backend cannot run tools");
    finish(r, error_result(bad), bad);
    return;
  }
  // The session's files: where the record says (a folder beneath WORKSPACE_ROOT), else its own folder.
  std::string from = session_folder(settings_.workspace_root, r->job.session_id);
  if (!r->record.workspace.empty() && check_beneath(settings_.workspace_root, r->record.workspace).ok()) {
    from = r->record.workspace;
  }
  if (Status moved = move_entries(from, r->backend->workspace()); !moved.ok()) {
    finish(r, error_result(moved), moved);
    return;
  }
  auto run_tool = [self = shared_from_this(), r] {
    execute_tool(self->settings_.limits, r->backend, r->payload, r->job.id, r->job.session_id,
                 std::chrono::milliseconds(r->job.timeout_ms), r->sink, [self, r](json result, Status status) {
                   boost::asio::post(r->strand, [self, r, result = std::move(result), status]() mutable {
                     self->finish(r, std::move(result), status);
                   });
                 });
  };
  if (r->record.cwd.empty() && r->record.env.empty()) {
    run_tool();
    return;
  }
  restore_state(r->backend, ShellState{r->record.cwd, r->record.env}, [self = shared_from_this(), r,
                                                                        run_tool](Status s) {
    boost::asio::post(r->strand, [self, r, run_tool, s] {
      if (!s.ok()) {
        self->finish(r, error_result(s), s);
        return;
      }
      run_tool();
    });
  });
}

void JobRunner::finish(const std::shared_ptr<Run>& r, json result, Status status) {
  result["callId"] = r->job.id;
  r->result = std::move(result);
  r->status = std::move(status);
  if (!r->backend) {
    publish(r);
    return;
  }
  auto save = [self = shared_from_this(), r] {
    // The files go back to the session's folder, and the backend back to the pool (which resets it).
    const std::string folder = session_folder(self->settings_.workspace_root, r->job.session_id);
    if (Status moved = park_files(folder, r->backend->workspace()); !moved.ok()) {
      self->log_.error("worker.workspace_not_saved", {{"session", r->job.session_id}, {"error", moved.message()}});
    }
    self->plugins_.pool->release(std::exchange(r->lease, nullptr), true);
    r->backend.reset();
    if (!r->stored) {
      self->publish(r);
      return;
    }
    plugin::SessionUpdate update;
    update.shell = true;
    update.cwd = r->record.cwd;
    update.env = r->record.env;
    update.workspace = folder;
    update.history = r->record.history;
    update.updated_unix_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(self->host_.clock().wall().time_since_epoch()).count();
    self->plugins_.store->update_session(r->job.session_id, std::move(update), [self, r](Status s) {
      if (!s.ok() && s.code() != Code::not_found) {
        self->log_.warn("store.update_session_failed", {{"session", r->job.session_id}, {"error", s.message()}});
      }
      boost::asio::post(r->strand, [self, r] { self->publish(r); });
    });
  };
  std::optional<std::string> command = shell_command(r->payload);
  if (!command) {
    save();
    return;
  }
  remember_command(r->record.history, std::move(*command), settings_.history_limit);
  capture_state(r->backend, [self = shared_from_this(), r, save](Status s, ShellState state) {
    boost::asio::post(r->strand, [self, r, save, s, state = std::move(state)]() mutable {
      if (s.ok()) {
        r->record.cwd = std::move(state.cwd);
        r->record.env = std::move(state.env);
      } else {
        self->log_.warn("session.state_unreadable", {{"session", r->job.session_id}, {"error", s.message()}});
      }
      save();
    });
  });
}

void JobRunner::publish(const std::shared_ptr<Run>& r) {
  std::string blob;
  auto deliver = [self = shared_from_this(), r] {
    r->sink(plugin::JobEvent{r->job.id, r->job.session_id, plugin::JobEventType::result,
                             r->result.dump(-1, ' ', false, json::error_handler_t::replace)});
    --self->in_flight_;
    r->done(r->status);
  };
  if (!r->stored ||
      !conversation_blob(json{{"role", "tool"}, {"result", r->result}}, host_.clock(), *plugins_.compression, blob).ok()) {
    deliver();
    return;
  }
  plugins_.store->append_conversation(r->job.session_id, std::move(blob), [deliver](Status) { deliver(); });
}

}  // namespace phasekit::app
