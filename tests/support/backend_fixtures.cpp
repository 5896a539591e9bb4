#include "backend_fixtures.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>

#include "phasekit/backend/docker_backend.hpp"
#include "phasekit/backend/process_backend.hpp"
#include "support/run_process.hpp"

namespace phasekit::test {
namespace {

std::string fresh_dir(std::string_view prefix) {
  static std::atomic<int> counter{0};
  const auto dir = std::filesystem::temp_directory_path() /
                   (std::string(prefix) + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

BackendEnv process_env(boost::asio::any_io_executor executor, Logger& log) {
  BackendEnv env;
  backend::ProcessOptions options;
  options.workspace_root = fresh_dir("phasekit-ws-");
  options.sandbox = backend::SandboxKind::namespaces;
  options.limits = test_limits();
  if (::geteuid() == 0) {
    options.run_as_uid = 65534;
    options.run_as_gid = 65534;
  }
  env.driver = std::make_unique<backend::ProcessDriver>(std::move(executor), options, log);
  env.kill_from_outside = [](const plugin::BackendPtr& b) {
    const int pid = std::static_pointer_cast<backend::ProcessBackend>(b)->pid();
    if (pid > 0) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
  };
  env.teardown = [root = options.workspace_root] {
    std::error_code ignored;
    std::filesystem::remove_all(root, ignored);
  };
  return env;
}

/// One dockerd per test process, on private paths, without bridge or iptables changes; started on
/// first use, stopped by its PID when the process exits. Its image is imported from a tarball of
/// busybox-static (tests/support/busybox_rootfs.sh), never pulled.
class Dockerd {
 public:
  static Dockerd& instance() {
    static Dockerd d;
    return d;
  }
  Dockerd(const Dockerd&) = delete;
  Dockerd& operator=(const Dockerd&) = delete;

  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] const std::string& socket() const { return socket_; }
  static constexpr const char* kImage = "phasekit-test-busybox:local";

 private:
  Dockerd() {
    if (::geteuid() != 0) {
      error_ = "dockerd needs root here";
      return;
    }
    if (!std::filesystem::exists("/usr/sbin/dockerd") || !std::filesystem::exists("/usr/bin/docker")) {
      error_ = "dockerd is not installed (apt-get install docker.io; scripts/setup.sh does)";
      return;
    }
    dir_ = fresh_dir("phasekit-dockerd-");
    socket_ = dir_ + "/docker.sock";
    const std::string log = dir_ + "/dockerd.log";
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) {
        ::_exit(127);
      }
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      const std::string host = "unix://" + socket_;
      const std::string data = dir_ + "/data";
      const std::string exec = dir_ + "/exec";
      const std::string pidfile = dir_ + "/dockerd.pid";
      ::execl("/usr/sbin/dockerd", "dockerd", "--host", host.c_str(), "--data-root", data.c_str(), "--exec-root",
              exec.c_str(), "--pidfile", pidfile.c_str(), "--default-ulimit", "nofile=1024:1024", "--bridge=none",
              "--iptables=false", "--ip-forward=false", nullptr);
      ::_exit(127);
    }
    const auto docker = [this](std::vector<std::string> args, std::chrono::seconds deadline) {
      args.insert(args.begin(), {"-H", "unix://" + socket_});
      return run_process("/usr/bin/docker", args, {{"PATH", "/usr/bin:/bin:/usr/sbin:/sbin"}}, deadline);
    };
    const bool up = wait_until(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return true;  // exited: nothing more to wait for
          }
          return docker({"version"}, std::chrono::seconds(5)).exit_code == 0;
        },
        std::chrono::seconds(60));
    if (!up || pid_ < 0) {
      std::ifstream in(log);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      error_ = "dockerd could not start: " + text.substr(text.size() > 600 ? text.size() - 600 : 0);
      stop();
      return;
    }
    const std::string tar = dir_ + "/rootfs.tar";
    const auto made = run_process("/bin/bash", {std::string(PHASEKIT_TESTS_DIR) + "/support/busybox_rootfs.sh", tar},
                                  {{"PATH", "/usr/bin:/bin"}}, std::chrono::seconds(60));
    // An entry point and a HEALTHCHECK of its own, as many images have (the phasekit image has the
    // latter): a backend must run neither.
    const auto imported =
        made.exit_code == 0
            ? docker({"import", "--change", "ENTRYPOINT [\"/bin/false\"]", "--change",
                      "HEALTHCHECK --interval=1s --timeout=1s CMD [\"/bin/true\"]", tar, kImage},
                     std::chrono::seconds(60))
            : made;
    if (imported.exit_code != 0) {
      error_ = "cannot build the busybox image: " + imported.err;
      stop();
    }
  }

  ~Dockerd() { stop(); }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      const bool gone = wait_until([&] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_; }, std::chrono::seconds(20));
      if (!gone) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      }
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

  std::string dir_;
  std::string socket_;
  std::string error_;
  pid_t pid_ = -1;
};

BackendEnv docker_env(boost::asio::any_io_executor executor, Logger& log) {
  BackendEnv env;
  Dockerd& daemon = Dockerd::instance();
  if (!daemon.error().empty()) {
    env.skip_reason = daemon.error();
    return env;
  }
  backend::DockerOptions options;
  options.socket_path = daemon.socket();
  options.image = Dockerd::kImage;
  options.workspace_root = fresh_dir("phasekit-ws-");
  options.limits = test_limits();
  options.nano_cpus = 1'000'000'000;
  options.supervisor = backend::find_supervisor();
  options.run_as_uid = 65534;
  options.run_as_gid = 65534;
  auto driver = std::make_unique<backend::DockerDriver>(std::move(executor), options, log);
  env.kill_from_outside = [d = driver.get()](const plugin::BackendPtr& b) {
    auto done = std::make_shared<std::promise<void>>();
    d->call("POST", "/v1.41/containers/" + std::string(b->id()) + "/kill", "",
            [done](Status, unsigned, std::string) { done->set_value(); });
    done->get_future().wait_for(std::chrono::seconds(30));
  };
  env.inspect = [d = driver.get()](const plugin::BackendPtr& b) {
    auto body = std::make_shared<std::promise<std::string>>();
    d->call("GET", "/v1.41/containers/" + std::string(b->id()) + "/json", "",
            [body](Status, unsigned, std::string text) { body->set_value(std::move(text)); });
    auto got = body->get_future();
    return got.wait_for(std::chrono::seconds(30)) == std::future_status::ready ? got.get() : std::string();
  };
  env.driver = std::move(driver);
  env.teardown = [root = options.workspace_root] {
    std::error_code ignored;
    std::filesystem::remove_all(root, ignored);
  };
  return env;
}

}  // namespace

backend::BackendLimits test_limits() {
  backend::BackendLimits l;
  l.memory_bytes = 256u << 20;
  l.processes = 128;
  l.cpus = 1;
  l.nice = 0;
  l.tmpfs_bytes = 16u << 20;
  l.file_bytes = 64u << 20;
  l.open_files = 256;
  return l;
}

std::string_view backend_name(BackendKind kind) noexcept { return kind == BackendKind::docker ? "docker" : "process"; }

BackendEnv make_backend_env(BackendKind kind, boost::asio::any_io_executor executor, Logger& log) {
  return kind == BackendKind::process ? process_env(std::move(executor), log) : docker_env(std::move(executor), log);
}

void CountingDriver::create(std::function<void(Status, plugin::BackendPtr)> done) noexcept {
  inner_.create([this, done = std::move(done)](Status s, plugin::BackendPtr b) {
    if (s.ok() && b) {
      const auto now = ++live_;
      auto seen = max_live_.load();
      while (now > seen && !max_live_.compare_exchange_weak(seen, now)) {
      }
    }
    done(std::move(s), std::move(b));
  });
}

void CountingDriver::destroy(plugin::BackendPtr backend, std::function<void()> done) noexcept {
  inner_.destroy(std::move(backend), [this, done = std::move(done)] {
    --live_;
    done();
  });
}

namespace {

/// The whole of a /proc file, or nullopt when it cannot be read (the process is gone). Not an
/// ifstream: libstdc++'s filebuf throws from underflow when read(2) fails, whatever the stream's mask.
std::optional<std::string> read_proc_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) {
      break;
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace

int count_processes(const std::vector<std::string>& argv) {
  std::string want;
  for (const auto& a : argv) {
    want += a;
    want.push_back('\0');
  }
  int n = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const auto cmdline = read_proc_file(entry.path() / "cmdline");
    if (!cmdline || *cmdline != want) {
      continue;
    }
    const auto stat = read_proc_file(entry.path() / "stat");
    const auto close = stat ? stat->rfind(')') : std::string::npos;
    n += close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] != 'Z' ? 1 : 0;
  }
  return n;
}

std::string unique_on_host() {
  static std::atomic<int> calls{0};
  return std::to_string(::getpid()) + std::to_string(100 + calls.fetch_add(1) % 900);
}

}  // namespace phasekit::test
