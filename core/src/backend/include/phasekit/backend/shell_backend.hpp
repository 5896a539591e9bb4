#pragma once
// A backend whose tools run in a persistent shell kept by phasekit-sandbox (core/src/sandbox), spoken
// to in frames (supervisor_protocol.hpp) over a byte stream: the pipes of a sandboxed process (process
// backend) or the attached stdio of a container (docker backend). Commands run one at a time in the
// session's one shell: cwd, exports, functions and aliases carry over; a builtin spawns nothing; a
// command that kills or hangs the shell costs its own call, and the next finds a restored shell.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "phasekit/backend/supervisor_protocol.hpp"
#include "phasekit/plugin/backend.hpp"

namespace phasekit::backend {

/// A limit of the backend that a call ran into.
enum class LimitHit : std::uint8_t { none, memory, processes };

struct RunResult {
  int exit_code = -1;
  bool timed_out = false;
  bool truncated = false;
  bool shell_restarted = false;  // the call exited, killed or hung its shell; a restored one replaced it
  bool direct = false;           // a plain program the supervisor spawned itself, the shell's state unchanged
  LimitHit limit = LimitHit::none;
  std::string output;              // at most max_output bytes
  std::uint64_t output_bytes = 0;  // all the command wrote
  std::chrono::nanoseconds duration{0};
};

/// The shell's state after the last call: what a session saves, and restores on another backend.
struct ShellSnapshot {
  bool known = false;   // false until a call has reported one (since start or reset)
  std::string cwd;      // absolute, as the sandbox sees it (the workspace has the host's path)
  std::string exports;  // `declare -px` of the shell (parse_exports turns it into name/value pairs)
};

/// The byte stream to one supervisor. Its I/O objects live on the backend's strand, so completions
/// run there; close() ends the stream and whatever runs behind it (process, container attachment).
class SupervisorChannel {
 public:
  using ReadDone = std::function<void(boost::system::error_code, std::size_t)>;
  using WriteDone = std::function<void(boost::system::error_code)>;
  virtual ~SupervisorChannel() = default;
  virtual void async_write(std::shared_ptr<const std::string> bytes, WriteDone done) = 0;
  virtual void async_read_some(boost::asio::mutable_buffer into, ReadDone done) = 0;
  virtual void close() noexcept = 0;
};

class ShellBackend : public plugin::Backend, public std::enable_shared_from_this<ShellBackend> {
 public:
  using OutputChunk = std::function<void(std::string_view)>;
  using RunDone = std::function<void(Status, RunResult)>;
  using Strand = boost::asio::strand<boost::asio::any_io_executor>;

  ShellBackend(Strand strand, std::string id, std::string workspace);
  ~ShellBackend() override;

  [[nodiscard]] std::string_view id() const noexcept override { return id_; }
  [[nodiscard]] bool alive() const noexcept override { return alive_.load(); }
  /// The workspace folder as this host sees it (file tools work on it directly).
  [[nodiscard]] const std::string& workspace() const noexcept { return workspace_; }
  [[nodiscard]] const Strand& strand() const noexcept { return strand_; }
  /// True once a call ran into a limit: the backend keeps serving its session (everything that call
  /// started is gone), and is destroyed rather than reset when the session gives it back.
  [[nodiscard]] bool spent() const noexcept { return spent_.load(); }

  /// Talks to the supervisor behind `channel`; done(ok) once it said READY.
  void start(std::unique_ptr<SupervisorChannel> channel, std::function<void(Status)> done);
  /// Runs a command line (queued behind any running one). on_chunk sees output as it arrives, up
  /// to max_output bytes in all. Completions run on the backend's strand.
  void run(std::string command, std::chrono::milliseconds timeout, std::size_t max_output, OutputChunk on_chunk,
           RunDone done);
  /// Kills every process of the sandbox, empties every place it could write, starts a fresh shell.
  void reset(std::function<void(Status)> done);
  void ping(std::function<void(Status)> done);
  /// Ends the supervisor; pending requests fail with UNAVAILABLE.
  void stop();
  /// The shell's state after the last call, read on the backend's strand (done runs there).
  void snapshot(std::function<void(ShellSnapshot)> done);

 private:
  struct Request;
  void enqueue(std::shared_ptr<Request> r);
  void send_next();
  void read_loop();
  void on_bytes(std::string_view bytes);
  void on_frame(wire::FrameType type, std::string_view payload);
  void complete(wire::FrameType expected);
  void fail_all(const Status& status);

  Strand strand_;
  std::string id_;
  std::string workspace_;
  std::atomic<bool> alive_{false};
  std::atomic<bool> spent_{false};
  std::unique_ptr<SupervisorChannel> channel_;
  std::string read_buffer_;
  wire::FrameReader reader_;
  std::deque<std::shared_ptr<Request>> queue_;
  std::shared_ptr<Request> current_;
  std::function<void(Status)> on_ready_;
  ShellSnapshot snapshot_;
};

using ShellBackendPtr = std::shared_ptr<ShellBackend>;

/// What every driver of ShellBackends does alike: reset and health check go to the supervisor; a
/// spent backend (one that hit a limit) fails its reset, so the pool replaces it.
class ShellDriver : public plugin::BackendDriver {
 public:
  void reset(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept override;
  void check(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept override {
    std::static_pointer_cast<ShellBackend>(backend)->ping(std::move(done));
  }
};

/// Creates the folder under which backends get their workspaces (mode 0711: backends reach their
/// own workspace below it, but cannot list the others). Throws std::runtime_error naming
/// WORKSPACE_ROOT when it cannot; drivers call it once, at start-up.
void prepare_workspace_root(const std::string& root);

/// Makes <root>/<name> afresh for one backend: mode 0700, given to uid:gid when uid >= 0 (the
/// backend's user). Returns the path, or an UNAVAILABLE status saying why it could not.
Status make_workspace(const std::string& root, const std::string& name, int uid, int gid, std::string& path);

}  // namespace phasekit::backend
