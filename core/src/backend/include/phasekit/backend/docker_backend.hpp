#pragma once
// The `docker` backend: one container per backend, made through the Docker Engine API over its unix
// socket (Beast). The container's PID 1 is the same phasekit-sandbox as the process backend's
// (bind-mounted read-only from this host), attached over a hijacked API connection, so tools,
// timeouts and reset behave the same. It always runs as a non-root user, with no capabilities. The
// workspace is a host folder bind-mounted at the same path; the network is off unless configured.
// The container is started with StdinOnce and AutoRemove: if this process dies, the supervisor reads
// EOF, exits, and dockerd removes the container.
#include <boost/asio/any_io_executor.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "phasekit/backend/cgroups.hpp"
#include "phasekit/backend/shell_backend.hpp"
#include "phasekit/plugin/log.hpp"

namespace phasekit::backend {

struct DockerOptions {
  std::string socket_path = "/var/run/docker.sock";  // from DOCKER_HOST=unix://PATH
  std::string image;                                  // must hold /bin/bash (docs/architecture.md)
  std::string network = "none";
  std::string supervisor;         // phasekit-sandbox on this host, bind-mounted read-only into each container
  BackendLimits limits;           // memory, processes, tmpfs sizes, file size, open files
  std::int64_t nano_cpus = 0;     // 0: no limit; 1e9 = one CPU
  std::string workspace_root;     // each backend gets <root>/<id>, mounted at the same path
  int run_as_uid = -1;            // the container's user; -1: the image's
  int run_as_gid = -1;
  std::chrono::milliseconds api_timeout{30000};
};

/// "unix:///run/docker.sock" → "/run/docker.sock"; empty when DOCKER_HOST is not a unix socket URL.
std::string docker_socket_path(std::string_view docker_host);

/// The supervisor's stream inside an attach connection: Docker multiplexes stdout and stderr in
/// frames of an 8-byte header (stream, 0, 0, 0, big-endian length) and the payload. This collects
/// the payloads; headers may arrive split across reads.
class DockerDemuxer {
 public:
  void feed(std::string_view bytes, std::string& payload);

 private:
  std::array<unsigned char, 8> header_{};
  std::size_t header_len_ = 0;
  std::uint32_t remaining_ = 0;
};

class DockerBackend final : public ShellBackend {
 public:
  DockerBackend(boost::asio::any_io_executor executor, std::string name, std::string workspace);
  /// The container's name (also its id() and the name docker commands take).
  [[nodiscard]] const std::string& container() const noexcept { return container_; }

 private:
  std::string container_;
};

class DockerDriver final : public ShellDriver {
 public:
  /// Throws std::runtime_error when the workspace root cannot be made.
  DockerDriver(boost::asio::any_io_executor executor, DockerOptions options, Logger& log);
  [[nodiscard]] std::string_view name() const noexcept override { return "docker"; }
  void create(std::function<void(Status, plugin::BackendPtr)> done) noexcept override;
  void destroy(plugin::BackendPtr backend, std::function<void()> done) noexcept override;
  [[nodiscard]] const DockerOptions& options() const noexcept { return options_; }

  /// One API call (for start-up checks and tests): status code and body, or why it failed.
  void call(std::string method, std::string target, std::string body,
            std::function<void(Status, unsigned, std::string)> done);

 private:
  boost::asio::any_io_executor executor_;
  DockerOptions options_;
  Logger& log_;
};

}  // namespace phasekit::backend
