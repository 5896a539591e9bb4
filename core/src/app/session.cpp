#include "phasekit/app/session.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <span>

#include "phasekit/app/recovery.hpp"
#include "phasekit/app/session_state.hpp"
#include "phasekit/app/tool_exec.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/bytes.hpp"
#include "phasekit/random_id.hpp"

namespace phasekit::app {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::int64_t unix_ms(const phasekit::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.wall().time_since_epoch()).count();
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::span<const Label> labels_for_tool(const std::string& tool) {
  static const std::array<Label, 1> kShell{{{"tool", "shell"}}};
  static const std::array<Label, 1> kRead{{{"tool", "read_file"}}};
  static const std::array<Label, 1> kWrite{{{"tool", "write_file"}}};
  static const std::array<Label, 1> kList{{{"tool", "list_dir"}}};
  return tool == "shell" ? kShell : tool == "read_file" ? kRead : tool == "write_file" ? kWrite : kList;
}

/// read_file with encoding "binary": the base64 content becomes a binary value, sent as an attachment.
void restore_binary_content(json& result) {
  if (!result.is_object()) {
    return;
  }
  auto output = result.find("output");
  if (output == result.end() || !output->is_object()) {
    return;
  }
  const auto encoding = output->find("encoding");
  const auto content = output->find("content");
  if (encoding == output->end() || *encoding != "binary" || content == output->end() || !content->is_string()) {
    return;
  }
  std::string data;
  if (bytes::base64_decode(content->get_ref<const std::string&>(), data)) {
    (*output)["content"] = json::binary(json::binary_t::container_type(data.begin(), data.end()));
  }
}

}  // namespace

void record_event(Metrics& metrics, std::string_view event, std::string_view outcome, Clock::time_point start) {
  const std::array<Label, 2> labels{{{"event", event}, {"outcome", outcome}}};
  metrics.counter("phasekit_events_total", "Client events handled, by event and outcome.", labels).inc();
  metrics
      .histogram("phasekit_event_duration_seconds", "Time from a client event to its acknowledgement.",
                 observe::MetricsRegistry::event_buckets(), labels)
      .observe(seconds_since(start));
}

const std::string& session_id_of(const SessionPtr& session) { return session->id(); }

Session::Session(const SessionContext& context, const plugin::SessionRecord& record,
                 std::shared_ptr<ClientChannel> channel, bool resumed)
    : context_(context),
      strand_(make_io_strand(context.host.executor())),
      resumed_(resumed),
      channel_(std::move(channel)),
      hold_(std::make_shared<SessionHold>(record.id, record.user_id, strand_)) {
  hold_->take_shell_fields(record);
  hold_->stored = true;
  hold_->restore = resumed;  // its files and shell state are where its last instance left them
}

void Session::open() {
  context_.queue.subscribe(hold_->id, [weak = weak_from_this()](plugin::JobEvent e) {
    if (auto self = weak.lock()) {
      boost::asio::post(self->strand_, [self, e = std::move(e)]() mutable { self->on_job_event(std::move(e)); });
    }
  });
  boost::asio::post(strand_, [self = shared_from_this()] {
    if (self->resumed_) {
      self->save_record([] {});
    } else {
      self->create_record();
    }
  });
}

bool Session::reattach(const std::string& user, std::shared_ptr<ClientChannel> channel) {
  if (hold_->ended || (context_.settings.auth_required && user != hold_->user)) {
    return false;
  }
  grace_.reset();
  if (auto old = std::exchange(channel_, std::move(channel))) {
    old->close("session resumed on another connection");
  }
  results_sent_.reset();  // a new connection: replay_after() decides what it still needs
  hold_->status = SessionStatus::active;
  save_record([] {});
  return true;
}

/// The status and instance, and with `shell` the shell fields too, but only where this instance runs
/// the session's calls: elsewhere its copy of them is stale.
void Session::save_record(std::function<void()> then, bool shell) {
  context_.lifecycle.save(hold_, shell && context_.settings.run_jobs, std::move(then));
}

void Session::create_record() {
  plugin::SessionRecord record;
  record.id = hold_->id;
  record.user_id = hold_->user;
  record.status = std::string(to_string(hold_->status));
  record.instance = context_.settings.instance_id;
  record.updated_unix_ms = unix_ms(context_.host.clock());
  context_.store.put_session(std::move(record), [self = shared_from_this()](Status s) {
    if (!s.ok()) {
      self->context_.log.warn("store.put_session_failed", {{"session", self->id()}, {"error", s.message()}});
    }
  });
}

namespace {

constexpr std::int64_t kHistoryPageEntries = 100;  // most entries a session:history page may ask for

/// session:history's optional {before, limit}; BAD_REQUEST names the field.
Status history_range(const json& args, std::size_t page_bytes, plugin::ConversationRange& range) {
  range.max_bytes = page_bytes;
  const json query = args.is_array() && !args.empty() ? args[0] : json();
  if (query.is_null()) {
    return {};
  }
  if (!query.is_object()) {
    return Status(Code::bad_request, "session:history takes nothing or {before, limit}");
  }
  for (const auto& [key, value] : query.items()) {
    if (key == "before" && value.is_number_unsigned()) {
      range.before = value.get<std::uint64_t>();
    } else if (key == "before" && value.is_null()) {
      // the newest page
    } else if (key == "limit" && value.is_number_integer() && value.get<std::int64_t>() >= 1 &&
               value.get<std::int64_t>() <= kHistoryPageEntries) {
      range.max_entries = static_cast<std::size_t>(value.get<std::int64_t>());
    } else {
      return Status(Code::bad_request, fmt::format("session:history: {} must be {}", key.substr(0, 32),
                                                   key == "before" ? "an entry index (an integer >= 0)"
                                                   : key == "limit" ? "an integer in 1..100"
                                                                    : "absent (unknown field)"));
    }
  }
  return {};
}

}  // namespace

void Session::on_history(const json& args, const Ack& ack, TimePoint start) {
  plugin::ConversationRange range;
  if (Status s = history_range(args, context_.settings.history_page_bytes, range); !s.ok()) {
    reply(ack, error_ack(s));
    record("session:history", "bad_request", start);
    return;
  }
  context_.store.read_conversation(hold_->id, range, [self = shared_from_this(), ack, start](Status s,
                                                                                     plugin::ConversationPage page) {
    boost::asio::post(self->strand_, [self, ack, start, s, page = std::move(page)] {
      if (!s.ok()) {
        self->reply(ack, error_ack(Status(Code::unavailable, "conversation store: " + s.message())));
        self->record("session:history", "unavailable", start);
        return;
      }
      // Newest first, as the store chose them, until HISTORY_PAGE_BYTES of decompressed text (a
      // compressed page may be many times larger once inflated); older ones are the next page's.
      std::vector<json> newest_first;
      std::size_t unreadable = 0;
      std::size_t text_bytes = 0;
      const std::uint64_t end = page.first + page.entries.size();
      std::uint64_t first = end;
      for (auto blob = page.entries.rbegin(); blob != page.entries.rend(); ++blob) {
        std::string text;
        json entry;
        const bool readable = self->context_.compression.decompress(*blob, text).ok() &&
                              !(entry = json::parse(text, nullptr, false)).is_discarded();
        if (first < end && text_bytes + text.size() > self->context_.settings.history_page_bytes) {
          break;  // a page holds at least one entry
        }
        text_bytes += text.size();
        --first;
        if (readable) {
          newest_first.push_back(std::move(entry));
        } else {
          ++unreadable;
        }
      }
      json list = json::array();
      for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) {
        list.push_back(std::move(*it));
      }
      json commands = json::array();
      for (const std::string& line : self->hold_->history) {
        commands.push_back(bytes::to_json(line));
      }
      json body{{"ok", true},
                {"sessionId", self->id()},
                {"entries", std::move(list)},
                {"first", first},
                {"total", page.total},
                {"dropped", page.dropped},
                // The `before` of the next older page; null when this one starts at the oldest kept.
                {"next", first > page.dropped ? json(first) : json(nullptr)},
                {"cwd", bytes::to_json(self->hold_->shell.cwd)},
                {"history", std::move(commands)}};
      if (unreadable > 0) {
        body["unreadable"] = unreadable;  // a corrupt entry costs that entry, not the session
      }
      self->reply(ack, std::move(body));
      self->record("session:history", "ok", start);
    });
  });
}

void Session::on_message(const json& args, const Ack& ack, TimePoint start) {
  ToolCall call;
  const json message = args.empty() ? json() : args[0];
  if (Status s = context_.planner.plan(message, call); !s.ok()) {
    reply(ack, error_ack(s));
    record("message", "bad_request", start);
    return;
  }
  if (!context_.limiter.try_acquire(hold_->user)) {
    reply(ack, error_ack(Status(Code::too_many_requests,
                                fmt::format("at most {} requests in flight per user", context_.limiter.limit()))));
    record("message", "too_many_requests", start);
    return;
  }
  const std::string call_id = random_id("call-");
  calls_[call_id] = Call{call.tool, call.args, Call::State::awaiting_approval, Clock::now(), {},
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                             context_.host.clock().wall().time_since_epoch())
                             .count()};
  json entry{{"role", "user"}, {"callId", call_id}, {"message", message}};
  tag_binary(entry);
  context_.lifecycle.append(hold_, std::move(entry), [self = shared_from_this(), call_id, tool = call.tool,
                                                      tool_args = call.args, ack, start](Status stored) {
    if (!stored.ok()) {
      self->drop_call(call_id);
      self->reply(ack, error_ack(Status(Code::unavailable, "conversation store: " + stored.message())));
      self->record("message", "unavailable", start);
      return;
    }
    self->outstanding_add(call_id);
    if (self->channel_) {
      self->channel_->emit_recoverable("tool:request", json{{"callId", call_id}, {"tool", tool}, {"args", tool_args}},
                                       format_offset({'q', call_id, self->outstanding_}));
    }
    self->reply(ack, ok_ack(call_id));
    self->record("message", "ok", start);
  });
}

void Session::on_approval(const json& args, const Ack& ack, TimePoint start) {
  const json body = args.empty() ? json() : args[0];
  if (!body.is_object() || !body.contains("callId") || !body["callId"].is_string() || !body.contains("approved") ||
      !body["approved"].is_boolean()) {
    reply(ack, error_ack(Status(Code::bad_request, "tool:approval needs {callId: string, approved: boolean}")));
    record("tool:approval", "bad_request", start);
    return;
  }
  const std::string call_id = body["callId"].get<std::string>();
  const auto it = calls_.find(call_id);
  if (it == calls_.end() || it->second.state != Call::State::awaiting_approval) {
    // Another user's callId, an unknown one, or one already approved: all look the same.
    reply(ack, error_ack(Status(Code::not_found, "no tool call awaiting approval with this callId")));
    record("tool:approval", "not_found", start);
    return;
  }
  if (!body["approved"].get<bool>()) {
    const std::string payload = job_payload(it->second);
    drop_call(call_id);
    const json result{{"callId", call_id}, {"denied", true},     {"exitCode", nullptr},
                      {"output", ""},      {"truncated", false}, {"durationMs", 0}};
    context_.lifecycle.append(hold_, json{{"role", "tool"}, {"result", result}}, [](Status) {});
    // In the audit log before the user hears of it, as a result that ran is.
    context_.lifecycle.audit_settled(hold_, call_id, payload, false, "denied", 1,
                                     [self = shared_from_this(), result, call_id, ack, start] {
      self->emit_result(result);
      self->reply(ack, ok_ack(call_id));
      self->record("tool:approval", "denied", start);
    });
    return;
  }
  it->second.state = Call::State::approved;
  it->second.approved_at = Clock::now();
  ++context_.approved_unfinished;  // settled once its tool:result has been handed to the client
  plugin::Job job;
  job.id = call_id;
  job.user_id = hold_->user;
  job.session_id = hold_->id;
  job.payload = job_payload(it->second);
  job.timeout_ms = context_.settings.job_timeout.count();
  context_.queue.enqueue(std::move(job), [self = shared_from_this(), call_id, ack, start](Status queued) {
    boost::asio::post(self->strand_, [self, call_id, ack, start, queued] {
      if (!queued.ok()) {
        self->drop_call(call_id);
        self->reply(ack, error_ack(queued));
        self->record("tool:approval", "unavailable", start);
        return;
      }
      self->reply(ack, ok_ack(call_id));
      self->record("tool:approval", "ok", start);
    });
  });
}

void Session::on_unknown(const std::string& name, const Ack& ack, TimePoint start) {
  reply(ack, error_ack(Status(Code::bad_request, fmt::format("unknown event \"{}\"", name.substr(0, 64)))));
  record("unknown", "bad_request", start);
}

void Session::on_job_event(plugin::JobEvent event) {
  json data = json::parse(event.data, nullptr, false);
  if (data.is_discarded()) {
    return;
  }
  if (event.type == plugin::JobEventType::output) {
    emit("tool:output", std::move(data));
    return;
  }
  if (event.type == plugin::JobEventType::redelivered) {
    // A call whose result went out already ran once more under its attempt: said, and kept.
    if (!data.is_object() || !data.contains("callId") || data["callId"] != event.job_id || !data.contains("attempt") ||
        !data["attempt"].is_number_unsigned()) {
      return;
    }
    context_.lifecycle.append(hold_, json{{"role", "tool"}, {"redelivered", data}}, [](Status) {});
    emit("tool:redelivered", std::move(data));
    return;
  }
  const auto it = calls_.find(event.job_id);
  const bool audited = data.is_object() && data.contains("audited");
  if (data.is_object()) {
    data.erase("audited");
  }
  if (!audited && data.is_object() && it != calls_.end() && it->second.state == Call::State::approved) {
    // No run got this call to its end: the queue failed it (its workers kept dying, it ran past its
    // deadline, redis forgot it). It goes into the history and the audit log here, before the user
    // hears of it, as a result that ran does.
    const auto error = data.find("error");
    std::string outcome = error != data.end() && error->is_object() ? error->value("code", "UNAVAILABLE") : "ok";
    const auto at = data.find("attempt");
    const auto attempt = at != data.end() && at->is_number_unsigned() ? at->get<std::uint32_t>() : 1u;
    context_.lifecycle.append(hold_, json{{"role", "tool"}, {"result", data}}, [](Status) {});
    context_.lifecycle.audit_settled(hold_, event.job_id, job_payload(it->second), true, std::move(outcome), attempt,
                                     [self = shared_from_this(), id = event.job_id, data = std::move(data)]() mutable {
                                       self->settle_result(id, std::move(data));
                                     });
    return;
  }
  settle_result(event.job_id, std::move(data));
}

void Session::settle_result(const std::string& job_id, json data) {
  const auto it = calls_.find(job_id);
  if (it != calls_.end()) {
    context_.host.metrics()
        .histogram("phasekit_tool_call_duration_seconds", "Time from approval to tool:result.",
                   observe::MetricsRegistry::call_buckets(),
                   labels_for_tool(it->second.tool))
        .observe(seconds_since(it->second.approved_at));
  }
  const bool approved = take_call(job_id);
  restore_binary_content(data);
  emit_result(std::move(data));
  if (approved) {
    --context_.approved_unfinished;  // after the emit: a drain closes the client only behind it
  }
}

void Session::detach(const std::shared_ptr<ClientChannel>& channel) {
  if (channel != channel_) {
    return;  // a connection this session has left: it is on another one now
  }
  channel_.reset();
  if (hold_->ended) {
    return;
  }
  if (context_.settings.persist_sessions) {
    hold_->status = SessionStatus::detached;
    // With a shared store a detached session gives its backend back at once instead of holding it for
    // the grace period: its files wait in WORKSPACE_ROOT/sessions/<id>, its cwd and exports are in the
    // record, so a reconnect (here or elsewhere) brings them onto whatever backend it gets next. Not
    // while one of its calls is queued or running on the backend.
    if (std::none_of(calls_.begin(), calls_.end(),
                     [](const auto& c) { return c.second.state != Call::State::awaiting_approval; })) {
      context_.lifecycle.park(hold_);
    }
    save_record([] {}, true);
  }
  if (context_.settings.session_grace.count() == 0) {
    end(EndReason::disconnected);
    return;
  }
  grace_ = std::make_unique<boost::asio::steady_timer>(strand_, context_.settings.session_grace);
  grace_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) {
      self->end(EndReason::grace_over);
    }
  });
}

void Session::end(EndReason why) {
  if (hold_->ended) {
    return;
  }
  context_.lifecycle.end(hold_);
  grace_.reset();
  context_.queue.unsubscribe(hold_->id);
  for (const auto& [call_id, call] : calls_) {
    context_.limiter.release(hold_->user);
    if (call.state != Call::State::awaiting_approval) {
      --context_.approved_unfinished;  // the session is gone: no one is left to wait for
    }
  }
  calls_.clear();
  forget_stored(why);
  context_.forget(hold_->id);
  context_.log.debug("session.end", {{"session", hold_->id}, {"user", hold_->user}, {"why", to_string(why)}});
  if (auto channel = std::exchange(channel_, nullptr)) {
    channel->close(std::string(to_string(why)));
  }
}

/// Removes the session from the store, unless it is shared and the client may have resumed the session
/// on another instance during the grace period (its record then names that instance).
void Session::forget_stored(EndReason why) {
  auto remove = [self = shared_from_this()] {
    self->context_.store.remove_session(self->id(), [](Status) {});
    if (self->context_.settings.persist_sessions && !self->context_.settings.workspace_root.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(session_folder(self->context_.settings.workspace_root, self->id()), ec);
    }
  };
  if (!context_.settings.persist_sessions || why != EndReason::grace_over) {
    remove();
    return;
  }
  context_.store.get_session(hold_->id, [self = shared_from_this(), remove](Status s, plugin::SessionRecord stored) {
    if (s.ok() && stored.instance == self->context_.settings.instance_id) {
      remove();
    }
  });
}

/// The job of a call: its tool and arguments, and when the user asked for it (for the audit log).
std::string Session::job_payload(const Call& call) {
  json payload{{"tool", call.tool}, {"args", call.args}, {"requested", call.requested_unix_ms}};
  tag_binary(payload);
  return bytes::dump(payload);
}

/// Removes a call and gives its in-flight slot back; true when it had been approved (and so is counted
/// in approved_unfinished, which the caller settles).
bool Session::take_call(const std::string& call_id) {
  const auto it = calls_.find(call_id);
  if (it == calls_.end()) {
    return false;
  }
  const bool approved = it->second.state != Call::State::awaiting_approval;
  calls_.erase(it);
  context_.limiter.release(hold_->user);
  return approved;
}

void Session::drop_call(const std::string& call_id) {
  if (take_call(call_id)) {
    --context_.approved_unfinished;
  }
}

void Session::emit(std::string event, json payload) {
  if (channel_) {
    channel_->emit(std::move(event), std::move(payload));
  }
}

void Session::outstanding_add(const std::string& call_id) {
  if (std::find(outstanding_.begin(), outstanding_.end(), call_id) != outstanding_.end()) {
    return;
  }
  outstanding_.push_back(call_id);
  if (outstanding_.size() > kOffsetOutstandingMost) {
    outstanding_.erase(outstanding_.begin());  // a call whose result never came: the oldest goes
  }
}

void Session::emit_result(json result) {
  const auto id = result.is_object() ? result.find("callId") : result.end();
  if (!result.is_object() || id == result.end() || !id->is_string()) {
    emit("tool:result", std::move(result));  // not a call's (never made here): sent, not recoverable
    return;
  }
  const std::string call_id = id->get<std::string>();
  if (!results_sent_) {
    results_sent_ = std::make_unique<RecentIds>(kResultsRemembered);
  }
  if (!channel_ || !results_sent_->insert(call_id)) {
    return;  // no client now (a resume replays it), or sent on this connection already
  }
  std::erase(outstanding_, call_id);
  channel_->emit_recoverable("tool:result", std::move(result), format_offset({'r', call_id, outstanding_}));
}

void Session::replay_after(std::string offset) {
  if (replaying_) {
    replay_next_ = std::move(offset);  // the newest connection's offset is the one that counts
    return;
  }
  replay(std::move(offset));
}

void Session::replay(std::string offset_text) {
  const std::optional<RecoveryOffset> offset = parse_offset(offset_text);
  if (!offset) {
    context_.log.info("session.replay_offset_unknown", {{"session", hold_->id}});
    return;
  }
  // The newest entries, within a budget both as stored and once inflated: one replay at a time per
  // session, so this bounds what a reconnecting client can make the server hold.
  constexpr std::size_t kReplayEntries = 200;
  constexpr std::size_t kReplayStoredBytes = 4u << 20;
  constexpr std::size_t kReplayTextBytes = 16u << 20;
  plugin::ConversationRange range;
  range.max_entries = kReplayEntries;
  range.max_bytes = kReplayStoredBytes;
  replaying_ = true;
  context_.store.read_conversation(hold_->id, range, [self = shared_from_this(), offset = *offset](
                                                   Status s, plugin::ConversationPage page) {
    boost::asio::post(self->strand_, [self, offset, s, page = std::move(page)] {
      if (!s.ok()) {
        self->context_.log.warn("session.replay_failed", {{"session", self->id()}, {"error", s.message()}});
      } else {
        std::vector<json> entries;
        entries.reserve(page.entries.size());
        std::size_t text_bytes = 0;
        for (const auto& blob : page.entries) {
          std::string text;
          json entry = json::object();
          if (text_bytes < kReplayTextBytes && self->context_.compression.decompress(blob, text).ok()) {
            text_bytes += text.size();
            entry = json::parse(text, nullptr, false);
          }
          entries.push_back(entry.is_object() ? std::move(entry) : json::object());
        }
        std::vector<std::string> waiting;
        const auto replay = results_to_replay(entries, offset, waiting);
        std::size_t sent = 0;
        for (const std::size_t i : replay) {
          json result = std::move(entries[i]["result"]);
          const std::string id = result["callId"].get<std::string>();
          restore_binary_content(result);
          sent += self->channel_ && !(self->results_sent_ && self->results_sent_->contains(id)) ? 1 : 0;
          self->emit_result(std::move(result));
          self->drop_call(id);  // settled, as when the queue delivers it (after the emit, as there)
        }
        for (const auto& id : waiting) {
          self->outstanding_add(id);  // its result comes later, or a later resume replays it
        }
        self->context_.log.info("session.replayed", {{"session", self->id()}, {"results", sent},
                                                     {"waiting", waiting.size()}});
      }
      self->replaying_ = false;
      if (!self->replay_next_.empty()) {
        self->replay(std::exchange(self->replay_next_, std::string()));
      }
    });
  });
}

void Session::reply(const Ack& ack, json body) {
  if (ack) {
    ack(std::move(body));
  } else if (!body.value("ok", false)) {
    emit("error", json{{"code", body["code"]}, {"message", body["message"]}});
  }
}

void Session::record(std::string_view event, std::string_view outcome, TimePoint start) {
  record_event(context_.host.metrics(), event, outcome, start);
}

}  // namespace phasekit::app
