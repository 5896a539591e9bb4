#pragma once
// The application behind the Socket.IO transport: sessions, the message → tool:request →
// tool:approval → job → tool:output/tool:result flow, backpressure, the conversation store.
// Transport-free: the server hands it decoded events and a ClientChannel to answer on, so the whole
// flow is testable without a socket.
#include <boost/asio/any_io_executor.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "phasekit/app/client_channel.hpp"
#include "phasekit/app/inflight_limiter.hpp"
#include "phasekit/app/job_lifecycle.hpp"
#include "phasekit/app/planner.hpp"
#include "phasekit/app/service_settings.hpp"
#include "phasekit/app/session.hpp"
#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"

namespace phasekit::app {

class ToolService : public std::enable_shared_from_this<ToolService> {
 public:
  ToolService(ServiceSettings settings, plugin_host::PluginSet& plugins, plugin::HostServices& host);
  ~ToolService();

  /// Starts taking jobs from the queue (in-process execution).
  void start();

  /// CONNECT's auth payload → user id. AUTH_MODE=none: the connection is its own user.
  Status authenticate(const nlohmann::json& auth, std::string_view connection_id, std::string& user_id) const;
  /// A new session; null when the user holds MAX_SESSIONS_PER_USER here already (refused_session()
  /// says why).
  SessionPtr open_session(std::string user_id, std::shared_ptr<ClientChannel> channel);
  [[nodiscard]] Status refused_session() const;
  /// A Socket.IO CONNECT: authenticates, then resumes the session named by auth `pid` (Socket.IO's
  /// connection-state-recovery field, which socket.io-client sends back by itself after a reconnect)
  /// when this user may, or opens a new one. done (posted) gets the session, or the reason to refuse.
  void connect(const nlohmann::json& auth, std::string_view connection_id, std::shared_ptr<ClientChannel> channel,
               std::function<void(Status, SessionPtr)> done);
  /// One client event: `args` is the array of its arguments (without the name).
  void on_event(const SessionPtr& session, std::string_view event, nlohmann::json args, Ack ack);
  /// The socket went away; the session keeps its backend for SESSION_GRACE_MS, then ends.
  /// `channel`'s socket closed; nothing when the session has moved to another connection since.
  void on_disconnect(const SessionPtr& session, const std::shared_ptr<ClientChannel>& channel,
                     std::string_view reason);

  /// New `message`s get UNAVAILABLE from now on; calls already requested may still be approved and run.
  void begin_drain() noexcept { draining_ = true; }
  /// Stops new work, waits for jobs in flight, ends every session; done once all is released.
  void shutdown(std::function<void()> done);

  [[nodiscard]] std::size_t session_count() const;
  [[nodiscard]] boost::asio::any_io_executor executor() const { return host_.executor(); }
  [[nodiscard]] std::uint64_t jobs_in_flight() const;
  /// Approved calls whose tool:result has not been handed to the client yet (queued, running, or
  /// on their way back), and jobs running here. A drain waits for 0, so an approved job is not lost.
  [[nodiscard]] std::uint64_t jobs_unfinished() const;

 private:
  SessionPtr find(const std::string& session_id) const;
  /// Registers and opens the session; null when its user is at MAX_SESSIONS_PER_USER.
  SessionPtr adopt(const plugin::SessionRecord& record, std::shared_ptr<ClientChannel> channel, bool resumed);
  void forget(const std::string& session_id);

  ServiceSettings settings_;
  plugin_host::PluginSet& plugins_;
  plugin::HostServices& host_;
  Logger& log_;
  DefaultPlanner planner_;
  InflightLimiter limiter_;
  InflightLimiter sessions_per_user_;  // MAX_SESSIONS_PER_USER, counted from adopt() to forget()
  InflightLimiter backends_per_user_;  // MAX_BACKENDS_PER_USER, counted by the lifecycle
  mutable std::mutex mutex_;
  struct Registered {
    std::weak_ptr<Session> session;
    HoldPtr hold;  // the session's id and user, which the entry's key views
  };
  std::unordered_map<std::string_view, Registered> sessions_;
  std::atomic<std::uint64_t> approved_unfinished_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> draining_{false};
  Gauge& sessions_gauge_;
  std::shared_ptr<JobLifecycle> lifecycle_;  // runs this instance's jobs (queue=inproc) on its sessions' backends
  SessionContext context_;                   // what the sessions get of this service
};

}  // namespace phasekit::app
