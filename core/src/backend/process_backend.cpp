#include "phasekit/backend/process_backend.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>
#include <vector>

#include "workspace_bound.hpp"
#include "phasekit/random_id.hpp"

namespace phasekit::backend {
namespace {

/// The tags of this process's live drivers: the workspaces named after them are not stale (a test
/// may run several drivers in one process).
struct LiveTags {
  std::mutex mutex;
  std::set<std::string> tags;
};
LiveTags& live_tags() {
  static LiveTags t;
  return t;
}

bool live_driver_names(std::string_view name) {
  const std::string prefix = fmt::format("p{}-", ::getpid());
  if (!name.starts_with(prefix)) {
    return false;
  }
  name.remove_prefix(prefix.size());
  LiveTags& live = live_tags();
  const std::lock_guard lock(live.mutex);
  return std::any_of(live.tags.begin(), live.tags.end(), [name](const std::string& t) {
    return name.size() > t.size() && name.starts_with(t) && name[t.size()] == '-';
  });
}

constexpr std::chrono::milliseconds kCgroupRetry{20};
constexpr int kCgroupAttempts = 250;  // 5 s for the sandbox's last processes to leave its cgroup

struct Spawned {
  pid_t pid = -1;
  int in = -1;
  int out = -1;
};

/// What the child of spawn() reads: prepared before the clone, because the child shares our memory and
/// must not allocate, lock or write anything but its own stack.
struct ChildArgs {
  const char* path;
  char* const* argv;
  char* const* envp;
  bool namespaced;  // the child is PID 1 of new namespaces (its parent is outside them)
  const int* procs;  // cgroup.procs of the backend's groups: writing "0" moves the child in
  std::size_t nprocs;
  int pids_events;   // given to the supervisor as fd 3
  int memory_events; // and fd 4
  int nice;
  pid_t parent;
  int in_fd;   // the child's stdin
  int out_fd;  // its stdout
  const sigset_t* mask;  // the signal mask to exec with
};

/// Says why in a FATAL frame on the output pipe (write(2) is async-signal-safe), then exits.
template <std::size_t N>
[[noreturn]] __attribute__((no_sanitize("address", "undefined"))) void child_die(int fd, const char (&what)[N],
                                                                                  int code) noexcept {
  constexpr std::size_t len = N - 1;
  const unsigned char header[8] = {static_cast<unsigned char>(wire::FrameType::fatal), 0, 0, 0,
                                   static_cast<unsigned char>(len & 0xff), static_cast<unsigned char>(len >> 8), 0, 0};
  (void)!::write(fd, header, sizeof header);
  (void)!::write(fd, what, len);
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
  // In a new PID namespace the parent is outside it (getppid() is 0); the check is for the plain child.
  if (!a.namespaced && ::getppid() != a.parent) {
    ::_exit(127);
  }
  for (std::size_t i = 0; i < a.nprocs; ++i) {
    if (::write(a.procs[i], "0", 1) != 1) {
      child_die(a.out_fd, "cannot join the backend's cgroup\n", 126);
    }
  }
  // Every source above the five targets first, so no dup2 clobbers one still to be copied.
  const int in = ::fcntl(a.in_fd, F_DUPFD, 10);
  const int out = ::fcntl(a.out_fd, F_DUPFD, 10);
  const int pids = a.pids_events >= 0 ? ::fcntl(a.pids_events, F_DUPFD, 10) : -1;
  const int memory = a.memory_events >= 0 ? ::fcntl(a.memory_events, F_DUPFD, 10) : -1;
  if (in < 0 || out < 0 || ::dup2(in, STDIN_FILENO) < 0 || ::dup2(out, STDOUT_FILENO) < 0) {
    child_die(a.out_fd, "cannot set up the sandbox's pipes\n", 126);
  }
  ::close(3);
  ::close(4);
  if ((pids >= 0 && ::dup2(pids, 3) < 0) || (memory >= 0 && ::dup2(memory, 4) < 0)) {
    child_die(STDOUT_FILENO, "cannot pass the cgroup's event files\n", 126);
  }
  ::syscall(SYS_close_range, 5U, ~0U, 0U);
  // Lower priority than ours, inherited by the sandbox and every tool in it (a raise of niceness is
  // allowed to anyone).
  if (a.nice > 0 && ::setpriority(PRIO_PROCESS, 0, ::getpriority(PRIO_PROCESS, 0) + a.nice) != 0) {
    child_die(STDOUT_FILENO, "cannot lower the sandbox's priority\n", 126);
  }
  if (::chdir("/") != 0) {
    child_die(STDOUT_FILENO, "cannot enter /\n", 126);
  }
  ::execve(a.path, a.argv, a.envp);
  child_die(STDOUT_FILENO, "cannot execute phasekit-sandbox\n", 127);
}

/// Starts the supervisor with its stdin/stdout on pipes, in its own process group, killed if we die;
/// with `namespaced`, as PID 1 of new pid, mount, network, IPC and UTS namespaces (and a user
/// namespace when we are not root), in the backend's cgroup.
///
/// Not fork(): after a fork every page this process writes faults once (copy-on-write, a TLB
/// shootdown across CPUs), and under the phase-2 load those faults were a third of the orchestrator's
/// CPU (perf, bench/phase2_acquisition.sh). As posix_spawn does, the child shares our memory (CLONE_VM)
/// and this thread waits until it has called exec (CLONE_VFORK), with every signal blocked so that no
/// handler of ours runs in the child.
Spawned spawn(const std::vector<std::string>& args, bool namespaced, int nice, const CgroupHandles* cgroup) {
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
  const bool userns = namespaced && ::geteuid() != 0;
  int flags = CLONE_VM | CLONE_VFORK | SIGCHLD;
  if (namespaced && !userns) {
    flags |= CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
  }
  // Not root: the supervisor makes its user namespace, then the others, itself (--userns). The child
  // of this clone shares our memory, which is not dumpable, so its /proc/self/uid_map belongs to root
  // and it could not map its own namespace.
  // The child's stack: execve and the namespace set-up run on it.
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
  const ChildArgs child{argv[0],
                        argv.data(),
                        envp,
                        namespaced && !userns,
                        cgroup != nullptr ? cgroup->procs.data() : nullptr,
                        cgroup != nullptr ? cgroup->procs.size() : 0,
                        cgroup != nullptr ? cgroup->pids_events : -1,
                        cgroup != nullptr ? cgroup->memory_events : -1,
                        nice,
                        ::getpid(),
                        in_pipe[0],
                        out_pipe[1],
                        &old};
  const pid_t pid = ::clone(child_main, static_cast<char*>(stack) + kStackBytes, flags, const_cast<ChildArgs*>(&child));
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
  // The supervisor is PID 1 of its namespace (its death takes every process in it) or, plain, the
  // subreaper of every process its shell left; its group goes too.
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

/// The supervisor's stdin and stdout pipes; close() kills it and reaps it.
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

std::vector<std::string> supervisor_argv(const ProcessOptions& o, const std::string& supervisor,
                                         const std::string& workspace, const CgroupHandles* cgroup,
                                         bool memory_by_cgroup) {
  const bool namespaced = o.sandbox == SandboxKind::namespaces;
  std::vector<std::string> argv{supervisor, namespaced ? "namespaces" : "plain", "--workspace=" + workspace,
                                "--workspace-root=" + o.workspace_root};
  if (namespaced && ::geteuid() != 0) {
    argv.emplace_back("--userns");
  } else if (o.run_as_uid >= 0) {
    argv.push_back(fmt::format("--uid={}", o.run_as_uid));
    argv.push_back(fmt::format("--gid={}", o.run_as_gid));
  }
  argv.push_back(fmt::format("--tmpfs-bytes={}", std::max<std::uint64_t>(o.limits.tmpfs_bytes, 4096)));
  argv.push_back(fmt::format("--file-bytes={}", o.limits.file_bytes));
  argv.push_back(fmt::format("--open-files={}", o.limits.open_files));
  if (!memory_by_cgroup && o.limits.memory_bytes > 0) {
    argv.push_back(fmt::format("--address-space-bytes={}", o.limits.memory_bytes));
  }
  // In its own user namespace a sandbox's processes are counted apart from every other's (Linux 5.14+).
  if (namespaced && ::geteuid() != 0 && (cgroup == nullptr || cgroup->pids_events < 0) && o.limits.processes > 0) {
    argv.push_back(fmt::format("--processes={}", o.limits.processes));
  }
  if (!o.direct_spawn) {
    argv.emplace_back("--through-shell");
  }
  if (cgroup != nullptr && cgroup->pids_events >= 0) {
    argv.emplace_back("--pids-events-fd=3");
  }
  if (cgroup != nullptr && cgroup->memory_events >= 0) {
    argv.emplace_back("--memory-events-fd=4");
  }
  return argv;
}

}  // namespace

std::string_view sandbox_name(SandboxKind kind) noexcept {
  switch (kind) {
    case SandboxKind::namespaces: return "namespaces";
    case SandboxKind::none: return "none";
  }
  return "none";
}

std::string find_supervisor() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::vector<std::filesystem::path> candidates;
  if (!ec) {
    candidates.push_back(exe.parent_path() / "phasekit-sandbox");
    candidates.push_back(exe.parent_path().parent_path() / "libexec" / "phasekit" / "phasekit-sandbox");
  }
#ifdef PHASEKIT_SANDBOX_BUILD_PATH
  candidates.emplace_back(PHASEKIT_SANDBOX_BUILD_PATH);
#endif
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) {
      return c.string();
    }
  }
  throw std::runtime_error(fmt::format("phasekit-sandbox not found beside {} (nor in ../libexec/phasekit)",
                                       exe.string()));
}

ProcessBackend::ProcessBackend(boost::asio::any_io_executor executor, std::string id, std::string workspace)
    : ShellBackend(boost::asio::make_strand(std::move(executor)), std::move(id), std::move(workspace)) {}

void ProcessBackend::start(const ProcessOptions& options, const Cgroups* cgroups, std::function<void(Status)> done) {
  auto fail = [&](const Status& s) { boost::asio::post(strand(), [done = std::move(done), s] { done(s); }); };
  if (cgroups != nullptr) {
    if (Status made = cgroups->create(std::string(id()), cgroup_); !made.ok()) {
      cgroups->remove(cgroup_);
      fail(made);
      return;
    }
  }
  const CgroupHandles* cgroup = cgroups != nullptr ? &cgroup_ : nullptr;
  const std::vector<std::string> argv = supervisor_argv(options, options.supervisor, workspace(), cgroup,
                                                        cgroups != nullptr && cgroups->limits_memory());
  Spawned child;
  try {
    child = spawn(argv, options.sandbox == SandboxKind::namespaces, options.nice, cgroup);
  } catch (const std::exception& e) {
    cgroup_.close_fds();
    fail(Status(Code::unavailable, std::string("cannot start backend: ") + e.what()));
    return;
  }
  cgroup_.close_fds();  // the sandbox holds what it needs; the folders stay known for removal
  pid_ = child.pid;
  ShellBackend::start(std::make_unique<PipeChannel>(strand(), child), std::move(done));
}

ProcessDriver::ProcessDriver(boost::asio::any_io_executor executor, ProcessOptions options, Logger& log)
    : executor_(std::move(executor)), options_(std::move(options)), log_(log), tag_(random_tag()) {
  // Writing to a backend that just died must be an error code, not a process-killing SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  if (options_.supervisor.empty()) {
    options_.supervisor = find_supervisor();
  }
  prepare_workspace_root(options_.workspace_root);
  if (options_.sandbox == SandboxKind::namespaces) {
    // Only this process and the sandboxes' root supervisors reach the workspaces (each sandbox sees its
    // own through a mount): no other account of this host may enter, or run what a user left there.
    ::chmod(options_.workspace_root.c_str(), 0700);
  } else if (options_.run_as_uid >= 0) {
    // Plain processes as another user: every folder above their workspaces must let it through.
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
  const BackendLimits& l = options_.limits;
  if (options_.use_cgroups) {
    cgroups_ = Cgroups::open_here(l, limits_.why_no_cgroups);
  } else {
    limits_.why_no_cgroups = "cgroups not used (configuration)";
  }
  const std::string by = cgroups_ ? std::string(cgroups_->mechanism()) : "rlimit";
  limits_.mechanism = by;
  limits_.memory_bytes = l.memory_bytes;
  limits_.memory_by = l.memory_bytes == 0 ? "none" : cgroups_ && cgroups_->limits_memory() ? by : "rlimit-as";
  limits_.processes = l.processes;
  limits_.processes_by = l.processes == 0                               ? "none"
                         : cgroups_ && cgroups_->limits_processes()     ? by
                         : options_.sandbox == SandboxKind::namespaces && ::geteuid() != 0 ? "rlimit-nproc"
                                                                        : "none";
  limits_.cpus = l.cpus;
  limits_.cpu_by = l.cpus == 0 ? "none" : cgroups_ && cgroups_->limits_cpu() ? by : "none";
  limits_.cpu_weight = cgroups_ && cgroups_->limits_cpu() ? nice_weight(l.nice) : 0;
  limits_.tmpfs_bytes = options_.sandbox == SandboxKind::namespaces ? l.tmpfs_bytes : 0;
  limits_.file_bytes = l.file_bytes;
  limits_.open_files = l.open_files;
  limits_.workspace_by = "none";
  {
    LiveTags& live = live_tags();
    const std::lock_guard lock(live.mutex);
    live.tags.insert(tag_);
  }
  if (l.workspace_bytes > 0) {
    // What a killed predecessor left mounted goes first; then a trial mount says whether we can.
    if (const std::size_t swept = sweep_stale_workspaces(options_.workspace_root, &live_driver_names); swept > 0) {
      log_.info("backend.stale_workspaces_removed", {{"count", swept}});
    }
    limits_.why_unbounded = can_bound_workspaces(options_.workspace_root);
    if (limits_.why_unbounded.empty()) {
      limits_.workspace_bytes = l.workspace_bytes;
      limits_.workspace_by = "tmpfs";
    }
  }
  limits_.user_namespaces = false;  // the shell's seccomp filter refuses them in every mode
}

ProcessDriver::~ProcessDriver() {
  remover_.join();
  LiveTags& live = live_tags();
  const std::lock_guard lock(live.mutex);
  live.tags.erase(tag_);
}

void ProcessDriver::create(std::function<void(Status, plugin::BackendPtr)> done) noexcept {
  const std::string id = fmt::format("p{}-{}-{}", ::getpid(), tag_, next_.fetch_add(1));
  std::string ws;
  // Namespaced as root, the supervisor (root) hands the shell its user; the workspace is the shell's.
  if (Status made = make_workspace(options_.workspace_root, id, options_.run_as_uid, options_.run_as_gid, ws);
      !made.ok()) {
    boost::asio::post(executor_, [done = std::move(done), made = std::move(made)] { done(made, nullptr); });
    return;
  }
  if (limits_.workspace_bytes > 0) {
    if (Status bounded = bound_workspace(ws, limits_.workspace_bytes, options_.run_as_uid, options_.run_as_gid);
        !bounded.ok()) {
      std::error_code ignored;
      std::filesystem::remove_all(ws, ignored);
      boost::asio::post(executor_, [done = std::move(done), bounded = std::move(bounded)] { done(bounded, nullptr); });
      return;
    }
  }
  auto backend = std::make_shared<ProcessBackend>(executor_, id, ws);
  backend->start(options_, cgroups_.get(), [backend, done = std::move(done), this](Status status) mutable {
    if (!status.ok()) {
      log_.warn("backend.start_failed", {{"backend", backend->id()}, {"error", status.message()}});
      backend->stop();
      destroy(backend, [done = std::move(done), status = std::move(status)]() mutable {
        done(std::move(status), nullptr);
      });
      return;
    }
    done(Status(), std::move(backend));
  });
}

void ProcessDriver::destroy(plugin::BackendPtr backend, std::function<void()> done) noexcept {
  auto process = std::static_pointer_cast<ProcessBackend>(backend);
  auto finish = [this, process, done = std::move(done)](Status) mutable {
    process->stop();
    // stop() runs on the backend's strand (it kills and reaps the supervisor, and with it a namespaced
    // sandbox); the cgroup and workspace go once it has.
    process->ping([this, process, done = std::move(done)](Status) mutable {
      remove_cgroup(process, 0, std::move(done));
    });
  };
  if (options_.sandbox == SandboxKind::none && process->alive()) {
    // No PID namespace: killing the supervisor would leave what the shell started running. Its reset
    // kills every descendant first.
    process->reset(std::move(finish));
  } else {
    finish(Status());
  }
}

void ProcessDriver::remove_cgroup(ProcessBackendPtr backend, int attempt, std::function<void()> done) {
  // The sandbox's last processes take a moment to leave its cgroup after their PID 1 died.
  if (cgroups_ && !cgroups_->remove(backend->cgroup()) && attempt < kCgroupAttempts) {
    auto timer = std::make_shared<boost::asio::steady_timer>(executor_, kCgroupRetry);
    timer->async_wait([this, timer, backend, attempt, done = std::move(done)](boost::system::error_code) mutable {
      remove_cgroup(std::move(backend), attempt + 1, std::move(done));
    });
    return;
  }
  if (attempt >= kCgroupAttempts) {
    log_.warn("backend.cgroup_left", {{"backend", backend->id()}});
  }
  // A workspace may hold any number of files: removed on a thread of its own, never on the event loop.
  boost::asio::post(remover_, [workspace = backend->workspace(), bounded = limits_.workspace_bytes > 0] {
    if (bounded) {
      unbound_workspace(workspace);
    }
    std::error_code ignored;
    std::filesystem::remove_all(workspace, ignored);
  });
  done();
}

void verify_sandbox(const ProcessOptions& options, Logger& log) {
  if (options.sandbox == SandboxKind::none) {
    log.warn("sandbox.none", {{"detail", "SANDBOX=none: backends run as plain processes, with no isolation from "
                                         "the host or from each other; for development only"}});
    return;
  }
  // One real sandbox, up to its READY, then gone.
  const std::string supervisor = options.supervisor.empty() ? find_supervisor() : options.supervisor;
  prepare_workspace_root(options.workspace_root);
  std::string ws;
  // Random too: another process on the same volume may verify at the same moment, with the same PID.
  const std::string name = fmt::format(".verify-{}-{}", ::getpid(), random_tag());
  if (Status made = make_workspace(options.workspace_root, name, options.run_as_uid, options.run_as_gid, ws);
      !made.ok()) {
    throw std::runtime_error(made.message());
  }
  Spawned s;
  try {
    std::vector<std::string> argv = supervisor_argv(options, supervisor, ws, nullptr, false);
    argv.emplace_back("--check");  // a shell too, up to its first report
    s = spawn(argv, true, 0, nullptr);
  } catch (const std::exception& e) {
    std::filesystem::remove_all(ws);
    throw std::runtime_error(std::string("SANDBOX=namespaces: ") + e.what());
  }
  std::string got;
  wire::FrameReader reader;
  wire::FrameType type{};
  std::string_view payload;
  std::string problem = "no answer from phasekit-sandbox in 10 s";
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::array<char, 4096> buf{};
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{s.out, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) {
      continue;
    }
    const ssize_t n = ::read(s.out, buf.data(), buf.size());
    if (n <= 0) {
      problem = "phasekit-sandbox exited before it was ready";
      break;
    }
    reader.feed(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    const auto r = reader.next(type, payload);
    if (r == wire::FrameReader::Result::need_more) {
      continue;
    }
    problem = r == wire::FrameReader::Result::error ? "phasekit-sandbox spoke out of protocol"
              : type == wire::FrameType::ready      ? ""
              : type == wire::FrameType::fatal      ? std::string(payload)
                                                    : "unexpected first frame";
    break;
  }
  ::close(s.in);
  ::close(s.out);
  kill_and_reap(s.pid);
  std::error_code ignored;
  std::filesystem::remove_all(ws, ignored);
  if (!problem.empty()) {
    throw std::runtime_error(fmt::format(
        "SANDBOX=namespaces: cannot make a sandbox here: {} (the process backend needs root, or unprivileged "
        "user namespaces; SANDBOX=none runs backends without isolation, for development only)",
        problem));
  }
  log.info("sandbox.ready", {{"sandbox", "namespaces"}, {"supervisor", supervisor}});
}

}  // namespace phasekit::backend
