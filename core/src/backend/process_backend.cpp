#include "backend/process_backend.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <grp.h>
#include <signal.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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

/// What the child of spawn() reads: prepared before the clone, because the child shares our memory and
/// must not allocate, lock or write anything but its own stack.
struct ChildArgs {
  char* const* argv;
  char* const* envp;
  const char* cwd;
  int uid;
  int gid;
  int nice;
  pid_t parent;
  int in_fd;   // the child's stdin
  int out_fd;  // its stdout and stderr
  const sigset_t* mask;  // the signal mask to exec with
};

/// Failures say why on the output pipe (write(2) is async-signal-safe) before exiting.
[[noreturn]] __attribute__((no_sanitize("address", "undefined"))) void child_die(const char* what, std::size_t len,
                                                                                  int code) noexcept {
  (void)!::write(STDOUT_FILENO, what, len);
  ::_exit(code);
}

/// The child of spawn(), on its own stack in our address space until it execs: async-signal-safe calls
/// only, and no writes to our memory (nor to the sanitizers' shadow of it: not instrumented).
__attribute__((no_sanitize("address", "undefined"))) int child_main(void* p) noexcept {
  const ChildArgs& a = *static_cast<const ChildArgs*>(p);
  // Our signal handlers must not run in here (they would act on the parent's memory): every caught
  // signal goes back to its default before the mask, blocked by spawn() around the clone, is restored.
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction action {};
    if (::sigaction(sig, nullptr, &action) == 0 && action.sa_handler != SIG_DFL && action.sa_handler != SIG_IGN) {
      action = {};
      action.sa_handler = SIG_DFL;
      ::sigaction(sig, &action, nullptr);
    }
  }
  ::sigprocmask(SIG_SETMASK, a.mask, nullptr);
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != a.parent) {
    ::_exit(127);
  }
  ::dup2(a.in_fd, STDIN_FILENO);
  ::dup2(a.out_fd, STDOUT_FILENO);
  ::dup2(a.out_fd, STDERR_FILENO);
  ::syscall(SYS_close_range, 3U, ~0U, 0U);
  // Lower priority than ours, inherited by the sandbox and every tool in it (as root, before the
  // privileges drop; a raise of niceness is allowed to anyone, so this works unprivileged too).
  if (a.nice > 0 && ::setpriority(PRIO_PROCESS, 0, ::getpriority(PRIO_PROCESS, 0) + a.nice) != 0) {
    child_die("cannot lower the sandbox's priority\n", 36, 126);
  }
  if (a.gid >= 0 &&
      (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, a.gid, a.gid, a.gid) != 0)) {
    child_die("cannot drop group privileges\n", 29, 126);
  }
  if (a.uid >= 0 && ::syscall(SYS_setresuid, a.uid, a.uid, a.uid) != 0) {
    child_die("cannot drop user privileges\n", 28, 126);
  }
  if (::chdir(a.cwd) != 0) {
    child_die("cannot enter the workspace\n", 27, 126);
  }
  ::execvpe(a.argv[0], a.argv, a.envp);
  child_die("cannot execute the sandbox\n", 27, 127);
}

/// Starts a process with its stdin/stdout on pipes, in its own process group, killed if we die, and as
/// an unprivileged user when uid >= 0.
///
/// Not fork(): after a fork every page this process writes faults once (copy-on-write, a TLB
/// shootdown across CPUs), and under the phase-2 load (15+ sandboxes a second) those faults were a
/// third of the orchestrator's CPU (perf, bench/phase2_acquisition.sh). As posix_spawn does, the child
/// shares our memory (CLONE_VM) and this thread waits until it has called exec (CLONE_VFORK), with
/// every signal blocked so that no handler of ours runs in the child.
Spawned spawn(const std::vector<std::string>& args, const std::string& cwd, int uid, int gid, int nice) {
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
  auto close_pipes = [&] {
    for (const int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) {
      ::close(fd);
    }
  };
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  char* envp[] = {const_cast<char*>("PATH=/usr/local/bin:/usr/bin:/bin"), nullptr};
  // The child's stack: execvpe builds candidate paths on it.
  constexpr std::size_t kStackBytes = 256 * 1024;
  void* stack = ::mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    const int err = errno;
    close_pipes();
    throw std::runtime_error(fmt::format("mmap: {}", std::strerror(err)));
  }
  sigset_t all;
  sigset_t old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const ChildArgs child{argv.data(), envp, cwd.c_str(), uid, gid, nice, ::getpid(), in_pipe[0], out_pipe[1], &old};
  const pid_t pid = ::clone(child_main, static_cast<char*>(stack) + kStackBytes, CLONE_VM | CLONE_VFORK | SIGCHLD,
                            const_cast<ChildArgs*>(&child));
  const int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(stack, kStackBytes);
  if (pid < 0) {
    close_pipes();
    throw std::runtime_error(fmt::format("clone: {}", std::strerror(err)));
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
    child = spawn(argv, workspace(), options.run_as_uid, options.run_as_gid, options.nice);
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
      Spawned s = spawn(argv, "/", -1, -1, 0);
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
