#pragma once
// The `process` backend: a sandboxed bash supervisor per backend (bubblewrap or unshare where the
// machine allows, a plain process with a warning where not), its workspace the only writable place.
// Commands run one at a time, each in a fresh bash that starts from the cwd and exports the previous
// one left, so `cd` and `export` persist while a timeout kills the command and never the backend.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "phasekit/plugin/backend.hpp"
#include "phasekit/plugin/log.hpp"

namespace phasekit::backend {

enum class SandboxKind { bwrap, unshare, none };
std::string_view sandbox_name(SandboxKind kind) noexcept;

struct RunResult {
  int exit_code = -1;
  bool timed_out = false;
  bool truncated = false;
  std::string output;  // at most max_output bytes
  std::uint64_t output_bytes = 0;  // all the command wrote
  std::chrono::nanoseconds duration{0};
};

struct ProcessOptions {
  std::string workspace_root;       // each backend gets <root>/<id>
  SandboxKind sandbox = SandboxKind::none;
  int run_as_uid = -1;              // when the host runs as root: drop to this uid/gid (nobody)
  int run_as_gid = -1;
};

class ProcessBackend final : public plugin::Backend, public std::enable_shared_from_this<ProcessBackend> {
 public:
  using OutputChunk = std::function<void(std::string_view)>;
  using RunDone = std::function<void(Status, RunResult)>;

  ProcessBackend(boost::asio::any_io_executor executor, std::string id, std::string workspace);
  ~ProcessBackend() override;

  [[nodiscard]] std::string_view id() const noexcept override { return id_; }
  [[nodiscard]] bool alive() const noexcept override { return alive_.load(); }
  [[nodiscard]] const std::string& workspace() const noexcept { return workspace_; }
  [[nodiscard]] int pid() const noexcept { return pid_; }

  /// Starts the sandbox; done(ok) once the supervisor said READY.
  void start(const ProcessOptions& options, std::function<void(Status)> done);
  /// Runs a command line (queued behind any running one). on_chunk sees output as it arrives, up
  /// to max_output bytes in all. Completions run on the backend's strand.
  void run(std::string command, std::chrono::milliseconds timeout, std::size_t max_output, OutputChunk on_chunk,
           RunDone done);
  /// Kills every process the backend started, empties the workspace, resets cwd and environment.
  void reset(std::function<void(Status)> done);
  void ping(std::function<void(Status)> done);
  /// Ends the supervisor and its sandbox; pending requests fail with UNAVAILABLE.
  void stop();

 private:
  struct Request;
  void send_next();
  void read_loop();
  void on_output(std::string_view bytes);
  void on_reply(std::string_view verb, std::string_view id, std::string_view value);
  void fail_all(const Status& status);
  static std::string make_nonce();

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  std::string id_;
  std::string workspace_;
  std::string nonce_;
  int pid_ = -1;
  std::atomic<bool> alive_{false};
  boost::asio::posix::stream_descriptor in_;   // requests → supervisor stdin
  boost::asio::posix::stream_descriptor out_;  // supervisor stdout: output and framed replies
  std::string read_buffer_;
  std::string pending_;  // unparsed tail that may hold the start of a marker
  std::deque<std::shared_ptr<Request>> queue_;
  std::shared_ptr<Request> current_;
  std::function<void(Status)> on_ready_;
  std::uint64_t next_id_ = 1;
};

using ProcessBackendPtr = std::shared_ptr<ProcessBackend>;

/// Makes process backends: the host's BackendDriver when BACKEND=process.
class ProcessDriver final : public plugin::BackendDriver {
 public:
  ProcessDriver(boost::asio::any_io_executor executor, ProcessOptions options, Logger& log);
  [[nodiscard]] std::string_view name() const noexcept override { return "process"; }
  void create(std::function<void(Status, plugin::BackendPtr)> done) noexcept override;
  void reset(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept override;
  void check(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept override;
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
