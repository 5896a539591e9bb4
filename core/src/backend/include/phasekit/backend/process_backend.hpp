#pragma once
// The `process` backend: phasekit-sandbox started by clone() as PID 1 of fresh pid, mount, network,
// IPC and UTS namespaces (and a user namespace when this process is not root), in a cgroup of its own
// where the machine offers one. SANDBOX=none runs it as a plain child instead: no isolation, said at
// every start.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "phasekit/backend/cgroups.hpp"
#include "phasekit/backend/shell_backend.hpp"
#include "phasekit/plugin/log.hpp"

namespace phasekit::backend {

enum class SandboxKind { namespaces, none };
std::string_view sandbox_name(SandboxKind kind) noexcept;

struct ProcessOptions {
  std::string workspace_root;       // each backend gets <root>/<id>
  SandboxKind sandbox = SandboxKind::none;
  std::string supervisor;           // phasekit-sandbox; empty: found beside this executable (find_supervisor)
  int run_as_uid = -1;              // when the host runs as root: the shell's user (nobody)
  int run_as_gid = -1;
  int nice = 0;                     // added to the backend's niceness (BACKEND_NICE)
  BackendLimits limits;
  bool use_cgroups = true;          // false: rlimits only (tests of the fallback)
  bool direct_spawn = true;         // false: every command goes through the shell (--through-shell)
};

/// Where phasekit-sandbox is: beside /proc/self/exe, in ../libexec/phasekit, or where the build put it.
/// Throws std::runtime_error when none exists.
std::string find_supervisor();

/// A ShellBackend whose supervisor is a sandboxed local process on pipes.
class ProcessBackend final : public ShellBackend {
 public:
  ProcessBackend(boost::asio::any_io_executor executor, std::string id, std::string workspace);
  /// The supervisor's pid on this host (-1 before start); killing it ends the whole sandbox.
  [[nodiscard]] int pid() const noexcept { return pid_; }
  /// Starts the sandbox; done(ok) once the supervisor said READY.
  void start(const ProcessOptions& options, const Cgroups* cgroups, std::function<void(Status)> done);
  [[nodiscard]] const CgroupHandles& cgroup() const noexcept { return cgroup_; }

 private:
  int pid_ = -1;
  CgroupHandles cgroup_;  // the folders only, once started (the sandbox holds what it needs open)
};

using ProcessBackendPtr = std::shared_ptr<ProcessBackend>;

/// What limits a backend runs under, and what enforces each (for /stats/pool and the start-up log).
struct LimitsInForce {
  std::string mechanism;  // "cgroup-v1", "cgroup-v2" or "rlimit"
  std::uint64_t memory_bytes = 0;
  std::string memory_by;  // "cgroup-v1", "rlimit-as", "none"
  std::uint64_t processes = 0;
  std::string processes_by;
  double cpus = 0;
  std::string cpu_by;
  std::uint32_t cpu_weight = 0;  // of all backends together
  std::uint64_t tmpfs_bytes = 0;
  std::uint64_t file_bytes = 0;
  std::uint64_t open_files = 0;
  std::uint64_t workspace_bytes = 0;
  std::string workspace_by;  // "tmpfs" or "none"
  std::string why_unbounded;  // workspace_bytes asked for, but this process cannot mount
  bool user_namespaces = false;  // may a tool create one (never, with a sandbox)
  std::string why_no_cgroups;
};

/// Makes process backends: the host's BackendDriver when BACKEND=process.
class ProcessDriver final : public ShellDriver {
 public:
  ProcessDriver(boost::asio::any_io_executor executor, ProcessOptions options, Logger& log);
  ~ProcessDriver() override;
  [[nodiscard]] std::string_view name() const noexcept override { return "process"; }
  void create(std::function<void(Status, plugin::BackendPtr)> done) noexcept override;
  void destroy(plugin::BackendPtr backend, std::function<void()> done) noexcept override;
  [[nodiscard]] const ProcessOptions& options() const noexcept { return options_; }
  [[nodiscard]] const LimitsInForce& limits() const noexcept { return limits_; }

 private:
  void remove_cgroup(ProcessBackendPtr backend, int attempt, std::function<void()> done);

  boost::asio::any_io_executor executor_;
  ProcessOptions options_;
  Logger& log_;
  std::unique_ptr<Cgroups> cgroups_;
  LimitsInForce limits_;
  boost::asio::thread_pool remover_{1};  // removes destroyed backends' workspaces
  // Backend IDs (and workspace names) are "p<pid>-<tag>-<n>": the tag is random, because orchestrators
  // and workers sharing a WORKSPACE_ROOT (a volume of the compose stack) may all be PID 1 in their
  // containers, and make_workspace removes whatever already has the name.
  std::string tag_;
  std::atomic<std::uint64_t> next_{1};
};

/// SANDBOX=namespaces: proves, once at start-up, that a sandbox can be made here (a real one, with its
/// shell); throws std::runtime_error saying why not. SANDBOX=none: logs the warning every start gets.
void verify_sandbox(const ProcessOptions& options, Logger& log);

}  // namespace phasekit::backend
