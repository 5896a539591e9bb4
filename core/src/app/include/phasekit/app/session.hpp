#pragma once
// One Socket.IO session of one user: its calls from `message` to `tool:result`, its socket (which may
// change when the client comes back within SESSION_GRACE_MS, or resumes here from another instance),
// and its record in the store. Everything it does runs on its strand. Its calls run through
// JobLifecycle on its SessionHold; what else it needs of the service is in SessionContext.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "phasekit/app/client_channel.hpp"
#include "phasekit/app/inflight_limiter.hpp"
#include "phasekit/app/job_lifecycle.hpp"
#include "phasekit/app/planner.hpp"
#include "phasekit/app/service_settings.hpp"
#include "phasekit/app/session_hold.hpp"
#include "phasekit/app/session_status.hpp"
#include "phasekit/recent_ids.hpp"
#include "phasekit/plugin/compression.hpp"
#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin/queue.hpp"
#include "phasekit/plugin/store.hpp"

namespace phasekit::app {

/// What a session needs of the service that made it. The service owns it and outlives its sessions.
struct SessionContext {
  const ServiceSettings& settings;
  plugin::StoreStrategy& store;              // the session's record and conversation
  plugin::QueueStrategy& queue;              // its approved calls out, their events back
  plugin::CompressionStrategy& compression;  // reading the conversation back
  plugin::HostServices& host;                // executor, clock, metrics
  Logger& log;
  const Planner& planner;
  InflightLimiter& limiter;  // MAX_REQUESTS_PER_USER across the user's sessions
  /// Approved calls whose tool:result has not been handed to a client yet, across the service's
  /// sessions: a drain waits for 0. Each session settles its own.
  std::atomic<std::uint64_t>& approved_unfinished;
  JobLifecycle& lifecycle;  // runs the calls, and keeps the session's record and conversation
  /// Takes an ended session out of the service's registry.
  std::function<void(const std::string& session_id)> forget;
};

/// phasekit_events_total{event,outcome} and phasekit_event_duration_seconds: one client event handled.
void record_event(Metrics& metrics, std::string_view event, std::string_view outcome,
                  std::chrono::steady_clock::time_point start);

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Strand = IoStrand;
  using TimePoint = std::chrono::steady_clock::time_point;

  /// `record` is the stored session to resume (`resumed`), or a new one's id and user.
  Session(const SessionContext& context, const plugin::SessionRecord& record, std::shared_ptr<ClientChannel> channel,
          bool resumed);

  [[nodiscard]] const std::string& id() const { return hold_->id; }
  [[nodiscard]] const std::string& user() const { return hold_->user; }
  [[nodiscard]] Strand& strand() { return strand_; }
  /// What the session's calls work on; JobLifecycle runs them on it.
  [[nodiscard]] const HoldPtr& hold() const { return hold_; }

  /// Subscribes to its calls' events and writes its record: the first one, or a resumed one's new
  /// status and instance.
  void open();

  // The rest is called on the strand.

  /// A client came back to this session before its grace period ended; false when it may not.
  bool reattach(const std::string& user, std::shared_ptr<ClientChannel> channel);
  void on_message(const nlohmann::json& args, const Ack& ack, TimePoint start);
  void on_approval(const nlohmann::json& args, const Ack& ack, TimePoint start);
  /// `session:history [{before, limit}]`: one page of the conversation as the store holds it,
  /// decompressed, oldest first: the newest `limit` (1..100, default 50) entries below index `before`
  /// (default: the newest), no more than HISTORY_PAGE_BYTES of them.
  void on_history(const nlohmann::json& args, const Ack& ack, TimePoint start);
  void on_unknown(const std::string& name, const Ack& ack, TimePoint start);
  /// A job event from the queue (in-process, or from a worker through pub/sub).
  void on_job_event(plugin::JobEvent event);
  /// A client came back (here, or from another instance) with the offset of the last event it got
  /// (Socket.IO connection-state recovery, recovery.hpp): the tool:results it is missing are sent
  /// now from the conversation, oldest first, each once on this connection. A result reaches only
  /// the instance the client was on, and a socket that broke took what was written to it since.
  void replay_after(std::string offset);
  /// `channel`'s socket went away: the session waits SESSION_GRACE_MS for it, then ends. Nothing when
  /// the session is on another connection now (the old socket of a resumed session closes after).
  void detach(const std::shared_ptr<ClientChannel>& channel);
  void end(EndReason why);

 private:
  struct Call {
    enum class State { awaiting_approval, approved };
    std::string tool;
    nlohmann::json args;
    State state = State::awaiting_approval;
    TimePoint created;
    TimePoint approved_at{};
    std::int64_t requested_unix_ms = 0;  // when the user asked for it (wall clock)
  };
  static std::string job_payload(const Call& call);
  /// A call's tool:result goes out and the call is settled.
  void settle_result(const std::string& job_id, nlohmann::json data);

  void save_record(std::function<void()> then, bool shell = false);
  void create_record();
  void forget_stored(EndReason why);
  bool take_call(const std::string& call_id);
  void drop_call(const std::string& call_id);
  void emit(std::string event, nlohmann::json payload);
  /// tool:result with its offset, once per call on this session's connection.
  void emit_result(nlohmann::json result);
  void replay(std::string offset);
  void outstanding_add(const std::string& call_id);
  void reply(const Ack& ack, nlohmann::json body);
  void record(std::string_view event, std::string_view outcome, TimePoint start);

  const SessionContext& context_;
  Strand strand_;
  std::unique_ptr<boost::asio::steady_timer> grace_;  // only while detached: SESSION_GRACE_MS
  bool resumed_;
  std::shared_ptr<ClientChannel> channel_;
  std::unordered_map<std::string, Call> calls_;
  // The calls whose tool:result the current connection was sent (the latest kResultsRemembered):
  // a result both replayed and delivered by the queue is sent once. Made at the first result.
  static constexpr std::size_t kResultsRemembered = 1024;
  std::unique_ptr<RecentIds> results_sent_;
  // The calls whose tool:request went to a client and whose tool:result has not (oldest first, at most
  // kOffsetOutstandingMost): every recoverable event's offset lists them.
  std::vector<std::string> outstanding_;
  bool replaying_ = false;        // one replay at a time; a newer offset waits for it
  std::string replay_next_;
  HoldPtr hold_;  // its backend, files and shell state, and what the store holds of them
};

using SessionPtr = std::shared_ptr<Session>;

/// The session's id (also its Socket.IO `pid`).
const std::string& session_id_of(const SessionPtr& session);

}  // namespace phasekit::app
