#pragma once
// A bound on what one backend's workspace may hold (BACKEND_WORKSPACE_BYTES): each workspace is a
// tmpfs of its own, mounted by the process that makes backends over the folder make_workspace made,
// so that a user who fills it gets ENOSPC in their own workspace only, never on the volume other
// sessions share. The pages a tool writes there count in its backend's memory cgroup; the ones this
// process copies in count in this process's.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "phasekit/status.hpp"

namespace phasekit::backend {

/// Mounts a tmpfs of `bytes` (and at most one inode per 4 KiB of it, at least 1,024) over the folder
/// at `path`, mode 0700, owned by uid:gid when uid >= 0; nosuid, nodev. UNAVAILABLE saying why not.
Status bound_workspace(const std::string& path, std::uint64_t bytes, int uid, int gid);

/// Unmounts what bound_workspace mounted at `path` (lazily: a process still in it keeps it alive
/// until it leaves); nothing when nothing is mounted there.
void unbound_workspace(const std::string& path) noexcept;

/// Whether this process may bound workspaces under `root`: "" when a trial mount there worked, or why
/// not (no CAP_SYS_ADMIN, a file system that refuses the mount).
std::string can_bound_workspaces(const std::string& root);

/// Unmounts and removes the bounded workspaces under `root` that a process which no longer runs left
/// mounted (killed before it could destroy its backends): those named "p<pid>-…" whose pid is gone,
/// or is this process's own but `ours` does not claim the name (a container's PID 1, restarted).
/// Returns how many went.
std::size_t sweep_stale_workspaces(const std::string& root, const std::function<bool(std::string_view)>& ours);

/// The names of the mounts directly under `root`, from mountinfo's text (its fifth field, with the
/// kernel's octal escapes undone): what sweep_stale_workspaces looks at. Exposed for tests.
std::vector<std::string> mounts_under(std::string_view mountinfo, const std::string& root);

}  // namespace phasekit::backend
