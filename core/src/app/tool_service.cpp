#include "phasekit/app/tool_service.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <optional>
#include <random>

#include "phasekit/app/auth.hpp"
#include "phasekit/app/recovery.hpp"
#include "phasekit/app/session_status.hpp"
#include "phasekit/random_id.hpp"

namespace phasekit::app {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

LifecycleOptions lifecycle_options(const ServiceSettings& settings) {
  LifecycleOptions options;
  options.tenure = Tenure::held;
  options.persist = settings.persist_sessions;
  options.limits = ToolLimits{settings.stream_threshold_bytes, settings.max_output_bytes, settings.backend_uid,
                              settings.backend_gid};
  options.workspace_root = settings.workspace_root;
  options.instance_id = settings.instance_id;
  options.history_limit = settings.history_limit;
  return options;
}

}  // namespace

ToolService::ToolService(ServiceSettings settings, plugin_host::PluginSet& plugins, plugin::HostServices& host)
    : settings_(std::move(settings)),
      plugins_(plugins),
      host_(host),
      log_(host.logger("service")),
      limiter_(settings_.max_requests_per_user),
      sessions_per_user_(settings_.max_sessions_per_user),
      backends_per_user_(settings_.max_backends_per_user),
      sessions_gauge_(host.metrics().gauge("phasekit_sessions", "Socket.IO sessions open (connected or in grace).")),
      // The lookup runs inside run() only, which start()'s handler calls while it holds this service.
      lifecycle_(std::make_shared<JobLifecycle>(lifecycle_options(settings_), *plugins_.pool, *plugins_.store,
                                                *plugins_.compression, host_, log_,
                                                [this](const std::string& id) -> HoldPtr {
                                                  SessionPtr session = find(id);
                                                  return session ? session->hold() : nullptr;
                                                },
                                                &backends_per_user_)),
      context_{settings_,
               *plugins_.store,
               *plugins_.queue,
               *plugins_.compression,
               host_,
               log_,
               planner_,
               limiter_,
               approved_unfinished_,
               *lifecycle_,
               [this](const std::string& id) { forget(id); }} {}

ToolService::~ToolService() = default;

void ToolService::start() {
  if (!settings_.run_jobs) {
    return;  // phasekit-workers take the jobs
  }
  plugins_.queue->consume(settings_.concurrency, [weak = weak_from_this()](plugin::Job job,
                                                                          plugin::QueueStrategy::EventSink sink,
                                                                          plugin::QueueStrategy::JobDone done) {
    if (auto self = weak.lock()) {
      self->lifecycle_->run(std::move(job), std::move(sink), std::move(done));
    } else {
      done(Status(Code::unavailable, "shutting down"));
    }
  });
}

Status ToolService::authenticate(const json& auth, std::string_view connection_id, std::string& user_id) const {
  if (!settings_.auth_required) {
    user_id = "anon-" + std::string(connection_id);
    return {};
  }
  if (!auth.is_object() || !auth.contains("token") || !auth["token"].is_string()) {
    return Status(Code::unauthorized, "missing token: connect with auth {token}");
  }
  Identity identity;
  if (Status s = verify_token(auth["token"].get<std::string>(), settings_.auth, host_.clock().wall(), identity);
      !s.ok()) {
    return s;
  }
  user_id = std::move(identity.user_id);
  return {};
}

SessionPtr ToolService::open_session(std::string user_id, std::shared_ptr<ClientChannel> channel) {
  plugin::SessionRecord record;
  record.id = random_id("s-");  // also what a client presents to resume it (Socket.IO `pid`)
  record.user_id = std::move(user_id);
  return adopt(record, std::move(channel), false);
}

Status ToolService::refused_session() const {
  return Status(Code::resource_exhausted,
                fmt::format("this user holds {} sessions already (MAX_SESSIONS_PER_USER); close one first",
                            sessions_per_user_.limit()));
}

SessionPtr ToolService::adopt(const plugin::SessionRecord& record, std::shared_ptr<ClientChannel> channel,
                              bool resumed) {
  if (!sessions_per_user_.try_acquire(record.user_id)) {
    log_.info("session.refused", {{"user", record.user_id}, {"why", "max_sessions_per_user"}});
    return nullptr;
  }
  auto session = std::make_shared<Session>(context_, record, std::move(channel), resumed);
  {
    const std::lock_guard lock(mutex_);
    if (const auto old = sessions_.find(session->id()); old != sessions_.end()) {
      sessions_per_user_.release(old->second.hold->user);  // replaced: counted once
      sessions_.erase(old);  // its key views the old hold's id
    }
    sessions_.emplace(std::string_view(session->hold()->id), Registered{session, session->hold()});
    sessions_gauge_.set(static_cast<double>(sessions_.size()));
  }
  session->open();
  return session;
}

void ToolService::connect(const json& auth, std::string_view connection_id, std::shared_ptr<ClientChannel> channel,
                          std::function<void(Status, SessionPtr)> done) {
  // Socket.IO connection state recovery: the last event offset the client got, if it says one.
  // Only for the session it names (`pid`): a client given a new session has nothing in it to miss.
  std::string offset;
  std::string resuming;
  const auto pid_of = auth.find("pid");
  if (const auto it = auth.find("offset"); it != auth.end() && it->is_string() && pid_of != auth.end() &&
                                           pid_of->is_string() &&
                                           it->get_ref<const std::string&>().size() <= kOffsetBytesMost) {
    offset = it->get<std::string>();
    resuming = pid_of->get<std::string>();
  }
  auto finish = [executor = host_.executor(), refused = refused_session(), done = std::move(done),
                 offset = std::move(offset), resuming = std::move(resuming)](Status s, SessionPtr session) {
    if (s.ok() && !session) {
      s = refused;  // the user is at MAX_SESSIONS_PER_USER
    }
    boost::asio::post(executor, [done, offset, resuming, s = std::move(s), session = std::move(session)]() mutable {
      done(s, session);  // the CONNECT answer goes out first: what is replayed comes after it
      if (s.ok() && session && !offset.empty() && session->id() == resuming) {
        boost::asio::post(session->strand(), [session, offset] { session->replay_after(offset); });
      }
    });
  };
  std::string user;
  if (Status s = authenticate(auth, connection_id, user); !s.ok()) {
    finish(std::move(s), nullptr);
    return;
  }
  const auto pid = auth.find("pid");
  if (pid == auth.end() || !pid->is_string() || pid->get_ref<const std::string&>().empty() ||
      pid->get_ref<const std::string&>().size() > 128) {
    finish(Status(), open_session(std::move(user), std::move(channel)));
    return;
  }
  const std::string id = pid->get<std::string>();
  if (SessionPtr local = find(id)) {
    // Still here (the client came back within its grace period): same session, new socket.
    boost::asio::post(local->strand(), [self = shared_from_this(), local, user = std::move(user),
                                        channel = std::move(channel), finish]() mutable {
      if (local->reattach(user, channel)) {
        finish(Status(), local);
      } else {
        finish(Status(), self->open_session(std::move(user), std::move(channel)));
      }
    });
    return;
  }
  if (!settings_.persist_sessions) {
    finish(Status(), open_session(std::move(user), std::move(channel)));
    return;
  }
  plugins_.store->get_session(id, [self = shared_from_this(), user = std::move(user), channel = std::move(channel),
                                   finish](Status s, plugin::SessionRecord record) mutable {
    const std::optional<SessionStatus> status = parse_session_status(record.status);
    if (s.ok() && !status) {
      // Not a status this version writes: resuming what it cannot read could revive an ended session.
      self->log_.warn("session.status_unknown", {{"session", record.id}, {"status", record.status.substr(0, 32)}});
    }
    if (s.code() == Code::not_found || (s.ok() && (status.value_or(SessionStatus::ended) == SessionStatus::ended ||
                                                   record.user_id.empty() ||
                                                   (self->settings_.auth_required && record.user_id != user)))) {
      finish(Status(), self->open_session(std::move(user), std::move(channel)));  // nothing to resume: a new one
      return;
    }
    if (!s.ok()) {
      finish(Status(Code::unavailable, "session store: " + s.message()), nullptr);
      return;
    }
    if (self->find(record.id)) {  // resumed meanwhile by another connection
      finish(Status(Code::unavailable, "session is being resumed by another connection"), nullptr);
      return;
    }
    self->log_.info("session.resumed", {{"session", record.id}, {"from", record.instance}});
    finish(Status(), self->adopt(record, std::move(channel), true));
  });
}

void ToolService::on_event(const SessionPtr& session, std::string_view event, json args, Ack ack) {
  const auto start = Clock::now();
  const std::string name(event);
  boost::asio::post(session->strand(), [this, session, name, args = std::move(args), ack = std::move(ack), start] {
    if (stopping_) {
      if (ack) {
        ack(error_ack(Status(Code::unavailable, "server is shutting down")));
      }
      return;
    }
    if (name == "message" && draining_) {
      if (ack) {
        ack(error_ack(Status(Code::unavailable, "server is shutting down")));
      }
      record_event(host_.metrics(), "message", "unavailable", start);
    } else if (name == "message") {
      session->on_message(args, ack, start);
    } else if (name == "tool:approval") {
      session->on_approval(args, ack, start);
    } else if (name == "session:history") {
      session->on_history(args, ack, start);
    } else {
      session->on_unknown(name, ack, start);
    }
  });
}

void ToolService::on_disconnect(const SessionPtr& session, const std::shared_ptr<ClientChannel>& channel,
                                std::string_view reason) {
  log_.debug("session.disconnect", {{"session", session->id()}, {"reason", reason}});
  boost::asio::post(session->strand(), [session, channel] { session->detach(channel); });
}

SessionPtr ToolService::find(const std::string& session_id) const {
  const std::lock_guard lock(mutex_);
  const auto it = sessions_.find(session_id);
  return it == sessions_.end() ? nullptr : it->second.session.lock();
}

void ToolService::forget(const std::string& session_id) {
  const std::lock_guard lock(mutex_);
  if (const auto it = sessions_.find(session_id); it != sessions_.end()) {
    sessions_per_user_.release(it->second.hold->user);
    sessions_.erase(it);
  }
  sessions_gauge_.set(static_cast<double>(sessions_.size()));
}

std::size_t ToolService::session_count() const {
  const std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::uint64_t ToolService::jobs_in_flight() const { return lifecycle_->in_flight(); }

std::uint64_t ToolService::jobs_unfinished() const {
  // approved_unfinished_ follows this instance's calls from approval until their tool:result has been
  // handed to the connection; the lifecycle's in_flight() the jobs this process runs (for any instance).
  return std::max<std::uint64_t>(approved_unfinished_.load(), lifecycle_->in_flight());
}

void ToolService::shutdown(std::function<void()> done) {
  stopping_ = true;
  plugins_.queue->async_shutdown([self = shared_from_this(), done = std::move(done)]() mutable {
    std::vector<SessionPtr> open;
    {
      const std::lock_guard lock(self->mutex_);
      for (const auto& [id, registered] : self->sessions_) {
        if (auto s = registered.session.lock()) {
          open.push_back(std::move(s));
        }
      }
    }
    for (const auto& s : open) {
      boost::asio::post(s->strand(), [s] { s->end(EndReason::shutdown); });
    }
    // Let the sessions release their backends before the pool goes.
    boost::asio::post(self->host_.executor(), [self, done = std::move(done)]() mutable {
      self->plugins_.pool->async_shutdown(std::move(done));
    });
  });
}

}  // namespace phasekit::app
