#pragma once
// The `process` backend: a sandboxed bash supervisor per backend (bubblewrap or unshare where the
// machine allows, a plain process with a warning where not), its workspace the only writable place.
#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <memory>
#include <string>

#include "backend/shell_backend.hpp"
#include "phasekit/plugin/log.hpp"

namespace phasekit::backend {

enum class SandboxKind { bwrap, unshare, none };
std::string_view sandbox_name(SandboxKind kind) noexcept;

struct ProcessOptions {
  std::string workspace_root;       // each backend gets <root>/<id>
  SandboxKind sandbox = SandboxKind::none;
  int run_as_uid = -1;              // when the host runs as root: drop to this uid/gid (nobody)
  int run_as_gid = -1;
  int nice = 0;                     // added to the backend's niceness (BACKEND_NICE), before privileges drop
};

/// A ShellBackend whose supervisor is a sandboxed local process on pipes.
class ProcessBackend final : public ShellBackend {
 public:
  ProcessBackend(boost::asio::any_io_executor executor, std::string id, std::string workspace);
  /// The supervisor's pid on this host (-1 before start); its process group holds the sandbox.
  [[nodiscard]] int pid() const noexcept { return pid_; }
  /// Starts the sandbox; done(ok) once the supervisor said READY.
  void start(const ProcessOptions& options, std::function<void(Status)> done);

 private:
  int pid_ = -1;
};

using ProcessBackendPtr = std::shared_ptr<ProcessBackend>;

/// Makes process backends: the host's BackendDriver when BACKEND=process.
class ProcessDriver final : public ShellDriver {
 public:
  ProcessDriver(boost::asio::any_io_executor executor, ProcessOptions options, Logger& log);
  [[nodiscard]] std::string_view name() const noexcept override { return "process"; }
  void create(std::function<void(Status, plugin::BackendPtr)> done) noexcept override;
  void destroy(plugin::BackendPtr backend, std::function<void()> done) noexcept override;
  [[nodiscard]] const ProcessOptions& options() const noexcept { return options_; }

 private:
  boost::asio::any_io_executor executor_;
  ProcessOptions options_;
  Logger& log_;
  std::atomic<std::uint64_t> next_{1};
};

/// Picks the sandbox for SANDBOX=auto|bwrap|unshare|none by trying it once; logs one warning line
/// when the backends will run as plain processes. Throws std::runtime_error when an explicitly
/// requested sandbox does not work here.
SandboxKind detect_sandbox(std::string_view mode, Logger& log);

}  // namespace phasekit::backend
