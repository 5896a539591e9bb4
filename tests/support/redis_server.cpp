#include "support/redis_server.hpp"

#include "support/run_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace phasekit::test {
namespace {

using Clock = std::chrono::steady_clock;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

/// One connect + PING with short socket timeouts; true when the server answers like Redis (+PONG, or
/// -NOAUTH when it requires a password). Asked on the server's own unix socket, in its own folder:
/// an answer comes from our redis-server and no other (a TCP port picked free can be taken by another
/// test's server before ours binds it). redis binds every listener before it serves, so an answer
/// also means it holds its port.
bool answers_ping(const std::string& socket_path) {
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.fd < 0) {
    return false;
  }
  timeval tv{0, 200000};
  ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return false;
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return false;
  }
  constexpr std::string_view ping = "*1\r\n$4\r\nPING\r\n";
  if (::send(s.fd, ping.data(), ping.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(ping.size())) {
    return false;
  }
  char buf[64] = {};
  const ssize_t n = ::recv(s.fd, buf, sizeof buf - 1, 0);
  if (n <= 0) {
    return false;
  }
  const std::string_view got(buf, static_cast<std::size_t>(n));
  return got.starts_with("+PONG") || got.starts_with("-NOAUTH");
}

}  // namespace

bool reap_child(pid_t pid, std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      return true;
    }
    if (Clock::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a condition, with a deadline
  }
}

bool RedisServer::available() { return ::access(kBinary, X_OK) == 0; }

int free_loopback_port() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.fd < 0) {
    throw std::system_error(errno, std::generic_category(), "socket");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::system_error(errno, std::generic_category(), "bind");
  }
  socklen_t len = sizeof addr;
  ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

RedisServer::RedisServer(std::vector<std::string> extra_args) : extra_args_(std::move(extra_args)) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "phasekit-redis-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp");
  }
  dir_ = tmpl;
  socket_path_ = dir_ + "/redis.sock";
  // A port picked by bind(0) can be taken by someone else before redis binds it: try a few.
  std::string last_error;
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = free_loopback_port();
    try {
      spawn();
      wait_ready(std::chrono::seconds(10));
      return;
    } catch (const std::exception& e) {
      last_error = e.what();
      kill();
    }
  }
  std::filesystem::remove_all(dir_);
  throw std::runtime_error("redis-server did not start: " + last_error);
}

RedisServer::~RedisServer() {
  stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void RedisServer::spawn() {
  std::vector<std::string> args{kBinary,       "--port",         std::to_string(port_), "--bind", "127.0.0.1",
                                "--save",      "",               "--appendonly",        "no",     "--daemonize",
                                "no",          "--dir",          dir_,                  "--unixsocket", socket_path_,
                                "--unixsocketperm", "700",       "--logfile",           "",       "--protected-mode",
                                "no"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log_path = dir_ + "/redis.log";
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, kBinary, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::system_error(rc, std::generic_category(), "posix_spawn redis-server");
  }
  pid_ = pid;
}

void RedisServer::wait_ready(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited at start; its log:\n" + log());
    }
    if (answers_ping(socket_path_)) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a condition, with a deadline
  }
  throw std::runtime_error("redis-server did not answer PING within " + std::to_string(deadline.count()) +
                           " ms; its log:\n" + log());
}

std::string RedisServer::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> all{"-p", std::to_string(port_)};
  all.insert(all.end(), args.begin(), args.end());
  return run_process("/usr/bin/redis-cli", all, {{"PATH", "/usr/bin:/bin"}}).out;
}

std::string RedisServer::log() const {
  std::ifstream in(dir_ + "/redis.log");
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void RedisServer::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGTERM);
  if (!reap_child(pid_, grace)) {
    ::kill(pid_, SIGKILL);
    reap_child(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
}

void RedisServer::kill() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGKILL);
  reap_child(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

void RedisServer::restart() {
  stop();
  spawn();
  wait_ready(std::chrono::seconds(10));
}

}  // namespace phasekit::test
