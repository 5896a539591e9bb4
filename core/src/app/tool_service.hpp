#pragma once
// The application behind the Socket.IO transport: sessions, the message → tool:request →
// tool:approval → job → tool:output/tool:result flow, backpressure, the conversation store.
// Transport-free: the server hands it decoded events and a ClientChannel to answer on, so the whole
// flow is testable without a socket.
#include <boost/asio/any_io_executor.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "app/inflight_limiter.hpp"
#include "app/job_lifecycle.hpp"
#include "app/planner.hpp"
#include "app/tool_exec.hpp"
#include "phasekit/plugin/host.hpp"
#include "plugin_host/plugin_set.hpp"

namespace phasekit::app {

/// One client socket as the application sees it. Implemented by the transport; thread-safe.
class ClientChannel {
 public:
  virtual ~ClientChannel() = default;
  virtual void emit(std::string event, nlohmann::json payload) = 0;
  virtual void close(std::string reason) = 0;
};

/// The acknowledgement callback of one client event; empty when the client asked for none.
using Ack = std::function<void(nlohmann::json)>;

struct ServiceSettings {
  std::uint32_t max_requests_per_user = 5;
  std::chrono::milliseconds job_timeout{30000};
  std::size_t max_output_bytes = 1 << 20;
  std::size_t stream_threshold_bytes = 65536;
  std::chrono::milliseconds session_grace{30000};
  unsigned concurrency = 10;
  bool auth_required = false;
  std::string auth_secret;
  int backend_uid = -1;  // owner of files written by the file tools
  int backend_gid = -1;
  /// false when phasekit-workers run the jobs (queue=redis): this instance only enqueues them.
  bool run_jobs = true;
  /// The store is shared (store=redis): sessions save their shell state after every call and can be
  /// resumed on any instance (Socket.IO `pid`).
  bool persist_sessions = false;
  std::string workspace_root;
  std::string instance_id;          // names this instance in session records
  std::size_t history_limit = 100;  // shell command lines kept in a session record
};

class Session;
using SessionPtr = std::shared_ptr<Session>;
/// The session's id (also its Socket.IO `pid`).
const std::string& session_id_of(const SessionPtr& session);

class ToolService : public std::enable_shared_from_this<ToolService> {
 public:
  ToolService(ServiceSettings settings, plugin_host::PluginSet& plugins, plugin::HostServices& host);
  ~ToolService();

  /// Starts taking jobs from the queue (in-process execution).
  void start();

  /// CONNECT's auth payload → user id. AUTH_MODE=none: the connection is its own user.
  Status authenticate(const nlohmann::json& auth, std::string_view connection_id, std::string& user_id) const;
  SessionPtr open_session(std::string user_id, std::shared_ptr<ClientChannel> channel);
  /// A Socket.IO CONNECT: authenticates, then resumes the session named by auth `pid` (Socket.IO's
  /// connection-state-recovery field, which socket.io-client sends back by itself after a reconnect)
  /// when this user may, or opens a new one. done (posted) gets the session, or the reason to refuse.
  void connect(const nlohmann::json& auth, std::string_view connection_id, std::shared_ptr<ClientChannel> channel,
               std::function<void(Status, SessionPtr)> done);
  /// One client event: `args` is the array of its arguments (without the name).
  void on_event(const SessionPtr& session, std::string_view event, nlohmann::json args, Ack ack);
  /// The socket went away; the session keeps its backend for SESSION_GRACE_MS, then ends.
  void on_disconnect(const SessionPtr& session, std::string_view reason);

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
  friend class Session;
  SessionPtr find(const std::string& session_id) const;
  SessionPtr adopt(plugin::SessionRecord record, std::shared_ptr<ClientChannel> channel, bool resumed);
  void forget(const std::string& session_id);
  void record_event(std::string_view event, std::string_view outcome, std::chrono::steady_clock::time_point start);

  ServiceSettings settings_;
  plugin_host::PluginSet& plugins_;
  plugin::HostServices& host_;
  Logger& log_;
  DefaultPlanner planner_;
  InflightLimiter limiter_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<Session>> sessions_;
  std::atomic<std::uint64_t> approved_unfinished_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> draining_{false};
  Gauge& sessions_gauge_;
  std::shared_ptr<JobLifecycle> lifecycle_;  // runs this instance's jobs (queue=inproc) on its sessions' backends
};

}  // namespace phasekit::app
