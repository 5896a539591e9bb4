#include "app/tool_service.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <random>

#include <openssl/rand.h>

#include <filesystem>

#include "app/auth.hpp"
#include "app/job_lifecycle.hpp"
#include "app/session_hold.hpp"
#include "app/session_state.hpp"
#include "app/session_status.hpp"
#include "app/tool_exec.hpp"
#include "protocol/engineio.hpp"

namespace phasekit::app {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string random_id(std::string_view prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{}{:016x}", prefix, rng());
}

/// A session id is also what a client presents to resume its session (Socket.IO's `pid`): 128 bits
/// from the kernel's CSPRNG, so it cannot be guessed.
std::string new_session_id() {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    std::random_device rd;
    for (auto& b : bytes) {
      b = static_cast<unsigned char>(rd());
    }
  }
  std::string out = "s-";
  for (const unsigned char b : bytes) {
    out += fmt::format("{:02x}", b);
  }
  return out;
}

std::int64_t unix_ms(const phasekit::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.wall().time_since_epoch()).count();
}

json ok_ack(const std::string& call_id) { return json{{"ok", true}, {"callId", call_id}}; }

json error_ack(const Status& s) {
  return json{{"ok", false}, {"code", wire_name(s.code())}, {"message", s.message()}};
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ToolService& service, const plugin::SessionRecord& record, std::shared_ptr<ClientChannel> channel,
          bool resumed)
      : service_(service),
        strand_(boost::asio::make_strand(service.host_.executor())),
        grace_(strand_),
        id_(record.id),
        user_(record.user_id),
        channel_(std::move(channel)),
        hold_(std::make_shared<SessionHold>(record.id, record.user_id, strand_)) {
    hold_->take_shell_fields(record);
    hold_->stored = true;
    hold_->restore = resumed;  // its files and shell state are where its last instance left them
  }

  [[nodiscard]] const std::string& id() const { return id_; }
  [[nodiscard]] const std::string& user() const { return user_; }
  [[nodiscard]] boost::asio::strand<boost::asio::any_io_executor>& strand() { return strand_; }
  /// What the session's calls work on; JobLifecycle runs them on it.
  [[nodiscard]] const HoldPtr& hold() const { return hold_; }

  /// Called on the strand: a client came back to this session before its grace period ended.
  bool reattach(const std::string& user, std::shared_ptr<ClientChannel> channel) {
    if (hold_->ended || (service_.settings_.auth_required && user != user_)) {
      return false;
    }
    grace_.cancel();
    if (auto old = std::exchange(channel_, std::move(channel))) {
      old->close("session resumed on another connection");
    }
    hold_->status = SessionStatus::active;
    save_record([] {});
    return true;
  }

  /// Writes the session's status and instance to the store, and with `shell` its cwd, env, backend,
  /// workspace and history too (only where this instance runs the session's calls: elsewhere its copy
  /// of them is stale); `then` runs on the strand once the store answered, whatever it answered.
  void save_record(std::function<void()> then, bool shell = false) {
    service_.lifecycle_->save(hold_, shell && service_.settings_.run_jobs, std::move(then));
  }

  /// A new session's first record in the store.
  void create_record() {
    plugin::SessionRecord record;
    record.id = id_;
    record.user_id = user_;
    record.status = std::string(to_string(hold_->status));
    record.instance = service_.settings_.instance_id;
    record.updated_unix_ms = unix_ms(service_.host_.clock());
    service_.plugins_.store->put_session(std::move(record), [self = shared_from_this()](Status s) {
      if (!s.ok()) {
        self->service_.log_.warn("store.put_session_failed", {{"session", self->id_}, {"error", s.message()}});
      }
    });
  }

  /// `session:history`: the conversation as the store holds it, decompressed, oldest first.
  void on_history(const Ack& ack, Clock::time_point start) {
    service_.plugins_.store->read_conversation(
        id_, [self = shared_from_this(), ack, start](Status s, std::vector<std::string> entries) {
          boost::asio::post(self->strand_, [self, ack, start, s, entries = std::move(entries)] {
            if (!s.ok()) {
              self->reply(ack, error_ack(Status(Code::unavailable, "conversation store: " + s.message())));
              self->service_.record_event("session:history", "unavailable", start);
              return;
            }
            json list = json::array();
            std::size_t unreadable = 0;
            for (const std::string& blob : entries) {
              std::string text;
              json entry;
              if (self->service_.plugins_.compression->decompress(blob, text).ok() &&
                  !(entry = json::parse(text, nullptr, false)).is_discarded()) {
                list.push_back(std::move(entry));
              } else {
                ++unreadable;
              }
            }
            json body{{"ok", true},       {"sessionId", self->id_},       {"entries", std::move(list)},
                      {"cwd", self->hold_->shell.cwd}, {"history", self->hold_->history}};
            if (unreadable > 0) {
              body["unreadable"] = unreadable;  // a corrupt entry costs that entry, not the session
            }
            self->reply(ack, std::move(body));
            self->service_.record_event("session:history", "ok", start);
          });
        });
  }

  void on_message(const json& args, const Ack& ack, Clock::time_point start) {
    ToolCall call;
    const json message = args.empty() ? json() : args[0];
    if (Status s = service_.planner_.plan(message, call); !s.ok()) {
      reply(ack, error_ack(s));
      service_.record_event("message", "bad_request", start);
      return;
    }
    if (!service_.limiter_.try_acquire(user_)) {
      reply(ack, error_ack(Status(Code::too_many_requests,
                                  fmt::format("at most {} requests in flight per user", service_.limiter_.limit()))));
      service_.record_event("message", "too_many_requests", start);
      return;
    }
    const std::string call_id = random_id("call-");
    calls_[call_id] = Call{call.tool, call.args, Call::State::awaiting_approval, Clock::now()};
    json entry{{"role", "user"}, {"callId", call_id}, {"message", message}};
    tag_binary(entry);
    append_conversation(entry, [self = shared_from_this(), call_id, tool = call.tool, tool_args = call.args, ack,
                                start](Status stored) {
      if (!stored.ok()) {
        self->drop_call(call_id);
        self->reply(ack, error_ack(Status(Code::unavailable, "conversation store: " + stored.message())));
        self->service_.record_event("message", "unavailable", start);
        return;
      }
      self->emit("tool:request", json{{"callId", call_id}, {"tool", tool}, {"args", tool_args}});
      self->reply(ack, ok_ack(call_id));
      self->service_.record_event("message", "ok", start);
    });
  }

  void on_approval(const json& args, const Ack& ack, Clock::time_point start) {
    const json body = args.empty() ? json() : args[0];
    if (!body.is_object() || !body.contains("callId") || !body["callId"].is_string() || !body.contains("approved") ||
        !body["approved"].is_boolean()) {
      reply(ack, error_ack(Status(Code::bad_request, "tool:approval needs {callId: string, approved: boolean}")));
      service_.record_event("tool:approval", "bad_request", start);
      return;
    }
    const std::string call_id = body["callId"].get<std::string>();
    const auto it = calls_.find(call_id);
    if (it == calls_.end() || it->second.state != Call::State::awaiting_approval) {
      // Another user's callId, an unknown one, or one already approved: all look the same.
      reply(ack, error_ack(Status(Code::not_found, "no tool call awaiting approval with this callId")));
      service_.record_event("tool:approval", "not_found", start);
      return;
    }
    if (!body["approved"].get<bool>()) {
      drop_call(call_id);
      const json result{{"callId", call_id}, {"denied", true},  {"exitCode", nullptr},
                        {"output", ""},      {"truncated", false}, {"durationMs", 0}};
      append_conversation(json{{"role", "tool"}, {"result", result}}, [](Status) {});
      emit("tool:result", result);
      reply(ack, ok_ack(call_id));
      service_.record_event("tool:approval", "denied", start);
      return;
    }
    it->second.state = Call::State::approved;
    it->second.approved_at = Clock::now();
    ++service_.approved_unfinished_;  // settled once its tool:result has been handed to the client
    plugin::Job job;
    job.id = call_id;
    job.user_id = user_;
    job.session_id = id_;
    json payload{{"tool", it->second.tool}, {"args", it->second.args}};
    tag_binary(payload);
    job.payload = payload.dump();
    job.timeout_ms = service_.settings_.job_timeout.count();
    service_.plugins_.queue->enqueue(std::move(job), [self = shared_from_this(), call_id, ack, start](Status queued) {
      boost::asio::post(self->strand_, [self, call_id, ack, start, queued] {
        if (!queued.ok()) {
          self->drop_call(call_id);
          self->reply(ack, error_ack(queued));
          self->service_.record_event("tool:approval", "unavailable", start);
          return;
        }
        self->reply(ack, ok_ack(call_id));
        self->service_.record_event("tool:approval", "ok", start);
      });
    });
  }

  void on_unknown(const std::string& name, const Ack& ack, Clock::time_point start) {
    reply(ack, error_ack(Status(Code::bad_request, fmt::format("unknown event \"{}\"", name.substr(0, 64)))));
    service_.record_event("unknown", "bad_request", start);
  }

  /// A job event from the queue (in-process, or from a worker through pub/sub).
  void on_job_event(plugin::JobEvent event) {
    json data = json::parse(event.data, nullptr, false);
    if (data.is_discarded()) {
      return;
    }
    if (event.type == plugin::JobEventType::output) {
      emit("tool:output", std::move(data));
      return;
    }
    const auto it = calls_.find(event.job_id);
    if (it != calls_.end()) {
      service_.host_.metrics()
          .histogram("phasekit_tool_call_duration_seconds", "Time from approval to tool:result.",
                     observe_buckets(), labels_for_tool(it->second.tool))
          .observe(seconds_since(it->second.approved_at));
    }
    const bool approved = take_call(event.job_id);
    restore_binary_content(data);
    emit("tool:result", std::move(data));
    if (approved) {
      --service_.approved_unfinished_;  // after the emit: a drain closes the client only behind it
    }
  }

  void detach() {
    channel_.reset();
    if (hold_->ended) {
      return;
    }
    if (service_.settings_.persist_sessions) {
      hold_->status = SessionStatus::detached;
      // With a shared store a detached session gives its backend back at once instead of holding it for
      // the grace period: its files wait in WORKSPACE_ROOT/sessions/<id>, its cwd and exports are in the
      // record, so a reconnect (here or elsewhere) brings them onto whatever backend it gets next. Not
      // while one of its calls is queued or running on the backend.
      if (std::none_of(calls_.begin(), calls_.end(),
                       [](const auto& c) { return c.second.state != Call::State::awaiting_approval; })) {
        service_.lifecycle_->park(hold_);
      }
      save_record([] {}, true);
    }
    if (service_.settings_.session_grace.count() == 0) {
      end(EndReason::disconnected);
      return;
    }
    grace_.expires_after(service_.settings_.session_grace);
    grace_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) {
        self->end(EndReason::grace_over);
      }
    });
  }

  void end(EndReason why) {
    if (hold_->ended) {
      return;
    }
    service_.lifecycle_->end(hold_);
    grace_.cancel();
    service_.plugins_.queue->unsubscribe(id_);
    for (const auto& [call_id, call] : calls_) {
      service_.limiter_.release(user_);
      if (call.state != Call::State::awaiting_approval) {
        --service_.approved_unfinished_;  // the session is gone: no one is left to wait for
      }
    }
    calls_.clear();
    forget_stored(why);
    service_.forget(id_);
    service_.log_.debug("session.end", {{"session", id_}, {"user", user_}, {"why", to_string(why)}});
    if (auto channel = std::exchange(channel_, nullptr)) {
      channel->close(std::string(to_string(why)));
    }
  }

 private:
  struct Call {
    enum class State { awaiting_approval, approved };
    std::string tool;
    json args;
    State state = State::awaiting_approval;
    Clock::time_point created;
    Clock::time_point approved_at{};
  };

  /// Removes the session from the store, unless it is shared and the client has meanwhile resumed the
  /// session on another instance (its record then names that instance).
  void forget_stored(EndReason why) {
    auto& store = *service_.plugins_.store;
    auto remove = [self = shared_from_this()] {
      self->service_.plugins_.store->remove_session(self->id_, [](Status) {});
      if (self->service_.settings_.persist_sessions && !self->service_.settings_.workspace_root.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(session_folder(self->service_.settings_.workspace_root, self->id_), ec);
      }
    };
    if (!service_.settings_.persist_sessions || why != EndReason::grace_over) {
      remove();
      return;
    }
    store.get_session(id_, [self = shared_from_this(), remove](Status s, plugin::SessionRecord stored) {
      if (s.ok() && stored.instance == self->service_.settings_.instance_id) {
        remove();
      }
    });
  }

  static std::span<const double> observe_buckets() {
    static constexpr std::array<double, 14> kBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,    1,     2.5,  5,     10,   30};
    return kBuckets;
  }

  static std::span<const Label> labels_for_tool(const std::string& tool) {
    static const std::array<Label, 1> kShell{{{"tool", "shell"}}};
    static const std::array<Label, 1> kRead{{{"tool", "read_file"}}};
    static const std::array<Label, 1> kWrite{{{"tool", "write_file"}}};
    static const std::array<Label, 1> kList{{{"tool", "list_dir"}}};
    return tool == "shell" ? kShell : tool == "read_file" ? kRead : tool == "write_file" ? kWrite : kList;
  }

  /// Removes a call and gives its in-flight slot back; true when it had been approved (and so is
  /// counted in approved_unfinished_, which the caller settles).
  bool take_call(const std::string& call_id) {
    const auto it = calls_.find(call_id);
    if (it == calls_.end()) {
      return false;
    }
    const bool approved = it->second.state != Call::State::awaiting_approval;
    calls_.erase(it);
    service_.limiter_.release(user_);
    return approved;
  }

  void drop_call(const std::string& call_id) {
    if (take_call(call_id)) {
      --service_.approved_unfinished_;
    }
  }

  void append_conversation(const json& entry, std::function<void(Status)> done) {
    service_.lifecycle_->append(hold_, entry, std::move(done));
  }

  /// read_file with encoding "binary": the base64 content becomes a binary value, sent as an attachment.
  static void restore_binary_content(json& result) {
    auto output = result.find("output");
    if (output == result.end() || !output->is_object() || output->value("encoding", "") != "binary") {
      return;
    }
    std::string bytes;
    if (engineio::base64_decode(output->value("content", ""), bytes)) {
      (*output)["content"] = json::binary(json::binary_t::container_type(bytes.begin(), bytes.end()));
    }
  }

  void emit(std::string event, json payload) {
    if (channel_) {
      channel_->emit(std::move(event), std::move(payload));
    }
  }

  void reply(const Ack& ack, json body) {
    if (ack) {
      ack(std::move(body));
    } else if (!body.value("ok", false)) {
      emit("error", json{{"code", body["code"]}, {"message", body["message"]}});
    }
  }

  ToolService& service_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::steady_timer grace_;
  std::string id_;
  std::string user_;
  std::shared_ptr<ClientChannel> channel_;
  std::unordered_map<std::string, Call> calls_;
  HoldPtr hold_;  // its backend, files and shell state, and what the store holds of them
};

ToolService::ToolService(ServiceSettings settings, plugin_host::PluginSet& plugins, plugin::HostServices& host)
    : settings_(std::move(settings)),
      plugins_(plugins),
      host_(host),
      log_(host.logger("service")),
      limiter_(settings_.max_requests_per_user),
      sessions_gauge_(host.metrics().gauge("phasekit_sessions", "Socket.IO sessions open (connected or in grace).")) {
  LifecycleOptions options;
  options.tenure = Tenure::held;
  options.persist = settings_.persist_sessions;
  options.limits = ToolLimits{settings_.stream_threshold_bytes, settings_.max_output_bytes, settings_.backend_uid,
                              settings_.backend_gid};
  options.workspace_root = settings_.workspace_root;
  options.instance_id = settings_.instance_id;
  options.history_limit = settings_.history_limit;
  // find() is called from run() only, which start()'s handler calls while it holds this service.
  lifecycle_ = std::make_shared<JobLifecycle>(std::move(options), *plugins_.pool, *plugins_.store,
                                              *plugins_.compression, host_, log_, [this](const std::string& id) {
                                                SessionPtr session = find(id);
                                                return session ? session->hold() : nullptr;
                                              });
}

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
  if (Status s = verify_token(auth["token"].get<std::string>(), settings_.auth_secret, host_.clock().wall(), identity);
      !s.ok()) {
    return s;
  }
  user_id = std::move(identity.user_id);
  return {};
}

const std::string& session_id_of(const SessionPtr& session) { return session->id(); }

SessionPtr ToolService::open_session(std::string user_id, std::shared_ptr<ClientChannel> channel) {
  plugin::SessionRecord record;
  record.id = new_session_id();
  record.user_id = std::move(user_id);
  return adopt(std::move(record), std::move(channel), false);
}

SessionPtr ToolService::adopt(plugin::SessionRecord record, std::shared_ptr<ClientChannel> channel, bool resumed) {
  auto session = std::make_shared<Session>(*this, std::move(record), std::move(channel), resumed);
  {
    const std::lock_guard lock(mutex_);
    sessions_[session->id()] = session;
    sessions_gauge_.set(static_cast<double>(sessions_.size()));
  }
  plugins_.queue->subscribe(session->id(), [weak = std::weak_ptr<Session>(session)](plugin::JobEvent e) {
    if (auto s = weak.lock()) {
      boost::asio::post(s->strand(), [s, e = std::move(e)]() mutable { s->on_job_event(std::move(e)); });
    }
  });
  if (resumed) {
    boost::asio::post(session->strand(), [session] { session->save_record([] {}); });
  } else {
    boost::asio::post(session->strand(), [session] { session->create_record(); });
  }
  return session;
}

void ToolService::connect(const json& auth, std::string_view connection_id, std::shared_ptr<ClientChannel> channel,
                          std::function<void(Status, SessionPtr)> done) {
  auto finish = [executor = host_.executor(), done = std::move(done)](Status s, SessionPtr session) {
    boost::asio::post(executor, [done, s = std::move(s), session = std::move(session)]() mutable {
      done(std::move(s), std::move(session));
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
    finish(Status(), self->adopt(std::move(record), std::move(channel), true));
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
      record_event("message", "unavailable", start);
    } else if (name == "message") {
      session->on_message(args, ack, start);
    } else if (name == "tool:approval") {
      session->on_approval(args, ack, start);
    } else if (name == "session:history") {
      session->on_history(ack, start);
    } else {
      session->on_unknown(name, ack, start);
    }
  });
}

void ToolService::on_disconnect(const SessionPtr& session, std::string_view reason) {
  log_.debug("session.disconnect", {{"session", session->id()}, {"reason", reason}});
  boost::asio::post(session->strand(), [session] { session->detach(); });
}

SessionPtr ToolService::find(const std::string& session_id) const {
  const std::lock_guard lock(mutex_);
  const auto it = sessions_.find(session_id);
  return it == sessions_.end() ? nullptr : it->second.lock();
}

void ToolService::forget(const std::string& session_id) {
  const std::lock_guard lock(mutex_);
  sessions_.erase(session_id);
  sessions_gauge_.set(static_cast<double>(sessions_.size()));
}

std::size_t ToolService::session_count() const {
  const std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::uint64_t ToolService::jobs_in_flight() const { return lifecycle_->in_flight(); }

std::uint64_t ToolService::jobs_unfinished() const {
  // approved_unfinished_ follows this instance's calls from approval until their tool:result has been
  // handed to the connection; jobs_in_flight_ the jobs this process runs (for any instance).
  return std::max<std::uint64_t>(approved_unfinished_.load(), lifecycle_->in_flight());
}

void ToolService::record_event(std::string_view event, std::string_view outcome, Clock::time_point start) {
  const std::array<Label, 2> labels{{{"event", event}, {"outcome", outcome}}};
  host_.metrics().counter("phasekit_events_total", "Client events handled, by event and outcome.", labels).inc();
  host_.metrics()
      .histogram("phasekit_event_duration_seconds", "Time from a client event to its acknowledgement.",
                 std::array<double, 14>{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5, 1, 5},
                 labels)
      .observe(seconds_since(start));
}

void ToolService::shutdown(std::function<void()> done) {
  stopping_ = true;
  plugins_.queue->async_shutdown([self = shared_from_this(), done = std::move(done)]() mutable {
    std::vector<SessionPtr> open;
    {
      const std::lock_guard lock(self->mutex_);
      for (const auto& [id, weak] : self->sessions_) {
        if (auto s = weak.lock()) {
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
