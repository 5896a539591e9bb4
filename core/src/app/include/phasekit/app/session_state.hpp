#pragma once
// What of a session outlives the backend it ran on: the shell's working directory and exported
// variables, and the workspace's files. With a shared store (store=redis) a session is saved after
// every shell call and restored on whichever backend, instance or worker runs its next call:
//
//  * cwd and env come from the report the sandbox's shell makes after every call (no command runs for
//    it), and are put back by running `cd` and `export` lines through the session's persistent shell;
//  * files move by rename(2) between the backend's workspace and <WORKSPACE_ROOT>/sessions/<id>, so a
//    move costs one syscall per top-level entry and never copies (both sit on one filesystem).
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "phasekit/backend/shell_backend.hpp"
#include "phasekit/status.hpp"

namespace phasekit::app {

struct ShellState {
  std::string cwd;  // relative to the workspace ("" = its top); absolute when outside it
  std::vector<std::pair<std::string, std::string>> env;  // exported variables, without HOME/PWD/OLDPWD/SHLVL/_
};

/// The backend's cwd and environment after its last call (from the shell's own report).
void capture_state(const backend::ShellBackendPtr& backend, std::function<void(Status, ShellState)> done);
/// Puts cwd and environment on a freshly reset backend (runs one command in it).
void restore_state(const backend::ShellBackendPtr& backend, const ShellState& state,
                   std::function<void(Status)> done);
/// The command line restore_state runs (exposed for tests): a `cd` and one `export` per variable,
/// every value single-quoted; variables whose names are not shell identifiers are left out.
std::string restore_command(const ShellState& state);
/// The state a shell reported (cwd absolute, exports as `declare -px`) as a session keeps it: cwd
/// relative to `home` (the workspace) when beneath it, exports as pairs. BAD_REQUEST when the exports
/// do not parse, UNAVAILABLE when the shell has reported nothing yet.
Status state_from_snapshot(const backend::ShellSnapshot& snapshot, std::string_view home, ShellState& out);

/// <root>/sessions/<session_id>: where a session's files wait between calls.
std::string session_folder(const std::string& root, const std::string& session_id);
/// Longest command line a session's history keeps (longer ones are cut, and end with "…").
inline constexpr std::size_t kCommandBytes = 4096;
/// Appends a shell command line to a session's history, keeping the newest `limit`.
void remember_command(std::vector<std::string>& history, std::string command, std::size_t limit);

/// Moves the files of a backend's workspace into a session's folder (its session_folder()), which is
/// made, mode 0700, if missing.
Status park_files(const std::string& folder, const std::string& workspace);

/// Moves every entry of `from` into `to` (both folders; `from` missing = nothing to move). An entry
/// whose name already exists in `to` replaces it. UNAVAILABLE naming the entry when a move fails.
Status move_entries(const std::string& from, const std::string& to);
/// Copies every entry of `from` into `to` (made if missing), keeping modes and owners, and leaves
/// `from` as it was. `base_dev`/`base_ino` receive the identity of the folder copied (0 when `from`
/// is missing), read through the same descriptor the copy reads, so they name what was copied.
Status copy_entries(const std::string& from, const std::string& to, std::uint64_t& base_dev,
                    std::uint64_t& base_ino);

/// The device and inode of the folder at `path` (both 0 when there is none): what commit_files
/// compares to know the folder is still the one a job copied.
void folder_identity(const std::string& path, std::uint64_t& dev, std::uint64_t& ino);

/// Commits a leased job's files: moves the entries of `workspace` into a staging folder beside
/// `folder`, then makes it `folder` in one renameat2 step, compare-and-swap style: with
/// RENAME_NOREPLACE when the job started from no folder (base 0), otherwise with RENAME_EXCHANGE only
/// while `folder` is still the one the job copied from (checked before, and of the folder swapped
/// out after; on a mismatch the exchange is undone). `conflict` is set when another run committed
/// meanwhile or the lease was lost (`still_leased`, asked last before the swap): the job's files are
/// then dropped, never mixed into the other run's.
Status commit_files(const std::string& folder, const std::string& workspace, const std::string& tag,
                    std::uint64_t base_dev, std::uint64_t base_ino, const std::function<bool()>& still_leased,
                    bool& conflict);

/// OK when `path` is a folder strictly beneath `root` (no `..`), so a path read from the store cannot
/// point the host elsewhere.
Status check_beneath(const std::string& root, const std::string& path);

}  // namespace phasekit::app
