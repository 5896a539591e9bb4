#include "backend_fixtures.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "backend/process_backend.hpp"

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
  options.sandbox = backend::detect_sandbox("auto", log);
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

}  // namespace

std::string_view backend_name(BackendKind kind) noexcept { return kind == BackendKind::docker ? "docker" : "process"; }

BackendEnv make_backend_env(BackendKind kind, boost::asio::any_io_executor executor, Logger& log) {
  if (kind == BackendKind::process) {
    return process_env(std::move(executor), log);
  }
  BackendEnv env;
  env.skip_reason = "docker driver: not built yet";
  return env;
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

}  // namespace phasekit::test
