#pragma once
// The sandbox's filesystem, made by its supervisor in a fresh mount namespace (Mode::namespaces): the
// host's tree read-only, nosuid and nodev; fresh tmpfs on /tmp, /var/tmp, /dev/shm and /run; a minimal
// /dev with the IPC namespace's message queues; /proc of the sandbox's own PID namespace; every workspace hidden but its own, bound read-write
// at the same path as on the host. Functions return "" or what failed.
#include <string>
#include <string_view>

#include "options.hpp"

namespace phasekit::sandbox {

/// Builds the filesystem above. Needs CAP_SYS_ADMIN in the mount namespace's owner. `state_fd`
/// receives a writable folder that the sandbox sees read-only at /run/phasekit (the supervisor's).
std::string setup_filesystem(const Options& options, int& state_fd);

/// Gives the workspace folder itself back its first mode (0700) and no ACL: a user may have opened it.
std::string reset_workspace_mode(const std::string& workspace);

/// Empties every place a user can write besides the workspace: /tmp, /var/tmp, /dev/shm, the message
/// queues, and in a container /run; and removes the SysV IPC objects. (The supervisor's folder in a
/// container's /run must be made again after.)
std::string refresh_scratch(const Options& options);

/// Removes everything inside `dir` but its entry named `keep`, whatever the depth, modes or links (it
/// never follows a symlink).
std::string wipe_contents(const std::string& dir, std::string_view keep = {});

/// Removes every SysV shared memory segment, message queue and semaphore set this process may remove
/// in its IPC namespace (a container's, which it cannot replace).
std::string remove_sysv_ipc();

/// Brings the loopback interface of the sandbox's network namespace up.
std::string loopback_up();

}  // namespace phasekit::sandbox
