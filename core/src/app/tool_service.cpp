#include "app/tool_service.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <random>

#include "app/auth.hpp"
#include "app/file_tools.hpp"
#include "backend/shell_backend.hpp"
#include "protocol/engineio.hpp"

namespace phasekit::app {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string random_id(std::string_view prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{}{:016x}", prefix, rng());
}

json ok_ack(const std::string& call_id) { return json{{"ok", true}, {"callId", call_id}}; }

json error_ack(const Status& s) {
  return json{{"ok", false}, {"code", wire_name(s.code())}, {"message", s.message()}};
}

// JSON text cannot carry binary values (Socket.IO attachments): across the queue and in the store
// they travel as {"$binary": "<base64>"}.
void tag_binary(json& node) {
  if (node.is_binary()) {
    const auto& bytes = node.get_binary();
    node = json{{"$binary", engineio::base64_encode(std::string(bytes.begin(), bytes.end()))}};
  } else if (node.is_array() || node.is_object()) {
    for (auto& child : node) {
      tag_binary(child);
    }
  }
}

void untag_binary(json& node) {
  if (node.is_object() && node.size() == 1 && node.contains("$binary") && node["$binary"].is_string()) {
    std::string bytes;
    if (engineio::base64_decode(node["$binary"].get<std::string>(), bytes)) {
      node = json::binary(json::binary_t::container_type(bytes.begin(), bytes.end()));
    }
  } else if (node.is_array() || node.is_object()) {
    for (auto& child : node) {
      untag_binary(child);
    }
  }
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ToolService& service, std::string id, std::string user, std::shared_ptr<ClientChannel> channel)
      : service_(service),
        strand_(boost::asio::make_strand(service.host_.executor())),
        grace_(strand_),
        id_(std::move(id)),
        user_(std::move(user)),
        channel_(std::move(channel)) {}

  [[nodiscard]] const std::string& id() const { return id_; }
  [[nodiscard]] const std::string& user() const { return user_; }
  [[nodiscard]] boost::asio::strand<boost::asio::any_io_executor>& strand() { return strand_; }

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
    it->second.state = Call::State::queued;
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
    append_conversation(json{{"role", "tool"}, {"result", data}}, [](Status) {});
    restore_binary_content(data);
    emit("tool:result", std::move(data));
    if (approved) {
      --service_.approved_unfinished_;  // after the emit: a drain closes the client only behind it
    }
  }

  /// Runs a job on this session's backend (called on the strand).
  void execute(plugin::Job job, plugin::QueueStrategy::EventSink sink, plugin::QueueStrategy::JobDone done) {
    json payload = json::parse(job.payload, nullptr, false);
    untag_binary(payload);
    const std::string call_id = job.id;
    if (const auto it = calls_.find(call_id); it != calls_.end()) {
      it->second.state = Call::State::running;
    }
    auto publish_result = [sink, session_id = id_, call_id](json result) {
      result["callId"] = call_id;
      sink(plugin::JobEvent{call_id, session_id, plugin::JobEventType::result, result.dump()});
    };
    if (payload.is_discarded() || !payload.is_object() || !payload.contains("tool")) {
      publish_result(json{{"exitCode", nullptr}, {"output", ""}, {"truncated", false}, {"durationMs", 0},
                          {"error", {{"code", "BAD_REQUEST"}, {"message", "malformed job"}}}});
      done(Status(Code::bad_request, "malformed job"));
      return;
    }
    with_backend([self = shared_from_this(), payload, call_id, sink, done, publish_result,
                  timeout = std::chrono::milliseconds(job.timeout_ms)](Status status, plugin::BackendPtr backend) {
      if (!status.ok()) {
        publish_result(json{{"exitCode", nullptr}, {"output", ""}, {"truncated", false}, {"durationMs", 0},
                            {"error", {{"code", wire_name(status.code())}, {"message", status.message()}}}});
        done(status);
        return;
      }
      self->run_tool(std::move(backend), payload, call_id, timeout, sink, done, publish_result);
    });
  }

  void detach() {
    channel_.reset();
    if (ended_) {
      return;
    }
    if (service_.settings_.session_grace.count() == 0) {
      end("disconnected");
      return;
    }
    grace_.expires_after(service_.settings_.session_grace);
    grace_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) {
        self->end("grace period over");
      }
    });
  }

  void end(std::string_view why) {
    if (ended_) {
      return;
    }
    ended_ = true;
    grace_.cancel();
    service_.plugins_.queue->unsubscribe(id_);
    for (const auto& [call_id, call] : calls_) {
      service_.limiter_.release(user_);
      if (call.state != Call::State::awaiting_approval) {
        --service_.approved_unfinished_;  // the session is gone: no one is left to wait for
      }
    }
    calls_.clear();
    if (backend_) {
      service_.plugins_.pool->release(std::exchange(backend_, nullptr), true);
    }
    fail_backend_waiters(Status(Code::unavailable, "session ended"));
    service_.plugins_.store->remove_session(id_, [](Status) {});
    service_.forget(id_);
    service_.log_.debug("session.end", {{"session", id_}, {"user", user_}, {"why", why}});
    if (auto channel = std::exchange(channel_, nullptr)) {
      channel->close(std::string(why));
    }
  }

 private:
  struct Call {
    enum class State { awaiting_approval, queued, running } ;
    std::string tool;
    json args;
    State state = State::awaiting_approval;
    Clock::time_point created;
    Clock::time_point approved_at{};
  };

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

  void run_tool(plugin::BackendPtr backend, const json& payload, const std::string& call_id,
                std::chrono::milliseconds timeout, const plugin::QueueStrategy::EventSink& sink,
                const plugin::QueueStrategy::JobDone& done, const std::function<void(json)>& publish_result) {
    auto process = std::dynamic_pointer_cast<backend::ShellBackend>(backend);
    const std::string tool = payload["tool"].get<std::string>();
    const json args = payload.value("args", json::object());
    const auto started = Clock::now();
    if (!process) {
      publish_result(json{{"exitCode", nullptr}, {"output", ""}, {"truncated", false}, {"durationMs", 0},
                          {"error", {{"code", "INTERNAL"}, {"message", "backend cannot run tools"}}}});
      done(Status(Code::internal, "backend cannot run tools"));
      return;
    }
    if (tool == "shell") {
      const std::size_t threshold = service_.settings_.stream_threshold_bytes;
      auto stream = std::make_shared<OutputStream>();
      auto on_chunk = [stream, threshold, sink, session_id = id_, call_id](std::string_view chunk) {
        stream->total += chunk.size();
        if (!stream->streaming) {
          stream->buffered.append(chunk);
          if (stream->total <= threshold) {
            return;
          }
          stream->streaming = true;
          chunk = stream->buffered;
        }
        sink(plugin::JobEvent{call_id, session_id, plugin::JobEventType::output,
                              json{{"callId", call_id}, {"seq", stream->seq++}, {"chunk", chunk}}.dump(
                                  -1, ' ', false, json::error_handler_t::replace)});
        stream->buffered.clear();
      };
      process->run(args.value("command", ""), timeout, service_.settings_.max_output_bytes, on_chunk,
                   [stream, publish_result, done](Status status, backend::RunResult r) {
                     if (!status.ok()) {
                       publish_result(json{{"exitCode", nullptr}, {"output", ""}, {"truncated", false},
                                           {"durationMs", 0},
                                           {"error", {{"code", wire_name(status.code())}, {"message", status.message()}}}});
                       done(status);
                       return;
                     }
                     json result{{"exitCode", r.exit_code},
                                 {"output", stream->streaming ? std::string() : std::move(r.output)},
                                 {"truncated", r.truncated},
                                 {"durationMs", std::chrono::duration_cast<std::chrono::milliseconds>(r.duration).count()}};
                     if (stream->streaming) {
                       result["streamed"] = true;
                       result["outputBytes"] = r.output_bytes;
                     }
                     if (r.timed_out) {
                       result["timedOut"] = true;
                       result["error"] = {{"code", "TIMEOUT"}, {"message", "the command ran past JOB_TIMEOUT_MS and was killed"}};
                     }
                     publish_result(std::move(result));
                     done(r.timed_out ? Status(Code::timeout, "timed out") : Status());
                   });
      return;
    }
    FileToolContext ctx{process->workspace(), service_.settings_.backend_uid, service_.settings_.backend_gid,
                        service_.settings_.max_output_bytes};
    FileToolResult out;
    Status status;
    if (tool == "read_file") {
      status = read_file(ctx, args, out);
    } else if (tool == "write_file") {
      status = write_file(ctx, args, out);
    } else if (tool == "list_dir") {
      status = list_dir(ctx, args, out);
    } else {
      status = Status(Code::bad_request, "unknown tool");
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    if (!status.ok()) {
      publish_result(json{{"exitCode", 1}, {"output", ""}, {"truncated", false}, {"durationMs", ms},
                          {"error", {{"code", wire_name(status.code())}, {"message", status.message()}}}});
    } else {
      publish_result(json{{"exitCode", 0}, {"output", out.output}, {"truncated", out.truncated}, {"durationMs", ms}});
    }
    done(status);
  }

  struct OutputStream {
    std::string buffered;
    std::uint64_t total = 0;
    std::uint64_t seq = 0;
    bool streaming = false;
  };

  void with_backend(std::function<void(Status, plugin::BackendPtr)> use) {
    if (ended_) {
      use(Status(Code::unavailable, "session ended"), nullptr);
      return;
    }
    if (backend_ && !backend_->alive()) {
      service_.plugins_.pool->release(std::exchange(backend_, nullptr), false);
    }
    if (backend_) {
      use(Status(), backend_);
      return;
    }
    waiters_.push_back(std::move(use));
    if (acquiring_) {
      return;
    }
    acquiring_ = true;
    const auto start = Clock::now();
    service_.plugins_.pool->acquire({user_, id_}, [self = shared_from_this(), start](Status s, plugin::Lease lease) {
      boost::asio::post(self->strand_, [self, start, s = std::move(s), lease = std::move(lease)]() mutable {
        self->acquiring_ = false;
        const std::size_t source = s.ok() ? static_cast<std::size_t>(lease.source) : 3;
        self->service_.acquire_seconds_[source]->observe(seconds_since(start));
        if (!s.ok()) {
          self->fail_backend_waiters(s);
          return;
        }
        if (self->ended_) {
          self->service_.plugins_.pool->release(std::move(lease.backend), true);
          self->fail_backend_waiters(Status(Code::unavailable, "session ended"));
          return;
        }
        self->backend_ = std::move(lease.backend);
        auto waiters = std::exchange(self->waiters_, {});
        for (auto& w : waiters) {
          w(Status(), self->backend_);
        }
      });
    });
  }

  void fail_backend_waiters(const Status& s) {
    auto waiters = std::exchange(waiters_, {});
    for (auto& w : waiters) {
      w(s, nullptr);
    }
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
    std::string blob;
    json stamped = entry;
    stamped["t"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                       service_.host_.clock().wall().time_since_epoch())
                       .count();
    if (Status s = service_.plugins_.compression->compress(
            stamped.dump(-1, ' ', false, json::error_handler_t::replace), blob);
        !s.ok()) {
      done(s);
      return;
    }
    service_.plugins_.store->append_conversation(id_, std::move(blob),
                                                 [self = shared_from_this(), done = std::move(done)](Status s) {
                                                   boost::asio::post(self->strand_, [done, s] { done(s); });
                                                 });
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
  plugin::BackendPtr backend_;
  bool acquiring_ = false;
  std::vector<std::function<void(Status, plugin::BackendPtr)>> waiters_;
  bool ended_ = false;
};

namespace {

std::array<Histogram*, 4> acquire_histograms(Metrics& metrics) {
  constexpr std::string_view kName = "phasekit_backend_acquire_seconds";
  constexpr std::string_view kHelp =
      "Time to get a backend from the pool for a session, by source: warm (idle), cold (made for it), waited "
      "(freed by another session), failed.";
  static constexpr std::array<double, 14> kBuckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                   0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};
  static constexpr std::array<std::string_view, 4> kSources{"warm", "cold", "waited", "failed"};
  static_assert(static_cast<std::size_t>(plugin::AcquireSource::warm) == 0 &&
                static_cast<std::size_t>(plugin::AcquireSource::cold) == 1 &&
                static_cast<std::size_t>(plugin::AcquireSource::waited) == 2);
  std::array<Histogram*, 4> out{};
  for (std::size_t i = 0; i < kSources.size(); ++i) {
    const std::array<Label, 1> label{{{"source", kSources[i]}}};
    out[i] = &metrics.histogram(kName, kHelp, kBuckets, label);
  }
  return out;
}

}  // namespace

ToolService::ToolService(ServiceSettings settings, plugin_host::PluginSet& plugins, plugin::HostServices& host)
    : settings_(std::move(settings)),
      plugins_(plugins),
      host_(host),
      log_(host.logger("service")),
      limiter_(settings_.max_requests_per_user),
      sessions_gauge_(host.metrics().gauge("phasekit_sessions", "Socket.IO sessions open (connected or in grace).")),
      acquire_seconds_(acquire_histograms(host.metrics())) {}

ToolService::~ToolService() = default;

void ToolService::start() {
  plugins_.queue->consume(settings_.concurrency, [weak = weak_from_this()](plugin::Job job,
                                                                          plugin::QueueStrategy::EventSink sink,
                                                                          plugin::QueueStrategy::JobDone done) {
    if (auto self = weak.lock()) {
      self->run_job(std::move(job), std::move(sink), std::move(done));
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

SessionPtr ToolService::open_session(std::string user_id, std::shared_ptr<ClientChannel> channel) {
  auto session = std::make_shared<Session>(*this, random_id("s-"), std::move(user_id), std::move(channel));
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
  plugin::SessionRecord record{session->id(), session->user(), "active", "", {},
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   host_.clock().wall().time_since_epoch())
                                   .count()};
  plugins_.store->put_session(std::move(record), [this, id = session->id()](Status s) {
    if (!s.ok()) {
      log_.warn("store.put_session_failed", {{"session", id}, {"error", s.message()}});
    }
  });
  return session;
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
    } else {
      session->on_unknown(name, ack, start);
    }
  });
}

void ToolService::on_disconnect(const SessionPtr& session, std::string_view reason) {
  log_.debug("session.disconnect", {{"session", session->id()}, {"reason", reason}});
  boost::asio::post(session->strand(), [session] { session->detach(); });
}

void ToolService::run_job(plugin::Job job, plugin::QueueStrategy::EventSink sink, plugin::QueueStrategy::JobDone done) {
  auto session = find(job.session_id);
  ++jobs_in_flight_;
  auto counted_done = [this, done = std::move(done)](Status s) {
    --jobs_in_flight_;
    const char* outcome = s.ok() ? "ok" : s.code() == Code::timeout ? "timeout" : "error";
    const std::array<Label, 1> labels{{{"outcome", outcome}}};
    host_.metrics().counter("phasekit_jobs_total", "Jobs run, by outcome.", labels).inc();
    done(s);
  };
  if (!session) {
    json result{{"callId", job.id}, {"exitCode", nullptr}, {"output", ""}, {"truncated", false}, {"durationMs", 0},
                {"error", {{"code", "UNAVAILABLE"}, {"message", "session ended before the job ran"}}}};
    sink(plugin::JobEvent{job.id, job.session_id, plugin::JobEventType::result, result.dump()});
    counted_done(Status(Code::unavailable, "session ended"));
    return;
  }
  boost::asio::post(session->strand(), [session, job = std::move(job), sink = std::move(sink),
                                        done = std::move(counted_done)]() mutable {
    session->execute(std::move(job), std::move(sink), std::move(done));
  });
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

std::uint64_t ToolService::jobs_in_flight() const { return jobs_in_flight_.load(); }

std::uint64_t ToolService::jobs_unfinished() const {
  // approved_unfinished_ follows this instance's calls from approval until their tool:result has been
  // handed to the connection; jobs_in_flight_ the jobs this process runs (for any instance).
  return std::max<std::uint64_t>(approved_unfinished_.load(), jobs_in_flight_.load());
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
      boost::asio::post(s->strand(), [s] { s->end("server shutting down"); });
    }
    // Let the sessions release their backends before the pool goes.
    boost::asio::post(self->host_.executor(), [self, done = std::move(done)]() mutable {
      self->plugins_.pool->async_shutdown(std::move(done));
    });
  });
}

}  // namespace phasekit::app
