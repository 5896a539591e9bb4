#pragma once
// The HTTP front of phasekit-orchestrator and phasekit-worker: a coroutine per connection on its own
// strand, on two listeners.
//   PORT (public):       /health, /ready and the Engine.IO endpoint (/socket.io/) that carries
//                        Socket.IO to the ToolService; every other path is 404. Connections and
//                        Engine.IO sessions are limited in all and per client address.
//   ADMIN_PORT (admin):  /health, /ready, /metrics, /stats/pool and the JSON routes (/api/...),
//                        on loopback by default: what operators and Prometheus read, never clients.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "phasekit/app/tool_service.hpp"
#include "phasekit/config/config.hpp"
#include "phasekit/net/origin_policy.hpp"
#include "phasekit/observe/metrics_registry.hpp"

namespace phasekit::net {

struct ServerSettings {
  std::string bind_address = "127.0.0.1";
  std::uint16_t port = 3000;
  std::string admin_bind_address = "127.0.0.1";
  std::uint16_t admin_port = 0;  // 0: any free port
  /// Which other sites' pages may use /socket.io/ (ALLOWED_ORIGINS).
  OriginPolicy origins;
  /// Open TCP connections on the public listener, and Engine.IO sessions, each at most (0: no limit
  /// per address).
  std::size_t max_connections = 20000;
  std::size_t max_connections_per_address = 256;
  /// PORT is bound with SO_REUSEPORT (REUSE_PORT): processes on one host share it.
  bool reuse_port = false;
  std::size_t max_payload_bytes = 1000000;
  std::chrono::milliseconds ping_interval{25000};
  std::chrono::milliseconds ping_timeout{20000};
  /// A connection that has joined no Socket.IO namespace this long after its handshake is closed.
  std::chrono::milliseconds connect_timeout{45000};
  /// A WebSocket that probed a polling session's upgrade ("2probe") but has not completed it ("5")
  /// this long after is closed; the polling session goes on (Engine.IO's upgradeTimeout).
  std::chrono::milliseconds upgrade_timeout{10000};
  std::size_t max_outbox_bytes = 16u << 20;  // per client, before it is closed as too slow
  /// /stats/pool's "limits": what each backend runs under, and what enforces it.
  nlohmann::json backend_limits = nlohmann::json::object();
};

/// PORT, BIND_ADDRESS, ADMIN_PORT, ADMIN_BIND_ADDRESS, ALLOWED_ORIGINS, MAX_CONNECTIONS(_PER_ADDRESS),
/// MAX_PAYLOAD_BYTES, PING_INTERVAL_MS and PING_TIMEOUT_MS, as the configuration holds them.
ServerSettings server_settings(const config::Config& config);

class EngineServer;

/// The HTTP side of a process: Socket.IO at /socket.io/ on the public listener when it has a service
/// (phasekit-worker has none), the operations routes on the admin listener.
class Server {
 public:
  Server(boost::asio::io_context& ioc, ServerSettings settings, std::shared_ptr<app::ToolService> service,
         observe::MetricsRegistry& metrics, plugin::PoolStrategy& pool, Logger& log);
  ~Server();

  /// Binds both listeners and starts accepting. Throws std::system_error when an address cannot be
  /// bound (the message names the listener).
  void start();
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::uint16_t admin_port() const noexcept { return admin_port_; }
  /// What it was made with (the addresses it binds, its limits).
  [[nodiscard]] const ServerSettings& settings() const noexcept;

  /// /ready answers 503 from now on and new Engine.IO sessions are refused; open clients stay.
  void begin_drain();
  /// Closes every client with a Socket.IO disconnect and the reason; completes when none is left
  /// or after `deadline`.
  void close_clients(std::string reason, std::chrono::milliseconds deadline, std::function<void()> done);

  [[nodiscard]] bool draining() const noexcept { return draining_.load(); }
  void set_ready(bool ready) noexcept { ready_ = ready; }

  /// Before start(): GET `path` on the admin listener answers 200 with body() as application/json
  /// (e.g. /api/circuit-breakers).
  void add_json_route(std::string path, std::function<std::string()> body);
  /// Before start(): runs before every /metrics rendering, to bring gauges and counters up to date.
  void on_scrape(std::function<void()> refresh);
  /// Before start(): a dependency /ready reports in its body ({"checks": {name: "ok" | "unreachable"}})
  /// from `ok()` (called on any thread). With `gates`, /ready answers 503 while it is not ok.
  void add_readiness_check(std::string name, std::function<bool()> ok, bool gates);

 private:
  friend class EngineServer;
  class Impl;
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<bool> ready_{false};
};

}  // namespace phasekit::net
