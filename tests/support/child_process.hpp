#pragma once
// A program started in the background for a test (a worker, an orchestrator), its output in a file,
// stopped by its pid: SIGTERM, then SIGKILL after a deadline, then waitpid. The destructor stops it.
#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace phasekit::test {

class ChildProcess {
 public:
  /// env: the child's whole environment. stdout and stderr go to log_path. Throws std::runtime_error.
  ChildProcess(const std::string& program, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env, std::string log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool running();
  [[nodiscard]] std::string log() const;
  /// Sends `signal` (SIGKILL: a crash); with wait, reaps it (SIGKILL after `grace` if it lingers).
  /// Returns the exit status as waitpid gives it; for a child that had already exited (running()
  /// said so), the status it exited with, and no signal is sent.
  int stop(int signal, std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  pid_t pid_ = -1;
  int status_ = -1;  // waitpid's status once reaped
  std::string log_path_;
};

/// Polls pred every 20 ms until it holds or the deadline passes; returns whether it held.
template <class Pred>
bool poll_until(Pred pred, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) {
      return false;
    }
    struct timespec ts{0, 20'000'000};
    nanosleep(&ts, nullptr);
  }
  return true;
}

}  // namespace phasekit::test
