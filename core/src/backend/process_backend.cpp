#include "backend/process_backend.hpp"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <vector>

#include "backend/supervisor_script.hpp"

namespace phasekit::backend {
namespace {

constexpr std::chrono::seconds kWatchdogSlack{5};
constexpr std::chrono::seconds kStartTimeout{10};

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

}  // namespace

std::string_view sandbox_name(SandboxKind kind) noexcept {
  switch (kind) {
    case SandboxKind::bwrap: return "bwrap";
    case SandboxKind::unshare: return "unshare";
    case SandboxKind::none: return "none";
  }
  return "none";
}

struct ProcessBackend::Request {
  enum class Kind { run, ping, reset, stop } kind = Kind::run;
  std::string id;
  std::string command;
  std::chrono::milliseconds timeout{0};
  std::size_t max_output = 0;
  OutputChunk on_chunk;
  RunDone on_run;
  std::function<void(Status)> on_simple;
  std::string new_nonce;
  RunResult result;
  std::chrono::steady_clock::time_point started;
  std::unique_ptr<boost::asio::steady_timer> watchdog;
};

ProcessBackend::ProcessBackend(boost::asio::any_io_executor executor, std::string id, std::string workspace)
    : strand_(boost::asio::make_strand(std::move(executor))),
      id_(std::move(id)),
      workspace_(std::move(workspace)),
      nonce_(make_nonce()),
      in_(strand_),
      out_(strand_) {}

ProcessBackend::~ProcessBackend() {
  boost::system::error_code ignored;
  in_.close(ignored);
  out_.close(ignored);
  kill_and_reap(pid_);
}

std::string ProcessBackend::make_nonce() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

void ProcessBackend::start(const ProcessOptions& options, std::function<void(Status)> done) {
  std::vector<std::string> argv = sandbox_argv(options.sandbox, options.workspace_root, workspace_);
  Spawned child;
  try {
    child = spawn(argv, workspace_, options.run_as_uid, options.run_as_gid);
  } catch (const std::exception& e) {
    boost::asio::post(strand_, [done = std::move(done), what = std::string(e.what())] {
      done(Status(Code::unavailable, "cannot start backend: " + what));
    });
    return;
  }
  pid_ = child.pid;
  in_.assign(child.in);
  out_.assign(child.out);
  alive_ = true;
  boost::asio::post(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
    self->on_ready_ = std::move(done);
    // The nonce goes first, on stdin, so it never appears in the sandbox's command lines.
    auto line = std::make_shared<std::string>(self->nonce_ + "\n");
    boost::asio::async_write(self->in_, boost::asio::buffer(*line),
                             [self, line](boost::system::error_code, std::size_t) {});
    auto timer = std::make_shared<boost::asio::steady_timer>(self->strand_, kStartTimeout);
    timer->async_wait([self, timer](boost::system::error_code ec) {
      if (!ec && self->on_ready_) {
        self->fail_all(Status(Code::unavailable, "backend did not become ready in time"));
      }
    });
    self->read_loop();
  });
}

void ProcessBackend::run(std::string command, std::chrono::milliseconds timeout, std::size_t max_output,
                         OutputChunk on_chunk, RunDone done) {
  if (command.find('\0') != std::string::npos) {
    boost::asio::post(strand_, [done = std::move(done)] {
      done(Status(Code::bad_request, "a command line cannot contain a NUL byte"), RunResult{});
    });
    return;
  }
  auto r = std::make_shared<Request>();
  r->kind = Request::Kind::run;
  r->command = std::move(command);
  r->timeout = timeout;
  r->max_output = max_output;
  r->on_chunk = std::move(on_chunk);
  r->on_run = std::move(done);
  boost::asio::post(strand_, [self = shared_from_this(), r] {
    self->queue_.push_back(r);
    self->send_next();
  });
}

void ProcessBackend::reset(std::function<void(Status)> done) {
  auto r = std::make_shared<Request>();
  r->kind = Request::Kind::reset;
  r->on_simple = std::move(done);
  r->timeout = std::chrono::seconds(10);
  boost::asio::post(strand_, [self = shared_from_this(), r] {
    self->queue_.push_back(r);
    self->send_next();
  });
}

void ProcessBackend::ping(std::function<void(Status)> done) {
  auto r = std::make_shared<Request>();
  r->kind = Request::Kind::ping;
  r->on_simple = std::move(done);
  r->timeout = std::chrono::seconds(5);
  boost::asio::post(strand_, [self = shared_from_this(), r] {
    self->queue_.push_back(r);
    self->send_next();
  });
}

void ProcessBackend::stop() {
  boost::asio::post(strand_, [self = shared_from_this()] {
    self->fail_all(Status(Code::unavailable, "backend stopped"));
  });
}

void ProcessBackend::send_next() {
  if (current_ || queue_.empty() || on_ready_) {
    return;
  }
  if (!alive_) {
    fail_all(Status(Code::unavailable, "backend is not running"));
    return;
  }
  current_ = queue_.front();
  queue_.pop_front();
  Request& r = *current_;
  r.id = std::to_string(next_id_++);
  r.started = std::chrono::steady_clock::now();
  auto message = std::make_shared<std::string>();
  switch (r.kind) {
    case Request::Kind::run:
      *message = fmt::format("RUN {} {} {}\n{}", r.id, r.timeout.count(), r.command.size(), r.command);
      break;
    case Request::Kind::ping: *message = fmt::format("PING {} 0 0\n", r.id); break;
    case Request::Kind::reset:
      r.new_nonce = make_nonce();
      *message = fmt::format("RESET {} {} 0\n", r.id, r.new_nonce);
      break;
    case Request::Kind::stop: break;
  }
  // The supervisor enforces the command's timeout; this watchdog only catches a wedged supervisor.
  r.watchdog = std::make_unique<boost::asio::steady_timer>(strand_, r.timeout + kWatchdogSlack);
  r.watchdog->async_wait([self = shared_from_this(), req = current_](boost::system::error_code ec) {
    if (!ec && self->current_ == req) {
      self->fail_all(Status(Code::timeout, "backend stopped answering"));
    }
  });
  boost::asio::async_write(in_, boost::asio::buffer(*message),
                           [self = shared_from_this(), message](boost::system::error_code ec, std::size_t) {
                             if (ec) {
                               self->fail_all(Status(Code::unavailable, "backend closed its input: " + ec.message()));
                             }
                           });
}

void ProcessBackend::read_loop() {
  read_buffer_.resize(16384);
  out_.async_read_some(boost::asio::buffer(read_buffer_),
                       [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                         if (ec) {
                           // Whatever it printed last says why (bwrap and bash errors go to this pipe).
                           std::string last = self->pending_.substr(0, 300);
                           std::replace(last.begin(), last.end(), '\n', ' ');
                           self->fail_all(Status(Code::unavailable,
                                                 last.empty() ? "backend exited" : "backend exited: " + last));
                           return;
                         }
                         self->on_output(std::string_view(self->read_buffer_.data(), n));
                         if (self->alive_) {
                           self->read_loop();
                         }
                       });
}

void ProcessBackend::on_output(std::string_view bytes) {
  pending_.append(bytes);
  for (;;) {
    const std::string marker = "\x1e" + nonce_ + " ";
    const auto at = pending_.find(marker);
    const std::size_t plain = at == std::string::npos
                                  ? (pending_.size() > marker.size() ? pending_.size() - (marker.size() - 1) : 0)
                                  : at;
    if (plain > 0 && current_ && current_->kind == Request::Kind::run) {
      RunResult& res = current_->result;
      const std::string_view chunk(pending_.data(), plain);
      res.output_bytes += chunk.size();
      const std::size_t room = current_->max_output > res.output.size() ? current_->max_output - res.output.size() : 0;
      const std::string_view kept = chunk.substr(0, std::min(room, chunk.size()));
      if (kept.size() < chunk.size()) {
        res.truncated = true;
      }
      if (!kept.empty()) {
        res.output.append(kept);
        if (current_->on_chunk) {
          current_->on_chunk(kept);
        }
      }
    }
    pending_.erase(0, plain);
    if (at == std::string::npos) {
      return;
    }
    const auto eol = pending_.find('\n', marker.size());
    if (eol == std::string::npos) {
      return;  // the rest of the reply is still on its way
    }
    const std::string line = pending_.substr(marker.size(), eol - marker.size());
    pending_.erase(0, eol + 1);
    const auto s1 = line.find(' ');
    const auto s2 = line.find(' ', s1 == std::string::npos ? s1 : s1 + 1);
    if (s1 == std::string::npos || s2 == std::string::npos) {
      continue;
    }
    on_reply(std::string_view(line).substr(0, s1), std::string_view(line).substr(s1 + 1, s2 - s1 - 1),
             std::string_view(line).substr(s2 + 1));
  }
}

void ProcessBackend::on_reply(std::string_view verb, std::string_view id, std::string_view value) {
  if (verb == "READY") {
    if (auto done = std::exchange(on_ready_, nullptr)) {
      done(Status());
    }
    send_next();
    return;
  }
  if (!current_ || id != current_->id) {
    return;
  }
  auto r = std::exchange(current_, nullptr);
  r->watchdog->cancel();
  if (verb == "DONE" && r->kind == Request::Kind::run) {
    int code = -1;
    std::from_chars(value.data(), value.data() + value.size(), code);
    r->result.exit_code = code;
    r->result.duration = std::chrono::steady_clock::now() - r->started;
    r->result.timed_out = (code == 124 || code == 137) && r->result.duration >= r->timeout;
    r->on_run(Status(), std::move(r->result));
  } else if (verb == "RESET" && r->kind == Request::Kind::reset) {
    nonce_ = r->new_nonce;
    r->on_simple(Status());
  } else if (verb == "PONG" && r->kind == Request::Kind::ping) {
    r->on_simple(Status());
  } else {
    fail_all(Status(Code::internal, fmt::format("unexpected backend reply {}", verb)));
    return;
  }
  send_next();
}

void ProcessBackend::fail_all(const Status& status) {
  const bool was_alive = alive_.exchange(false);
  if (was_alive) {
    boost::system::error_code ignored;
    in_.close(ignored);
    out_.close(ignored);
    kill_and_reap(std::exchange(pid_, -1));
  }
  if (auto ready = std::exchange(on_ready_, nullptr)) {
    ready(status);
  }
  auto fail = [&status](const std::shared_ptr<Request>& r) {
    if (r->watchdog) {
      r->watchdog->cancel();
    }
    if (r->on_run) {
      r->on_run(status, std::move(r->result));
    } else if (r->on_simple) {
      r->on_simple(status);
    }
  };
  if (auto r = std::exchange(current_, nullptr)) {
    fail(r);
  }
  while (!queue_.empty()) {
    auto r = queue_.front();
    queue_.pop_front();
    fail(r);
  }
}

ProcessDriver::ProcessDriver(boost::asio::any_io_executor executor, ProcessOptions options, Logger& log)
    : executor_(std::move(executor)), options_(std::move(options)), log_(log) {
  // Writing to a backend that just died must be an error code, not a process-killing SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  std::error_code ec;
  std::filesystem::create_directories(options_.workspace_root, ec);
  if (ec) {
    throw std::runtime_error(fmt::format("WORKSPACE_ROOT={}: cannot create it: {}", options_.workspace_root,
                                         ec.message()));
  }
  ::chmod(options_.workspace_root.c_str(), 0711);
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
  const std::string ws = (std::filesystem::path(options_.workspace_root) / id).string();
  std::error_code ec;
  std::filesystem::remove_all(ws, ec);
  if (::mkdir(ws.c_str(), 0700) != 0 ||
      (options_.run_as_uid >= 0 && ::chown(ws.c_str(), static_cast<uid_t>(options_.run_as_uid),
                                           static_cast<gid_t>(options_.run_as_gid)) != 0)) {
    const std::string why = std::strerror(errno);
    boost::asio::post(executor_, [done = std::move(done), why, ws] {
      done(Status(Code::unavailable, fmt::format("cannot create workspace {}: {}", ws, why)), nullptr);
    });
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

void ProcessDriver::reset(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept {
  std::static_pointer_cast<ProcessBackend>(backend)->reset(std::move(done));
}

void ProcessDriver::check(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept {
  std::static_pointer_cast<ProcessBackend>(backend)->ping(std::move(done));
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
