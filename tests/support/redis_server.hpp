#pragma once
// A real redis-server for tests: started on a free loopback port (and a unix socket) in its own temporary
// directory, waited for with a deadline (TCP connect + PING), stopped by PID (SIGTERM, then SIGKILL after
// a deadline, then waitpid). Nothing is persisted (--save '' --appendonly no).
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace phasekit::test {

class RedisServer {
 public:
  static constexpr const char* kBinary = "/usr/bin/redis-server";
  /// Whether redis-server is installed (tests skip with a clear message when not).
  static bool available();

  /// Starts the server; extra_args are appended (e.g. {"--requirepass", "pw"}). Throws std::runtime_error
  /// (with the server's log) when it does not answer within the deadline.
  explicit RedisServer(std::vector<std::string> extra_args = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool running() const noexcept { return pid_ > 0; }
  [[nodiscard]] const std::string& unix_socket() const noexcept { return socket_path_; }
  [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  /// The server's own log (stdout/stderr).
  [[nodiscard]] std::string log() const;
  /// What /usr/bin/redis-cli prints for `args` against this server (its stdout).
  [[nodiscard]] std::string cli(const std::vector<std::string>& args) const;

  /// SIGTERM, SIGKILL after `grace`, waitpid.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  /// SIGKILL at once (a crash), waitpid.
  void kill();
  /// Starts again on the same port (after stop() or kill()), waiting until it answers.
  void restart();

 private:
  void spawn();
  void wait_ready(std::chrono::milliseconds deadline);

  std::vector<std::string> extra_args_;
  std::string dir_;
  std::string socket_path_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
int free_loopback_port();

/// Waits for child `pid` to exit (waitpid, polled) until `deadline`; true when it was reaped.
bool reap_child(pid_t pid, std::chrono::milliseconds deadline);

}  // namespace phasekit::test
