#include "supervisor.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>
#include <vector>

#include "phasekit/backend/shell_quote.hpp"
#include "confine.hpp"
#include "phasekit/sandbox/direct.hpp"
#include "filesystem.hpp"

namespace phasekit::sandbox {
namespace {

using backend::wire::FrameType;
namespace wire = backend::wire;

// The session's shell. It runs every command at the top level (never inside a function), so `cd`,
// exports, functions, aliases and `declare` carry over as at a terminal prompt. fd 3 brings a line per
// command (the command is in $__phk_d/cmd); fd 4 takes back, first when the shell is up and then
// after each command: status NUL cwd NUL `declare -px` NUL `declare -f; alias -p` NUL `$-`, `umask`,
// `trap -p` and `hash -l`, a line each NUL (the last field is read by direct.hpp only). A command runs
// with fds 3 and 4 closed (bash keeps its copies close-on-exec), so what it starts cannot reach them.
// Every command of the loop itself goes through `builtin` (its user may define functions called
// `printf` or `:`; the restore file never defines one called `builtin`).
constexpr std::string_view kShellLoop = R"(__phk_d=$1
builtin shift
builtin exec </dev/null
builtin shopt -s expand_aliases
if [[ -r $__phk_d/restore ]]; then builtin . "$__phk_d/restore" >/dev/null 2>&1 3<&- 4>&-; fi
__phk_s=ready
while builtin true; do
  { builtin printf '%s\0%s\0' "$__phk_s" "$PWD"; builtin declare -px; builtin printf '\0'; builtin declare -f; builtin alias -p; builtin printf '\0%s\n' "$-"; builtin umask; builtin trap -p; builtin hash -l; builtin printf '\0'; } >&4 2>/dev/null
  IFS= builtin read -r -u 3 __phk_t || builtin exit 0
  builtin . "$__phk_d/cmd" 3<&- 4>&-
  __phk_s=$?
  { builtin set +x; } 2>/dev/null
done
)";

constexpr std::size_t kMaxStatusBytes = 4u << 20;  // a report larger than this breaks the shell's state
constexpr std::size_t kDrainBytes = 4u << 20;      // output read at the end of a call, at most
constexpr std::chrono::milliseconds kLimitCheck{50};
constexpr std::chrono::seconds kShellStart{10};
constexpr std::chrono::seconds kKillDeadline{5};

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      ::_exit(0);  // the host is gone: nothing left to serve
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

/// `declare -f; alias -p` output without the function named `builtin` (bash prints each function from
/// a line `name () ` to a line `}` at the margin, and `declare -fx name` after it when exported): the
/// loop needs the real builtin to run at all.
std::string without_builtin_function(std::string_view text) {
  std::string out;
  bool skipping = false;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t eol = std::min(text.find('\n', at), text.size());
    const std::string_view line = text.substr(at, eol - at);
    at = eol + 1;
    if (!skipping && (line == "builtin () " || line == "builtin ()")) {
      skipping = true;
      continue;
    }
    if (skipping) {
      skipping = line != "}";
      continue;
    }
    if (line == "declare -fx builtin") {
      continue;
    }
    out.append(line);
    out.push_back('\n');
  }
  return out;
}

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

int exit_code_of(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return WEXITSTATUS(wait_status);
  }
  if (WIFSIGNALED(wait_status)) {
    return 128 + WTERMSIG(wait_status);
  }
  return -1;
}

/// This process's children, read from /proc (as a subreaper, every orphan of the sandbox is one).
std::vector<pid_t> children_of(pid_t self) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return out;
  }
  while (const dirent* e = ::readdir(proc)) {
    pid_t pid = 0;
    const std::string_view name = e->d_name;
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc() || pid <= 0) {
      continue;
    }
    const std::string path = "/proc/" + std::string(name) + "/stat";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    std::array<char, 512> buf{};
    const ssize_t n = ::read(fd, buf.data(), buf.size() - 1);
    ::close(fd);
    if (n <= 0) {
      continue;
    }
    // "pid (comm) state ppid ...": comm may hold anything, so parse from its last ')'.
    const std::string_view stat(buf.data(), static_cast<std::size_t>(n));
    const auto close = stat.rfind(')');
    if (close == std::string_view::npos || close + 4 >= stat.size()) {
      continue;
    }
    const std::string_view rest = stat.substr(close + 4);  // ") S " then ppid
    pid_t ppid = 0;
    std::from_chars(rest.data(), rest.data() + rest.size(), ppid);
    if (ppid == self) {
      out.push_back(pid);
    }
  }
  ::closedir(proc);
  return out;
}

/// A file of /proc, read whole (up to 8 KiB; the kernel makes each in one read or a few).
std::string read_small_file(const std::string& path) {
  std::string text;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return text;
  }
  std::array<char, 8192> buf{};
  std::size_t have = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data() + have, buf.size() - have);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0 || (have += static_cast<std::size_t>(n)) == buf.size()) {
      break;
    }
  }
  ::close(fd);
  return text.assign(buf.data(), have);
}

}  // namespace

std::uint64_t read_counter(int fd, std::string_view key) {
  if (fd < 0) {
    return 0;
  }
  std::array<char, 512> buf{};
  const ssize_t n = ::pread(fd, buf.data(), buf.size() - 1, 0);
  if (n <= 0) {
    return 0;
  }
  const std::string_view text(buf.data(), static_cast<std::size_t>(n));
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t eol = std::min(text.find('\n', at), text.size());
    const std::string_view line = text.substr(at, eol - at);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      std::uint64_t v = 0;
      const std::string_view digits = line.substr(key.size() + 1);
      std::from_chars(digits.data(), digits.data() + digits.size(), v);
      return v;
    }
    at = eol + 1;
  }
  return 0;
}

Supervisor::Supervisor(Options options, std::string state_dir, int state_fd)
    : o_(std::move(options)), state_dir_(std::move(state_dir)), state_fd_(state_fd), buffer_(65536) {}

void Supervisor::send(FrameType type, std::string_view payload) {
  std::string frame;
  frame.reserve(wire::kHeaderBytes + payload.size());
  wire::append_frame(frame, type, payload);
  write_all(STDOUT_FILENO, frame);
}

void Supervisor::fatal(const std::string& why) {
  send(FrameType::fatal, why);
  if (shell_ > 0) {
    kill_all();
  }
  ::_exit(1);
}

std::string Supervisor::write_file(const char* name, std::string_view content) {
  const int fd = ::openat(state_fd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    return std::string("cannot write ") + name + ": " + std::strerror(errno);
  }
  write_all(fd, content);
  ::close(fd);
  return {};
}

int Supervisor::run() {
  pid_one_ = ::getpid() == 1;
  last_capability_ = last_capability();
  if (state_fd_ < 0) {
    state_fd_ = ::open(state_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  if (state_fd_ < 0) {
    fatal("cannot open " + state_dir_ + ": " + std::strerror(errno));
  }
  sigset_t chld;
  ::sigemptyset(&chld);
  ::sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  signal_fd_ = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) {
    fatal(std::string("signalfd: ") + std::strerror(errno));
  }
  ::signal(SIGPIPE, SIG_IGN);
  // The filter every shell runs under, installed once here and inherited (building it per shell cost
  // a BPF compilation each time). no_new_privs first, as seccomp requires without CAP_SYS_ADMIN; the
  // supervisor never execs anything but the shell, which drops its privileges itself.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    fatal(std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno));
  }
  if (std::string e = install_seccomp(); !e.empty()) {
    fatal(e);
  }
  // The session's shell starts with its first command (a backend may serve file tools only, or wait
  // idle in a pool); --check starts one now and waits for it, to prove this machine can run one.
  if (o_.check_shell) {
    if (std::string e = spawn_shell(); !e.empty()) {
      fatal(e);
    }
    if (std::string e = wait_ready(); !e.empty()) {
      fatal(e);
    }
  }
  send(FrameType::ready, o_.mode == Mode::namespaces ? "namespaces" : o_.mode == Mode::container ? "container" : "plain");
  serve_host();
  kill_all();
  return 0;
}

void Supervisor::serve_host() {
  char* const buf = buffer_.data();
  while (host_open_) {
    int timeout = -1;
    const auto now = Clock::now();
    if (running_) {
      const auto until = std::min(deadline_, next_check_);
      timeout = static_cast<int>(std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1));
    }
    std::array<pollfd, 5> fds{};
    fds[0] = {STDIN_FILENO, POLLIN, 0};
    fds[1] = {signal_fd_, POLLIN, 0};
    fds[2] = {out_fd_, POLLIN, 0};
    fds[3] = {status_fd_, POLLIN, 0};
    fds[4] = {direct_out_, POLLIN, 0};
    if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      fatal(std::string("poll: ") + std::strerror(errno));
    }
    // Output first, then the report that ends a call, then deaths: each sees what came before it.
    if (fds[2].revents != 0) {
      read_output(out_fd_, false);
    }
    if (fds[4].revents != 0) {
      read_output(direct_out_, false);
    }
    if (fds[3].revents != 0) {
      read_status();
    }
    if (fds[1].revents != 0) {
      signalfd_siginfo info{};
      while (::read(signal_fd_, &info, sizeof info) > 0) {
      }
      reap();
    }
    if (running_) {
      if (Clock::now() >= deadline_) {
        if (std::string e = kill_all(); !e.empty()) {
          fatal(e);
        }
        end_in_restart(124, wire::kTimedOut);
      } else if (Clock::now() >= next_check_) {
        if (const std::uint32_t hit = limits_hit(); hit != 0) {
          // A fork bomb or a runaway allocation: nothing of it may go on. Everything in the sandbox dies.
          if (std::string e = kill_all(); !e.empty()) {
            fatal(e);
          }
          end_in_restart(137, hit);
        }
      }
    }
    if (fds[0].revents != 0) {
      const ssize_t n = ::read(STDIN_FILENO, buf, buffer_.size());
      if (n <= 0) {
        if (n < 0 && errno == EINTR) {
          continue;
        }
        host_open_ = false;
        break;
      }
      host_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
      FrameType type{};
      std::string_view payload;
      for (;;) {
        const auto r = host_.next(type, payload);
        if (r == wire::FrameReader::Result::error) {
          fatal("bad request from the host: " + host_.error());
        }
        if (r == wire::FrameReader::Result::need_more) {
          break;
        }
        on_frame(type, payload);
      }
    }
  }
}

void Supervisor::on_frame(FrameType type, std::string_view payload) {
  switch (type) {
    case FrameType::run: {
      wire::RunRequest request;
      if (running_ || !wire::decode_run(payload, request)) {
        fatal("malformed or overlapping RUN");
      }
      start_run(std::move(request));
      return;
    }
    case FrameType::reset:
      if (running_) {
        fatal("RESET during a RUN");
      }
      reset();
      return;
    case FrameType::ping:
      send(FrameType::pong, {});
      return;
    default: fatal("unexpected frame " + std::string(wire::type_name(type)));
  }
}

std::string Supervisor::spawn_shell() {
  std::string restore;
  if (saved_) {
    restore = saved_exports_ + "\n" + without_builtin_function(saved_functions_) + "\nbuiltin cd -- " + backend::single_quoted(saved_cwd_) +
              " 2>/dev/null || builtin cd -- \"$HOME\"\n";
    if (std::string e = write_file("restore", restore); !e.empty()) {
      return e;
    }
  } else {
    ::unlinkat(state_fd_, "restore", 0);
  }
  std::array<int, 2> cmd{};
  std::array<int, 2> out{};
  std::array<int, 2> status{};
  if (::pipe2(cmd.data(), O_CLOEXEC) != 0 || ::pipe2(out.data(), O_CLOEXEC) != 0 ||
      ::pipe2(status.data(), O_CLOEXEC) != 0) {
    return std::string("pipe2: ") + std::strerror(errno);
  }
  const std::string home = "HOME=" + o_.workspace;
  const std::string loop(kShellLoop);
  const pid_t pid = ::fork();
  if (pid < 0) {
    return std::string("fork: ") + std::strerror(errno);
  }
  if (pid == 0) {
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGXFSZ, SIG_IGN);  // a write past the file-size limit fails with EFBIG and says so
    ::setsid();
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    // Move everything above the five descriptors the shell gets before dup2 can clobber it.
    const int o = ::fcntl(out[1], F_DUPFD_CLOEXEC, 10);
    const int c = ::fcntl(cmd[0], F_DUPFD_CLOEXEC, 10);
    const int s = ::fcntl(status[1], F_DUPFD_CLOEXEC, 10);
    if (null < 0 || o < 0 || c < 0 || s < 0 || ::dup2(null, 0) < 0 || ::dup2(o, 1) < 0 || ::dup2(o, 2) < 0 ||
        ::dup2(c, 3) < 0 || ::dup2(s, 4) < 0) {
      ::_exit(125);
    }
    ::syscall(SYS_close_range, 5U, ~0U, 0U);
    // (The seccomp filter is the supervisor's own since start: inherited, not built again.)
    std::string e = apply_rlimits(o_);
    if (e.empty()) {
      e = drop_privileges(o_, last_capability_);
    }
    if (e.empty() && ::chdir(o_.workspace.c_str()) != 0) {
      e = std::string("chdir ") + o_.workspace + ": " + std::strerror(errno);
    }
    if (e.empty()) {
      const char* argv[] = {"bash", "--noprofile", "--norc", "-c", loop.c_str(), "phasekit", state_dir_.c_str(),
                            nullptr};
      // C.utf8 is the locale's own name: C.UTF-8 costs a failed lookup per category (a millisecond).
      const char* envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", home.c_str(), "LANG=C.utf8", "TERM=dumb",
                            nullptr};
      // Debian's bash-static where installed: the same bash, started in two thirds of the time (no
      // dynamic linking), which every session pays once.
      const char* shell = ::access("/bin/bash-static", X_OK) == 0 ? "/bin/bash-static" : "/bin/bash";
      ::execve(shell, const_cast<char* const*>(argv), const_cast<char* const*>(envp));
      e = std::string("exec ") + shell + ": " + std::strerror(errno);
    }
    e = "cannot start the shell: " + e + "\n";
    (void)!::write(2, e.data(), e.size());
    ::_exit(126);
  }
  ::close(cmd[0]);
  ::close(out[1]);
  ::close(status[1]);
  shell_ = pid;
  phase_ = ShellPhase::starting;
  cmd_fd_ = cmd[1];
  out_fd_ = out[0];
  status_fd_ = status[0];
  ::fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  ::fcntl(status_fd_, F_SETFL, O_NONBLOCK);
  status_buffer_.clear();
  startup_output_.clear();
  return {};
}

std::string Supervisor::wait_ready() {
  const auto until = Clock::now() + kShellStart;
  while (phase_ == ShellPhase::starting && Clock::now() < until) {
    std::array<pollfd, 3> fds{};
    fds[0] = {status_fd_, POLLIN, 0};
    fds[1] = {out_fd_, POLLIN, 0};
    fds[2] = {signal_fd_, POLLIN, 0};
    ::poll(fds.data(), fds.size(), 100);
    if (fds[1].revents != 0) {
      read_output(out_fd_, false);
    }
    if (fds[0].revents != 0) {
      read_status();
    }
    if (fds[2].revents != 0) {
      signalfd_siginfo info{};
      while (::read(signal_fd_, &info, sizeof info) > 0) {
      }
      if (shell_ > 0 && ::waitpid(shell_, nullptr, WNOHANG) == shell_) {
        shell_ = -1;
        std::string why = startup_output_.substr(0, 300);
        std::replace(why.begin(), why.end(), '\n', ' ');
        return why.empty() ? "the shell exited as it started" : why;
      }
    }
  }
  return phase_ == ShellPhase::ready ? std::string() : "the shell did not start in time";
}

void Supervisor::close_shell() {
  close_fd(cmd_fd_);
  close_fd(out_fd_);
  close_fd(status_fd_);
  status_buffer_.clear();
  phase_ = ShellPhase::none;
  shell_ = -1;
}

void Supervisor::read_output(int& fd, bool drain) {
  char* const buf = buffer_.data();
  std::size_t drained = 0;
  while (fd >= 0) {
    const ssize_t n = ::read(fd, buf, buffer_.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (n == 0) {
        close_fd(fd);  // every writer is gone (a killed shell or program): nothing more will come
      }
      return;
    }
    const std::string_view bytes(buf, static_cast<std::size_t>(n));
    if (!running_ && phase_ == ShellPhase::starting) {
      startup_output_.append(bytes.substr(0, 4096 - std::min<std::size_t>(4096, startup_output_.size())));
    } else if (running_) {
      output_bytes_ += bytes.size();
      const std::uint64_t room = request_.max_output > output_sent_ ? request_.max_output - output_sent_ : 0;
      const std::size_t keep = static_cast<std::size_t>(std::min<std::uint64_t>(room, bytes.size()));
      if (keep < bytes.size()) {
        truncated_ = true;
      }
      if (keep > 0) {
        send(FrameType::output, bytes.substr(0, keep));
        output_sent_ += keep;
      }
    }
    // Between calls, what background processes print goes nowhere.
    drained += bytes.size();
    if (!drain || drained >= kDrainBytes) {
      return;
    }
  }
}

void Supervisor::read_status() {
  char* const buf = buffer_.data();
  for (;;) {
    const ssize_t n = ::read(status_fd_, buf, buffer_.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (n == 0) {
        close_fd(status_fd_);
      }
      break;
    }
    status_buffer_.append(buf, static_cast<std::size_t>(n));
    if (status_buffer_.size() > kMaxStatusBytes) {
      // Not a report the loop writes: the shell (its user) wrote it. Its state cannot be trusted.
      if (std::string e = kill_all(); !e.empty()) {
        fatal(e);
      }
      if (running_) {
        end_in_restart(-1, 0);
      } else {
        close_shell();
      }
      return;
    }
  }
  // Complete reports: five NUL-terminated fields each.
  constexpr std::size_t kFields = 5;
  for (;;) {
    std::size_t at = 0;
    for (std::size_t n = 0; n < kFields && at != std::string::npos; ++n) {
      const std::size_t nul = status_buffer_.find('\0', at);
      at = nul == std::string::npos ? nul : nul + 1;
    }
    if (at == std::string::npos) {
      return;
    }
    const std::string message = status_buffer_.substr(0, at);
    status_buffer_.erase(0, at);
    std::array<std::string_view, kFields> field{};
    std::size_t pos = 0;
    for (auto& f : field) {
      const std::size_t nul = message.find('\0', pos);
      f = std::string_view(message).substr(pos, nul - pos);
      pos = nul + 1;
    }
    on_shell_message(field[0], field[1], field[2], field[3], field[4]);
  }
}

void Supervisor::on_shell_message(std::string_view status, std::string_view cwd, std::string_view exports,
                                  std::string_view functions, std::string_view settings) {
  int code = -1;
  const bool numeric = std::from_chars(status.data(), status.data() + status.size(), code).ec == std::errc() &&
                       code >= 0 && code <= 255;
  if (phase_ == ShellPhase::starting) {
    // A new shell is up (restored, when there was a state to restore). A call may already wait for it.
    if (status == "ready") {
      phase_ = ShellPhase::ready;
      save(cwd, exports, functions, settings);
    }
    return;
  }
  if (!running_ || !numeric) {
    return;  // not a report of the loop's (a command wrote to a copy of its pipe): ignored
  }
  save(cwd, exports, functions, settings);
  finish(code, limits_hit());  // it ended anyway; a limit it ran into says why it may have failed
}

void Supervisor::save(std::string_view cwd, std::string_view exports, std::string_view functions,
                      std::string_view settings) {
  saved_cwd_.assign(cwd);
  saved_exports_.assign(exports);
  saved_functions_.assign(functions);
  saved_settings_.assign(settings);
  saved_ = true;
  view_current_ = false;
}

void Supervisor::reap() {
  for (;;) {
    int wstatus = 0;
    const pid_t pid = ::waitpid(-1, &wstatus, WNOHANG);
    if (pid <= 0) {
      return;
    }
    if (pid == direct_) {
      // The program ended: all it wrote is in its pipe (what its own children write later is dropped).
      direct_ = -1;
      read_output(direct_out_, true);
      close_fd(direct_out_);
      if (running_) {
        finish(exit_code_of(wstatus), wire::kDirect | limits_hit());
      }
      continue;
    }
    if (pid != shell_) {
      continue;  // a command's orphan, adopted by us
    }
    if (phase_ == ShellPhase::starting) {
      read_output(out_fd_, true);
      std::string why = startup_output_.substr(0, 300);
      std::replace(why.begin(), why.end(), '\n', ' ');
      fatal("the shell exited as it started: " + (why.empty() ? std::to_string(exit_code_of(wstatus)) : why));
    }
    // The shell itself ended: what it printed last is still in the pipes. (A program started without
    // it that killed it ends like a command that did: everything goes, the call says so.)
    read_output(out_fd_, true);
    read_output(direct_out_, true);
    read_status();
    const bool was_running = running_;
    close_shell();
    if (std::string e = kill_all(); !e.empty()) {
      fatal(e);
    }
    close_fd(direct_out_);
    if (was_running) {
      // The kernel's OOM killer may have taken the shell itself.
      finish(exit_code_of(wstatus), wire::kShellRestarted | limits_hit());
    }
    return;  // the next command starts a shell restored from the last report
  }
}

void Supervisor::start_run(wire::RunRequest request) {
  request_ = std::move(request);
  running_ = true;
  output_bytes_ = 0;
  output_sent_ = 0;
  truncated_ = false;
  pids_refused_ = read_counter(o_.pids_events_fd, "max");
  oom_kills_ = read_counter(o_.memory_events_fd, "oom_kill");
  const auto now = Clock::now();
  deadline_ = now + std::chrono::milliseconds(request_.timeout_ms);
  next_check_ = now + kLimitCheck;
  if (start_direct()) {
    return;
  }
  if (shell_ < 0) {
    if (std::string e = spawn_shell(); !e.empty()) {
      fatal(e);
    }
  }
  if (std::string e = write_file("cmd", request_.command); !e.empty()) {
    fatal(e);
  }
  if (::write(cmd_fd_, "\n", 1) != 1) {
    // The shell is gone or closed its end: its death (reaped next) ends this call.
    return;
  }
}

std::string Supervisor::find_program(int cwd, const std::string& name) const {
  // As bash looks a command up (findcmd.c): a name with a slash is a path (from the cwd); otherwise
  // the first regular file with an execute bit in PATH's folders. A folder of "" or a relative one is
  // taken from the cwd, as bash does. Not found: the shell says so, in its words.
  auto executable = [cwd](const std::string& path) {
    struct stat st {};
    return ::fstatat(cwd, path.c_str(), &st, 0) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0;
  };
  if (name.find('/') != std::string::npos) {
    return executable(name) ? name : std::string();
  }
  if (const auto hashed = view_.hashed.find(name); hashed != view_.hashed.end()) {
    // bash runs what it remembered without searching again (shopt checkhash is off by default).
    return executable(hashed->second) ? hashed->second : std::string();
  }
  for (const std::string& dir : view_.path) {
    std::string path = dir.empty() ? name : dir + "/" + name;
    if (executable(path)) {
      return path;
    }
  }
  return {};
}

bool Supervisor::start_direct() {
  if (!o_.direct || phase_ != ShellPhase::ready || shell_ <= 0) {
    return false;  // the session's state is the shell's report: there must be one, current
  }
  std::vector<std::string> words;
  if (!plain_words(request_.command, words) || shell_word(words.front())) {
    return false;
  }
  if (!view_current_) {
    view_ = read_shell_view(saved_exports_, saved_functions_, saved_settings_);
    view_current_ = true;
  }
  if (!view_.usable || view_.shadows.contains(words.front())) {
    return false;
  }
  // The shell's own working directory, not $PWD: the folder may have been renamed or replaced since.
  const std::string proc = "/proc/" + std::to_string(shell_);
  const int cwd = ::open((proc + "/cwd").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cwd < 0) {
    return false;
  }
  std::string program = find_program(cwd, words.front());
  std::array<rlimit, RLIM_NLIMITS> limits{};
  bool ok = !program.empty() && parse_proc_limits(read_small_file(proc + "/limits"), limits);
  std::array<int, 2> out{-1, -1};
  const int null = ok ? ::open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;
  if (null < 0 || ::pipe2(out.data(), O_CLOEXEC) != 0) {
    ::close(cwd);
    if (null >= 0) {
      ::close(null);
    }
    return false;
  }
  // Everything the child needs is built here: between vfork and exec it makes system calls only.
  const std::string underscore = "_=" + program;
  std::vector<char*> argv;
  argv.reserve(words.size() + 1);
  for (std::string& w : words) {
    argv.push_back(w.data());
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(view_.environment.size() + 2);
  for (std::string& v : view_.environment) {
    if (v.compare(0, 2, "_=") != 0) {
      envp.push_back(v.data());
    }
  }
  envp.push_back(const_cast<char*>(underscore.c_str()));
  envp.push_back(nullptr);
  const mode_t mask = view_.umask;
  spawn_errno_ = 0;
  const pid_t pid = ::vfork();
  if (pid == 0) {
    // The child, sharing our memory until it execs: what the shell's child does before it execs a
    // program (bash's restore_original_signals, its descriptors), with the shell's limits and ours.
    sigset_t none;
    ::sigemptyset(&none);
    ::signal(SIGPIPE, SIG_DFL);
    for (const int sig : view_.ignored) {
      ::signal(sig, SIG_IGN);  // `trap '' SIG`, SIGXFSZ from the start: bash's programs inherit them
    }
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setsid();
    const int o = ::fcntl(out[1], F_DUPFD_CLOEXEC, 10);
    const int n = ::fcntl(null, F_DUPFD_CLOEXEC, 10);
    const int c = ::fcntl(cwd, F_DUPFD_CLOEXEC, 10);
    bool child_ok = o >= 0 && n >= 0 && c >= 0 && ::dup2(n, 0) == 0 && ::dup2(o, 1) == 1 && ::dup2(o, 2) == 2;
    for (int r = 0; child_ok && r < RLIM_NLIMITS; ++r) {
      child_ok = ::setrlimit(static_cast<__rlimit_resource>(r), &limits[static_cast<std::size_t>(r)]) == 0;
    }
    // (drop_privileges allocates only to say why it failed, and then the child exits: this process
    // has one thread, so the heap it shares is not in anyone's hands meanwhile.)
    child_ok = child_ok && drop_privileges(o_, last_capability_).empty() && ::fchdir(c) == 0;
    if (child_ok) {
      ::umask(mask);
      ::syscall(SYS_close_range, 3U, ~0U, 0U);
      ::execve(program.c_str(), argv.data(), envp.data());
    }
    spawn_errno_ = errno != 0 ? errno : EINVAL;
    ::_exit(127);
  }
  const int spawn_errno = spawn_errno_;
  ::close(cwd);
  ::close(null);
  ::close(out[1]);
  if (pid < 0 || spawn_errno != 0) {
    // Nothing ran: vfork failed, or the kernel would not exec the file (a script without #!, which
    // bash runs itself; a file it may not execute, which bash explains). The shell takes the call.
    ::close(out[0]);
    if (pid > 0) {
      ::waitpid(pid, nullptr, 0);
    }
    return false;
  }
  direct_ = pid;
  direct_out_ = out[0];
  ::fcntl(direct_out_, F_SETFL, O_NONBLOCK);
  return true;
}

void Supervisor::finish(int exit_code, std::uint32_t flags) {
  read_output(out_fd_, true);
  read_output(direct_out_, true);
  wire::RunDone done;
  done.exit_code = exit_code;
  done.flags = flags | (truncated_ ? std::uint32_t{wire::kTruncated} : 0U);
  done.output_bytes = output_bytes_;
  if (saved_ && (!sent_ || saved_cwd_ != sent_cwd_ || saved_exports_ != sent_exports_)) {
    done.flags |= wire::kState;
    done.cwd = saved_cwd_;
    done.exports = saved_exports_;
    sent_cwd_ = saved_cwd_;
    sent_exports_ = saved_exports_;
    sent_ = true;
  }
  running_ = false;
  send(FrameType::done, wire::encode_done(done));
}

void Supervisor::end_in_restart(int exit_code, std::uint32_t flags) {
  // Everything is dead by now (kill_all): read the output to its end, then start over.
  read_output(out_fd_, true);
  read_output(direct_out_, true);
  close_fd(direct_out_);
  close_shell();
  finish(exit_code, flags | wire::kShellRestarted);
  // The next command starts a shell restored from the last report.
}

std::uint32_t Supervisor::limits_hit() {
  next_check_ = Clock::now() + kLimitCheck;
  std::uint32_t hit = 0;
  if (read_counter(o_.pids_events_fd, "max") > pids_refused_) {
    hit |= wire::kProcessLimit;
  }
  if (read_counter(o_.memory_events_fd, "oom_kill") > oom_kills_) {
    hit |= wire::kMemoryLimit;
  }
  return hit;
}

std::string Supervisor::kill_all() {
  const auto until = Clock::now() + kKillDeadline;
  const pid_t self = ::getpid();
  for (;;) {
    if (pid_one_) {
      // PID 1 of the sandbox's namespace: -1 is every other process in it, and none outside.
      ::kill(-1, SIGKILL);
    } else {
      // No namespace: as the subreaper, every process the shell left behind is our child.
      for (const pid_t child : children_of(self)) {
        ::kill(child, SIGKILL);
      }
    }
    int wstatus = 0;
    pid_t pid = 0;
    while ((pid = ::waitpid(-1, &wstatus, WNOHANG)) > 0) {
      if (pid == shell_) {
        shell_ = -1;
      }
      if (pid == direct_) {
        direct_ = -1;
      }
    }
    if (pid < 0 && errno == ECHILD) {
      shell_ = -1;
      direct_ = -1;
      return {};
    }
    if (Clock::now() >= until) {
      return "processes of the sandbox would not die";
    }
    pollfd p{signal_fd_, POLLIN, 0};
    ::poll(&p, 1, 5);
    signalfd_siginfo info{};
    while (::read(signal_fd_, &info, sizeof info) > 0) {
    }
  }
}

void Supervisor::reset() {
  if (std::string e = kill_all(); !e.empty()) {
    fatal(e);
  }
  close_shell();
  close_fd(direct_out_);
  if (std::string e = refresh_scratch(o_); !e.empty()) {
    fatal("reset: " + e);
  }
  if (std::string e = wipe_contents(o_.workspace); !e.empty()) {
    fatal("reset: cannot empty the workspace: " + e);
  }
  if (std::string e = reset_workspace_mode(o_.workspace); !e.empty()) {
    fatal("reset: " + e);
  }
  if (o_.mode == Mode::container) {
    // The folder went with /run (its last user could write there, and swap it for one of its own).
    close_fd(state_fd_);
    if (::mkdir(state_dir_.c_str(), 0755) != 0 && errno != EEXIST) {
      fatal("reset: cannot make " + state_dir_ + ": " + std::strerror(errno));
    }
    state_fd_ = ::open(state_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (state_fd_ < 0) {
      fatal("reset: cannot open " + state_dir_ + ": " + std::strerror(errno));
    }
  }
  saved_ = false;
  saved_cwd_.clear();
  saved_exports_.clear();
  saved_functions_.clear();
  saved_settings_.clear();
  view_current_ = false;
  sent_ = false;
  // The next user's shell starts with its first command: a backend that only serves file tools (a
  // worker's write_file job) never pays for one.
  send(FrameType::reset_done, {});
}

}  // namespace phasekit::sandbox
