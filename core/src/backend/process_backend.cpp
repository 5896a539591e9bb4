#include "backend/process_backend.hpp"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "backend/supervisor_script.hpp"

namespace phasekit::backend {
namespace {

std::vector<std::string> sandbox_argv(SandboxKind kind, const std::string& root, const std::string& ws) {
  std::vector<std::string> argv;
  switch (kind) {
    case SandboxKind::bwrap:
      argv = {"bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/", "/", "--proc",
              "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", root, "--bind", ws, ws,
              "--chdir", ws, "--"};
      break;
    case SandboxKind::unshare:
      argv = {"unshare", "--user", "--map-root-user", "--pid", "--mount", "--net", "--ipc", "--uts", "--fork",
              "--kill-child", "--mount-proc", "--"};
      break;
    case SandboxKind::none: break;
  }
  const std::string pidns = kind == SandboxKind::none ? "0" : "1";
  for (const char* a : {"/bin/bash", "--noprofile", "--norc", "-c"}) {
    argv.emplace_back(a);
  }
  argv.emplace_back(kSupervisorScript);
  argv.emplace_back("phasekit-backend");
  argv.push_back(ws);
  argv.push_back(pidns);
  return argv;
}

struct Spawned {
  pid_t pid = -1;
  int in = -1;
  int out = -1;
};

/// fork/exec with the child's stdin/stdout on pipes, in its own process group, killed if we die,
/// and as an unprivileged user when uid >= 0. Only async-signal-safe calls between fork and exec.
Spawned spawn(const std::vector<std::string>& args, const std::string& cwd, int uid, int gid) {
  std::array<int, 2> in_pipe{};
  std::array<int, 2> out_pipe{};
  if (::pipe2(in_pipe.data(), O_CLOEXEC) != 0) {
    throw std::runtime_error(fmt::format("pipe2: {}", std::strerror(errno)));
  }
  if (::pipe2(out_pipe.data(), O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    throw std::runtime_error(fmt::format("pipe2: {}", std::strerror(errno)));
  }
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  char* envp[] = {const_cast<char*>("PATH=/usr/local/bin:/usr/bin:/bin"), nullptr};
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    for (const int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) {
      ::close(fd);
    }
    throw std::runtime_error(fmt::format("fork: {}", std::strerror(err)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);
    }
    ::dup2(in_pipe[0], STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(out_pipe[1], STDERR_FILENO);
    ::syscall(SYS_close_range, 3U, ~0U, 0U);
    // Failures say why on the output pipe (write(2) is async-signal-safe) before exiting.
    auto die = [](const char* what, std::size_t len, int code) {
      (void)!::write(STDOUT_FILENO, what, len);
      ::_exit(code);
    };
    if (gid >= 0 && (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, gid, gid, gid) != 0)) {
      die("cannot drop group privileges\n", 29, 126);
    }
    if (uid >= 0 && ::syscall(SYS_setresuid, uid, uid, uid) != 0) {
      die("cannot drop user privileges\n", 28, 126);
    }
    if (::chdir(cwd.c_str()) != 0) {
      die("cannot enter the workspace\n", 27, 126);
    }
    ::execvpe(argv[0], argv.data(), envp);
    die("cannot execute the sandbox\n", 27, 127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  return {pid, in_pipe[1], out_pipe[0]};
}

void kill_and_reap(pid_t pid) {
  if (pid <= 0) {
    return;
  }
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

/// The supervisor's stdin and stdout pipes; close() kills its process group and reaps it.
class PipeChannel final : public SupervisorChannel {
 public:
  PipeChannel(const ShellBackend::Strand& strand, Spawned child) : pid_(child.pid), in_(strand), out_(strand) {
    in_.assign(child.in);
    out_.assign(child.out);
  }
  ~PipeChannel() override { PipeChannel::close(); }

  void async_write(std::shared_ptr<const std::string> bytes, WriteDone done) override {
    boost::asio::async_write(in_, boost::asio::buffer(*bytes),
                             [bytes, done = std::move(done)](boost::system::error_code ec, std::size_t) { done(ec); });
  }
  void async_read_some(boost::asio::mutable_buffer into, ReadDone done) override {
    out_.async_read_some(into, std::move(done));
  }
  void close() noexcept override {
    boost::system::error_code ignored;
    in_.close(ignored);
    out_.close(ignored);
    kill_and_reap(std::exchange(pid_, -1));
  }

 private:
  pid_t pid_;
  boost::asio::posix::stream_descriptor in_;
  boost::asio::posix::stream_descriptor out_;
};

}  // namespace

std::string_view sandbox_name(SandboxKind kind) noexcept {
  switch (kind) {
    case SandboxKind::bwrap: return "bwrap";
    case SandboxKind::unshare: return "unshare";
    case SandboxKind::none: return "none";
  }
  return "none";
}

ProcessBackend::ProcessBackend(boost::asio::any_io_executor executor, std::string id, std::string workspace)
    : ShellBackend(boost::asio::make_strand(std::move(executor)), std::move(id), std::move(workspace)) {}

void ProcessBackend::start(const ProcessOptions& options, std::function<void(Status)> done) {
  std::vector<std::string> argv = sandbox_argv(options.sandbox, options.workspace_root, workspace());
  Spawned child;
  try {
    child = spawn(argv, workspace(), options.run_as_uid, options.run_as_gid);
  } catch (const std::exception& e) {
    boost::asio::post(strand(), [done = std::move(done), what = std::string(e.what())] {
      done(Status(Code::unavailable, "cannot start backend: " + what));
    });
    return;
  }
  pid_ = child.pid;
  ShellBackend::start(std::make_unique<PipeChannel>(strand(), child), std::move(done));
}

ProcessDriver::ProcessDriver(boost::asio::any_io_executor executor, ProcessOptions options, Logger& log)
    : executor_(std::move(executor)), options_(std::move(options)), log_(log) {
  // Writing to a backend that just died must be an error code, not a process-killing SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  prepare_workspace_root(options_.workspace_root);
  if (options_.run_as_uid >= 0) {
    // The backends run as another user: every folder above their workspaces must let it through.
    for (std::filesystem::path p = std::filesystem::absolute(options_.workspace_root); !p.empty();
         p = p.parent_path()) {
      struct stat st {};
      if (::stat(p.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0 &&
          st.st_uid != static_cast<uid_t>(options_.run_as_uid)) {
        throw std::runtime_error(fmt::format(
            "WORKSPACE_ROOT={}: {} is not searchable by the backend user (uid {}); chmod o+x it or choose "
            "another folder",
            options_.workspace_root, p.string(), options_.run_as_uid));
      }
      if (p == p.root_path()) {
        break;
      }
    }
  }
}

void ProcessDriver::create(std::function<void(Status, plugin::BackendPtr)> done) noexcept {
  const std::string id = fmt::format("p{}-{}", ::getpid(), next_.fetch_add(1));
  std::string ws;
  if (Status made = make_workspace(options_.workspace_root, id, options_.run_as_uid, options_.run_as_gid, ws);
      !made.ok()) {
    boost::asio::post(executor_, [done = std::move(done), made = std::move(made)] { done(made, nullptr); });
    return;
  }
  auto backend = std::make_shared<ProcessBackend>(executor_, id, ws);
  backend->start(options_, [backend, done = std::move(done), this](Status status) mutable {
    if (!status.ok()) {
      log_.warn("backend.start_failed", {{"backend", backend->id()}, {"error", status.message()}});
      std::error_code ignored;
      std::filesystem::remove_all(backend->workspace(), ignored);
      done(std::move(status), nullptr);
      return;
    }
    done(Status(), std::move(backend));
  });
}

void ProcessDriver::destroy(plugin::BackendPtr backend, std::function<void()> done) noexcept {
  auto process = std::static_pointer_cast<ProcessBackend>(backend);
  auto finish = [process, done = std::move(done)](Status) mutable {
    process->stop();
    // stop() runs on the backend's strand; the workspace goes once it has.
    process->ping([process, done = std::move(done)](Status) {
      std::error_code ignored;
      std::filesystem::remove_all(process->workspace(), ignored);
      done();
    });
  };
  if (options_.sandbox == SandboxKind::none) {
    // Without a PID namespace, killing the supervisor would leave the commands' process groups behind.
    process->reset(std::move(finish));
  } else {
    finish(Status());
  }
}

SandboxKind detect_sandbox(std::string_view mode, Logger& log) {
  auto works = [](const std::vector<std::string>& argv) {
    try {
      Spawned s = spawn(argv, "/", -1, -1);
      ::close(s.in);
      std::array<char, 64> buf{};
      std::string out;
      ssize_t n = 0;
      while ((n = ::read(s.out, buf.data(), buf.size())) > 0) {
        out.append(buf.data(), static_cast<std::size_t>(n));
      }
      ::close(s.out);
      int status = 0;
      ::waitpid(s.pid, &status, 0);
      return WIFEXITED(status) && WEXITSTATUS(status) == 0 && out == "ok\n";
    } catch (const std::exception&) {
      return false;
    }
  };
  const std::vector<std::string> bwrap{"bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                                       "--proc", "/proc", "--dev", "/dev", "--", "/bin/echo", "ok"};
  const std::vector<std::string> unshare{"unshare", "--user", "--map-root-user", "--pid", "--mount", "--net",
                                         "--fork", "--mount-proc", "--", "/bin/echo", "ok"};
  if (mode == "bwrap" || mode == "auto") {
    if (works(bwrap)) {
      return SandboxKind::bwrap;
    }
    if (mode == "bwrap") {
      throw std::runtime_error("SANDBOX=bwrap: bubblewrap does not work on this machine");
    }
  }
  if (mode == "unshare" || mode == "auto") {
    if (works(unshare)) {
      log.warn("sandbox.partial", {{"sandbox", "unshare"},
                                   {"detail", "bubblewrap unavailable: backends get private pid, net, ipc and mount "
                                              "namespaces but the filesystem is not confined to the workspace"}});
      return SandboxKind::unshare;
    }
    if (mode == "unshare") {
      throw std::runtime_error("SANDBOX=unshare: unshare does not work on this machine");
    }
  }
  log.warn("sandbox.none", {{"detail", "no sandbox available (or SANDBOX=none): backends run as plain processes "
                                       "with the workspace as their working directory only"}});
  return SandboxKind::none;
}

}  // namespace phasekit::backend
