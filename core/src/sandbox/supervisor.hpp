#pragma once
// The supervisor of one sandbox: it speaks the frame protocol (phasekit/backend/supervisor_protocol.hpp) with
// the host on stdin/stdout, keeps one persistent bash for the session, and cleans up after it.
//
//  * Commands run in that one shell, so a builtin costs no process and anything else only what it runs.
//    A plain simple command (`ls -la`) is started by the supervisor itself, as the shell would have
//    started it, with vfork where bash forks (direct.hpp says when, and why it is the same).
//    The shell takes each command from a file only the supervisor writes and answers on a pipe of its
//    own, closed while the command runs: its output reaches the host only inside OUTPUT frames.
//  * After each command the shell reports its status, cwd, exports, functions and aliases. A shell
//    that exits, dies or runs past the timeout is replaced by one restored from the last report, and
//    only that call fails.
//  * A timeout or a reset kills every process in the sandbox (its PID namespace, or every descendant
//    where there is none), not one process group. After a reset the next shell starts with the next
//    command, so a backend that serves file tools only never pays for one.
//  * Its own state is in its memory: it is not dumpable, so no process of the sandbox reads it.
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "phasekit/backend/supervisor_protocol.hpp"
#include "phasekit/sandbox/direct.hpp"
#include "options.hpp"

namespace phasekit::sandbox {

class Supervisor {
 public:
  /// `state_dir`: a folder the shell may read and not write; the command and the restore script are
  /// put there, through `state_fd` when given (a writable view of a folder the shell sees read-only).
  Supervisor(Options options, std::string state_dir, int state_fd = -1);
  /// Starts the shell, says READY, and serves the host until it closes stdin. Returns the exit code.
  int run();

 private:
  using Clock = std::chrono::steady_clock;
  enum class ShellPhase { none, starting, ready };

  void serve_host();
  void on_frame(backend::wire::FrameType type, std::string_view payload);
  void send(backend::wire::FrameType type, std::string_view payload);
  [[noreturn]] void fatal(const std::string& why);

  std::string spawn_shell();
  std::string wait_ready();
  void close_shell();
  /// Reads a command's pipe (the shell's or a program's started without it) into OUTPUT frames.
  void read_output(int& fd, bool drain);
  void read_status();
  void on_shell_message(std::string_view status, std::string_view cwd, std::string_view exports,
                        std::string_view functions, std::string_view settings);
  void save(std::string_view cwd, std::string_view exports, std::string_view functions, std::string_view settings);
  /// Starts request_'s command without the shell when it may (direct.hpp); false: the shell runs it.
  bool start_direct();
  [[nodiscard]] std::string find_program(int cwd, const std::string& name) const;
  void reap();
  void start_run(backend::wire::RunRequest request);
  void finish(int exit_code, std::uint32_t flags);
  void end_in_restart(int exit_code, std::uint32_t flags);
  /// Limits the sandbox ran into since the call started (DoneFlag bits); schedules the next check.
  std::uint32_t limits_hit();
  std::string kill_all();
  void reset();
  std::string write_file(const char* name, std::string_view content);

  Options o_;
  std::string state_dir_;
  int state_fd_ = -1;
  std::vector<char> buffer_;  // for every read: made once (zeroing 64 KiB per read showed in profiles)
  int signal_fd_ = -1;
  bool pid_one_ = false;
  backend::wire::FrameReader host_;
  bool host_open_ = true;

  pid_t shell_ = -1;
  ShellPhase phase_ = ShellPhase::none;
  int cmd_fd_ = -1;
  int out_fd_ = -1;
  int status_fd_ = -1;
  std::string status_buffer_;
  std::string startup_output_;  // what a shell that failed to start printed

  bool running_ = false;
  backend::wire::RunRequest request_;
  Clock::time_point deadline_{};
  Clock::time_point next_check_{};
  std::uint64_t output_bytes_ = 0;
  std::uint64_t output_sent_ = 0;
  bool truncated_ = false;
  std::uint64_t pids_refused_ = 0;  // counters at the start of the call
  std::uint64_t oom_kills_ = 0;

  // The last state the shell reported (restored into a replacement shell), and the last one sent.
  std::string saved_cwd_;
  std::string saved_exports_;
  std::string saved_functions_;
  std::string saved_settings_;
  bool saved_ = false;
  ShellView view_;             // read from the saved report when a command may run without the shell
  bool view_current_ = false;

  pid_t direct_ = -1;          // the program started without the shell, while it runs
  int direct_out_ = -1;        // its output pipe, until read to the end
  volatile int spawn_errno_ = 0;  // set by a vfork child whose exec failed
  int last_capability_ = -1;
  std::string sent_cwd_;
  std::string sent_exports_;
  bool sent_ = false;
};

/// The counter after `key` in a cgroup events file ("max 3\n", "oom_kill 1\n"); 0 when absent.
std::uint64_t read_counter(int fd, std::string_view key);

}  // namespace phasekit::sandbox
