#pragma once
// A real PostgreSQL 15 for tests: a cluster made with initdb in its own temporary folder, started on a
// free loopback port (and a unix socket in that folder), waited for with a deadline (PQping), stopped by
// PID (SIGINT: a fast shutdown; SIGKILL after a deadline; then waitpid). As root, both run as the
// `postgres` user (PostgreSQL refuses to run as root). fsync is off: nothing here outlives the test.
#include <sys/types.h>

#include <chrono>
#include <string>

struct pg_conn;

namespace phasekit::test {

/// One connection of the superuser, kept open: what it locks stays locked until it ends the
/// transaction or goes.
class PostgresSession {
 public:
  PostgresSession(int port, const std::string& database);
  ~PostgresSession();
  PostgresSession(PostgresSession&& other) noexcept;
  PostgresSession& operator=(PostgresSession&&) = delete;
  PostgresSession(const PostgresSession&) = delete;
  PostgresSession& operator=(const PostgresSession&) = delete;

  /// Runs SQL (several statements allowed); throws std::runtime_error with the server's message.
  void sql(const std::string& statement);

 private:
  pg_conn* conn_;
};

class PostgresServer {
 public:
  static constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";
  /// Whether initdb and postgres are installed (tests skip with a clear message when not).
  static bool available();

  /// initdb, then starts the server; throws std::runtime_error (with its log) when it does not answer.
  PostgresServer();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// postgres://phasekit@127.0.0.1:<port>/<database> (trust authentication on loopback).
  [[nodiscard]] std::string url(const std::string& database = "postgres") const;
  /// Runs SQL as the superuser on `database`; throws std::runtime_error with the server's message.
  void sql(const std::string& statement, const std::string& database = "postgres") const;
  /// A connection of the superuser to `database` that stays open (to hold a lock, say).
  [[nodiscard]] PostgresSession session(const std::string& database = "postgres") const;
  /// A new empty database, named `name`.
  void create_database(const std::string& name) const;
  [[nodiscard]] std::string log() const;

  /// SIGINT (fast shutdown), SIGKILL after `grace`, waitpid.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  /// SIGKILL at once (a crash), waitpid.
  void kill();
  /// Starts again on the same port and data, waiting until it answers.
  void restart();

 private:
  void spawn();
  void wait_ready(std::chrono::milliseconds deadline);

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  uid_t uid_ = 0;  // who runs it: `postgres` when the tests run as root
  gid_t gid_ = 0;
};

}  // namespace phasekit::test
