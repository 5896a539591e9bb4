#pragma once
// What phasekit-sandbox is told on its command line (see sandbox_main.cpp for the syntax).
#include <cstdint>
#include <string>

namespace phasekit::sandbox {

enum class Mode {
  namespaces,  // PID 1 of fresh pid/mount/net/ipc/uts namespaces: builds the sandbox's filesystem itself
  container,   // PID 1 of a container someone else built (docker): only supervises
  plain,       // a plain child process (SANDBOX=none): supervises, and isolates nothing
};

struct Options {
  Mode mode = Mode::plain;
  std::string workspace;       // absolute; the shell's HOME and first working directory
  std::string workspace_root;  // namespaces: every other workspace under it is hidden
  int uid = -1;                // run the shell as this user (when the supervisor is root)
  int gid = -1;
  bool userns = false;         // namespaces inside a user namespace: the shell keeps uid 0 without capabilities
  std::uint64_t tmpfs_bytes = 64u << 20;  // namespaces: size of /tmp, /var/tmp, /dev/shm
  std::uint64_t file_bytes = 0;           // RLIMIT_FSIZE (0: unlimited)
  std::uint64_t open_files = 1024;        // RLIMIT_NOFILE
  std::uint64_t address_space_bytes = 0;  // RLIMIT_AS (0: unlimited; used when no memory cgroup)
  std::uint64_t processes = 0;            // RLIMIT_NPROC (0: unlimited): per sandbox only in its own user
                                          // namespace, where the kernel counts a uid's processes apart
  bool direct = true;          // start a plain simple command without the shell (direct.hpp); false: --through-shell
  bool check_shell = false;    // start a shell before READY (the start-up check), not with the first command
  int pids_events_fd = -1;     // a cgroup file whose "max N" counts forks refused at the process limit
  int memory_events_fd = -1;   // a cgroup file whose "oom_kill N" counts processes the OOM killer took
};

}  // namespace phasekit::sandbox
