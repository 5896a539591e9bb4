#include "support/postgres_server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "support/redis_server.hpp"  // free_loopback_port, reap_child

namespace phasekit::test {
namespace {

using Clock = std::chrono::steady_clock;

/// Starts `args` as uid/gid with stdout and stderr appended to `log`; the child's pid.
pid_t spawn_as(const std::vector<std::string>& args, uid_t uid, gid_t gid, const std::string& log) {
  std::vector<char*> argv;
  std::vector<std::string> copy = args;
  for (auto& a : copy) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(), "open " + log);
  }
  if (::fchown(fd, uid, gid) != 0 && ::geteuid() == 0) {
    ::close(fd);
    throw std::system_error(errno, std::generic_category(), "fchown " + log);
  }
  char* const env[] = {const_cast<char*>("LC_ALL=C"), const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    throw std::system_error(errno, std::generic_category(), "fork");
  }
  if (pid == 0) {  // only async-signal-safe calls until exec
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, STDIN_FILENO);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    if (::geteuid() == 0 && (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)) {
      ::_exit(126);
    }
    ::execve(argv[0], argv.data(), env);
    ::_exit(127);
  }
  ::close(fd);
  return pid;
}

/// PQping against the server: true once it accepts connections.
/// Asked on the server's own unix socket, in its own folder (`-k`): an answer comes from our server and
/// no other (a TCP port picked free can be taken by another test's server before ours binds it).
/// PostgreSQL binds its one TCP address before it accepts anything, or exits, so an answer also means
/// it holds its port.
bool accepts(const std::string& socket_dir, int port) {
  const std::string conninfo =
      "host=" + socket_dir + " port=" + std::to_string(port) + " user=phasekit dbname=postgres connect_timeout=1";
  return PQping(conninfo.c_str()) == PQPING_OK;
}

}  // namespace

bool PostgresServer::available() {
  return ::access((std::string(kBinDir) + "/initdb").c_str(), X_OK) == 0 &&
         ::access((std::string(kBinDir) + "/postgres").c_str(), X_OK) == 0;
}

PostgresServer::PostgresServer() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "phasekit-postgres-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp");
  }
  dir_ = tmpl;
  uid_ = ::geteuid();
  gid_ = ::getegid();
  if (uid_ == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      std::filesystem::remove_all(dir_);
      throw std::runtime_error("running as root and there is no `postgres` user to run PostgreSQL as");
    }
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    if (::chown(dir_.c_str(), uid_, gid_) != 0) {
      throw std::system_error(errno, std::generic_category(), "chown " + dir_);
    }
  }
  const pid_t initdb = spawn_as({std::string(kBinDir) + "/initdb", "-D", dir_ + "/data", "-U", "phasekit",
                                 "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"},
                                uid_, gid_, dir_ + "/initdb.log");
  int status = 0;
  if (::waitpid(initdb, &status, 0) != initdb || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ifstream in(dir_ + "/initdb.log");
    std::ostringstream text;
    text << in.rdbuf();
    std::filesystem::remove_all(dir_);
    throw std::runtime_error("initdb failed:\n" + text.str());
  }
  std::string last_error;
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = free_loopback_port();
    try {
      spawn();
      wait_ready(std::chrono::seconds(20));
      return;
    } catch (const std::exception& e) {
      last_error = e.what();
      kill();
    }
  }
  std::filesystem::remove_all(dir_);
  throw std::runtime_error("postgres did not start: " + last_error);
}

PostgresServer::~PostgresServer() {
  stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string PostgresServer::url(const std::string& database) const {
  return "postgres://phasekit@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

PostgresSession::PostgresSession(int port, const std::string& database) {
  const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port) + " user=phasekit dbname=" + database;
  conn_ = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn_) != CONNECTION_OK) {
    const std::string why = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
    PQfinish(conn_);
    throw std::runtime_error("postgres: " + why);
  }
}

PostgresSession::~PostgresSession() { PQfinish(conn_); }

PostgresSession::PostgresSession(PostgresSession&& other) noexcept : conn_(std::exchange(other.conn_, nullptr)) {}

void PostgresSession::sql(const std::string& statement) {
  std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(conn_, statement.c_str()), &PQclear);
  const ExecStatusType st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    throw std::runtime_error(std::string("postgres: ") + PQresultErrorMessage(r.get()));
  }
}

void PostgresServer::sql(const std::string& statement, const std::string& database) const {
  session(database).sql(statement);
}

PostgresSession PostgresServer::session(const std::string& database) const { return {port_, database}; }

void PostgresServer::create_database(const std::string& name) const { sql("CREATE DATABASE \"" + name + "\""); }

void PostgresServer::spawn() {
  pid_ = spawn_as({std::string(kBinDir) + "/postgres", "-D", dir_ + "/data", "-k", dir_, "-p", std::to_string(port_),
                   "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off", "-c",
                   "max_connections=200", "-c", "shared_buffers=16MB"},
                  uid_, gid_, dir_ + "/postgres.log");
}

void PostgresServer::wait_ready(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("postgres exited at start; its log:\n" + log());
    }
    if (accepts(dir_, port_)) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a condition, with a deadline
  }
  throw std::runtime_error("postgres did not accept connections within " + std::to_string(deadline.count()) +
                           " ms; its log:\n" + log());
}

std::string PostgresServer::log() const {
  std::ifstream in(dir_ + "/postgres.log");
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void PostgresServer::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGINT);
  if (!reap_child(pid_, grace)) {
    ::kill(pid_, SIGKILL);
    reap_child(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
}

void PostgresServer::kill() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGKILL);
  reap_child(pid_, std::chrono::seconds(10));
  pid_ = -1;
  // A postmaster killed outright leaves its children and shared memory behind for a moment; the next
  // start waits for them (postmaster.pid names the dead one, which the new one sees is gone).
}

void PostgresServer::restart() {
  stop();
  spawn();
  wait_ready(std::chrono::seconds(20));
}

}  // namespace phasekit::test
