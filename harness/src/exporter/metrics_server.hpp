#pragma once
// The HTTP listener of --metrics-port: GET /metrics answers with what render returns (the Prometheus
// text of the running load). It has its own thread and io_context, so a scrape never runs on, or
// waits for, a load worker. Beast stays behind this header (exporter/ and client/ are the harness's
// only Beast code).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace phasekit::load {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;

  /// Listens on address:port (0: a port the kernel picks) before it returns. Throws
  /// std::runtime_error naming the address and the reason when it cannot.
  MetricsServer(const std::string& address, std::uint16_t port, Render render);
  /// Stops listening, drops open connections and joins its thread.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// The port it listens on.
  [[nodiscard]] std::uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace phasekit::load
