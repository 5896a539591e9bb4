#pragma once
// Real backend drivers for tests and benchmarks: the process driver on this machine's sandbox, and
// the docker driver against a private dockerd the fixture starts (and stops by PID). Plus a driver
// decorator that counts live backends, wait_until for conditions with a deadline, and a count of the
// host's processes by command line.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "phasekit/backend/cgroups.hpp"
#include "phasekit/plugin/backend.hpp"
#include "phasekit/plugin/log.hpp"

namespace phasekit::test {

enum class BackendKind { process, docker };

/// The limits test backends run under: small enough that tests reach each one quickly (memory 256 MiB,
/// 128 processes, tmpfs 16 MiB, files 64 MiB, 256 open files, one CPU).
backend::BackendLimits test_limits();
std::string_view backend_name(BackendKind kind) noexcept;

struct BackendEnv {
  std::unique_ptr<plugin::BackendDriver> driver;
  std::string skip_reason;                                   // non-empty: this backend cannot run here
  std::function<void(const plugin::BackendPtr&)> kill_from_outside;  // as an operator or the OOM killer would
  std::function<std::string(const plugin::BackendPtr&)> inspect;    // docker: the container's JSON; else unset
  std::function<void()> teardown = [] {};                    // stops what make_backend_env started
};

/// A driver for `kind` with its workspaces under a fresh temporary folder. For docker: starts a
/// dockerd on private paths and imports a busybox-static image, or says why it cannot.
BackendEnv make_backend_env(BackendKind kind, boost::asio::any_io_executor executor, Logger& log);

/// Forwards to another driver and counts the backends alive (made and not yet destroyed).
class CountingDriver final : public plugin::BackendDriver {
 public:
  explicit CountingDriver(plugin::BackendDriver& inner) : inner_(inner) {}
  [[nodiscard]] std::string_view name() const noexcept override { return inner_.name(); }
  void create(std::function<void(Status, plugin::BackendPtr)> done) noexcept override;
  void reset(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept override {
    inner_.reset(std::move(backend), std::move(done));
  }
  void check(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept override {
    inner_.check(std::move(backend), std::move(done));
  }
  void destroy(plugin::BackendPtr backend, std::function<void()> done) noexcept override;
  [[nodiscard]] std::uint64_t live() const noexcept { return live_.load(); }
  [[nodiscard]] std::uint64_t max_live() const noexcept { return max_live_.load(); }

 private:
  plugin::BackendDriver& inner_;
  std::atomic<std::uint64_t> live_{0};
  std::atomic<std::uint64_t> max_live_{0};
};

/// Processes of this host (sandboxes' included) whose command line is exactly `argv`, zombies left
/// out. A process that exits while it is read is skipped (its /proc files fail with ESRCH).
int count_processes(const std::vector<std::string>& argv);

/// A number no other process of this host gets from this function: this process's pid followed by a
/// count of its calls here, so test processes running at once (ctest -j) never share one. For the
/// `sleep <n>` a test starts and then counts with count_processes.
std::string unique_on_host();

/// Polls pred every millisecond until it holds or the deadline passes; returns pred().
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!pred() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

}  // namespace phasekit::test
