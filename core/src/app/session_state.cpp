#include "phasekit/app/session_state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/syscall.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <memory>
#include <optional>
#include <cstring>
#include <filesystem>
#include <utility>

#include "phasekit/backend/exports_parser.hpp"
#include "phasekit/backend/shell_quote.hpp"
#include "phasekit/bytes.hpp"

namespace phasekit::app {
namespace {

constexpr std::chrono::milliseconds kStateTimeout{10000};

bool is_identifier(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
    return false;
  }
  for (const char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) {
      return false;
    }
  }
  return true;
}

bool is_own_variable(std::string_view name) {
  return name == "HOME" || name == "PWD" || name == "OLDPWD" || name == "SHLVL" || name == "_";
}

}  // namespace

Status state_from_snapshot(const backend::ShellSnapshot& snapshot, std::string_view home, ShellState& out) {
  if (!snapshot.known) {
    return Status(Code::unavailable, "the shell has not reported its state yet");
  }
  ShellState state;
  const std::string_view pwd = snapshot.cwd;
  if (pwd == home) {
    state.cwd.clear();
  } else if (pwd.size() > home.size() && pwd.substr(0, home.size()) == home && pwd[home.size()] == '/') {
    state.cwd = std::string(pwd.substr(home.size() + 1));
  } else {
    state.cwd = std::string(pwd);  // outside the workspace: kept absolute
  }
  backend::ExportList exports;
  if (Status s = backend::parse_exports(snapshot.exports, exports); !s.ok()) {
    return s;
  }
  for (auto& [name, value] : exports) {
    if (is_identifier(name) && !is_own_variable(name)) {
      state.env.emplace_back(std::move(name), std::move(value));
    }
  }
  out = std::move(state);
  return {};
}

std::string restore_command(const ShellState& state) {
  std::string cmd;
  if (state.cwd.empty()) {
    cmd = "cd -- \"$HOME\"";
  } else if (state.cwd.front() == '/') {
    cmd = fmt::format("cd -- {} 2>/dev/null || cd -- \"$HOME\"", backend::single_quoted(state.cwd));
  } else {
    cmd = fmt::format("cd -- \"$HOME\"/{} 2>/dev/null || cd -- \"$HOME\"", backend::single_quoted(state.cwd));
  }
  for (const auto& [name, value] : state.env) {
    if (is_identifier(name) && !is_own_variable(name)) {
      cmd += fmt::format("; export {}={}", name, backend::single_quoted(value));
    }
  }
  return cmd;
}

void capture_state(const backend::ShellBackendPtr& backend, std::function<void(Status, ShellState)> done) {
  // The shell reports its cwd and exports after every call: nothing to run.
  backend->snapshot([home = backend->workspace(), done = std::move(done)](backend::ShellSnapshot snapshot) {
    ShellState state;
    Status status = state_from_snapshot(snapshot, home, state);
    done(std::move(status), std::move(state));
  });
}

void restore_state(const backend::ShellBackendPtr& backend, const ShellState& state, std::function<void(Status)> done) {
  backend->run(restore_command(state), kStateTimeout, 4096, [](std::string_view) {},
               [done = std::move(done)](Status status, backend::RunResult r) {
                 if (status.ok() && (r.timed_out || r.exit_code != 0)) {
                   status = Status(Code::internal, fmt::format("restoring the shell state failed (exit {})", r.exit_code));
                 }
                 done(std::move(status));
               });
}

std::string session_folder(const std::string& root, const std::string& session_id) {
  return (std::filesystem::path(root) / "sessions" / session_id).string();
}

void remember_command(std::vector<std::string>& history, std::string command, std::size_t limit) {
  if (command.size() > kCommandBytes) {
    // A 1 MB command line is kept as its beginning: the record stays small whatever the user sends.
    command.resize(bytes::utf8_complete_prefix(std::string_view(command).substr(0, kCommandBytes)));
    command += "\u2026";  // …
  }
  history.push_back(std::move(command));
  if (history.size() > limit) {
    history.erase(history.begin(), history.end() - static_cast<std::ptrdiff_t>(limit));
  }
}

Status park_files(const std::string& folder, const std::string& workspace) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  ::chmod(folder.c_str(), 0700);
  return move_entries(workspace, folder);
}

namespace {

constexpr int kMaxCopyDepth = 256;  // folders inside folders; two descriptors held per level

/// Closes a descriptor (or a DIR*) at the end of its scope.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

Status copy_failed(std::string_view what, std::string_view name, int err) {
  return Status(Code::unavailable, fmt::format("{} {}: {}", what, name, std::strerror(err)));
}

/// What a copy out of a bounded workspace may still write: the bytes and entries of the workspace's
/// own file system. Copied, a sparse file takes its whole size and each hard link a whole file, so
/// without it a workspace of 8 MiB could become gigabytes on the volume every session shares.
struct CopyBudget {
  std::uint64_t bytes = 0;
  std::uint64_t entries = 0;
  std::uint64_t bound_bytes = 0;  // for the message
};

Status over_budget(std::string_view name, const CopyBudget& b) {
  return Status(Code::resource_exhausted,
                fmt::format("copying {}: the workspace's files take more than its bound ({} bytes) once copied out "
                            "(a sparse file or a hard link counts in full)",
                            name, b.bound_bytes));
}

/// How much of the next copy to ask for: all of it, or one byte past the budget (to see it exceeded).
std::size_t chunk(const CopyBudget* budget, std::size_t most) {
  if (budget == nullptr || budget->bytes >= most) {
    return most;
  }
  return static_cast<std::size_t>(budget->bytes + 1);
}

/// One regular file, `name` in `from_dir` to `name` in `to_dir`. Both ends are opened without
/// following a symlink, and the destination must turn out a regular file: a link or fifo planted there
/// by the backend's user is refused, never written through. With a budget, every byte written counts.
Status copy_file_at(int from_dir, int to_dir, const char* name, const struct stat& st, CopyBudget* budget) {
  Fd in(::openat(from_dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (in.fd < 0) {
    return copy_failed("reading", name, errno);
  }
  Fd out(::openat(to_dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
  struct stat got {};
  if (out.fd < 0 || ::fstat(out.fd, &got) != 0 || !S_ISREG(got.st_mode)) {
    return copy_failed("writing", name, out.fd < 0 ? errno : EEXIST);
  }
  const auto spend = [budget](std::uint64_t n) {
    if (budget == nullptr) {
      return true;
    }
    if (n > budget->bytes) {
      return false;
    }
    budget->bytes -= n;
    return true;
  };
  for (;;) {
    const ssize_t n = ::copy_file_range(in.fd, nullptr, out.fd, nullptr, chunk(budget, std::size_t{1} << 30), 0);
    if (n == 0) {
      break;
    }
    if (n > 0 && !spend(static_cast<std::uint64_t>(n))) {
      return over_budget(name, *budget);
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      // Across filesystems on older kernels, or a file system without it: the plain way.
      if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
        return copy_failed("copying", name, errno);
      }
      std::array<char, 65536> buf{};
      for (;;) {
        const ssize_t r = ::read(in.fd, buf.data(), chunk(budget, buf.size()));
        if (r < 0 && errno == EINTR) {
          continue;
        }
        if (r < 0) {
          return copy_failed("reading", name, errno);
        }
        if (r == 0) {
          break;
        }
        if (!spend(static_cast<std::uint64_t>(r))) {
          return over_budget(name, *budget);
        }
        for (ssize_t done = 0; done < r;) {
          const ssize_t w = ::write(out.fd, buf.data() + done, static_cast<std::size_t>(r - done));
          if (w < 0 && errno != EINTR) {
            return copy_failed("writing", name, errno);
          }
          done += std::max<ssize_t>(w, 0);
        }
      }
      break;
    }
  }
  (void)::fchown(out.fd, st.st_uid, st.st_gid);
  (void)::fchmod(out.fd, st.st_mode & 01777);  // never setuid or setgid, whoever owns it
  // Some file systems (NFS, quotas) say ENOSPC or EDQUOT only at close: a copy is whole only then.
  if (::close(std::exchange(out.fd, -1)) != 0 && errno != EINTR) {
    return copy_failed("writing", name, errno);
  }
  return {};
}

Status copy_tree_at(int from_dir, int to_dir, int depth, CopyBudget* budget);

/// One entry, `name` in the folder open as `from_dir`, to the same name in the one open as `to_dir`:
/// a folder with everything in it, a symlink as a symlink, a regular file; fifos, sockets and
/// devices are not a session's files and are skipped.
Status copy_entry_at(int from_dir, int to_dir, const char* name, int depth, CopyBudget* budget) {
  if (budget != nullptr) {
    if (budget->entries == 0) {
      return over_budget(name, *budget);
    }
    --budget->entries;
  }
  struct stat st {};
  if (::fstatat(from_dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return copy_failed("reading", name, errno);
  }
  if (S_ISDIR(st.st_mode)) {
    if (::mkdirat(to_dir, name, 0700) != 0 && errno != EEXIST) {
      return copy_failed("making", name, errno);
    }
    Fd sub_from(::openat(from_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    Fd sub_to(::openat(to_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (sub_from.fd < 0 || sub_to.fd < 0) {
      return copy_failed(sub_from.fd < 0 ? "reading" : "making", name, errno);
    }
    if (Status s = copy_tree_at(sub_from.fd, sub_to.fd, depth + 1, budget); !s.ok()) {
      return s;
    }
    (void)::fchown(sub_to.fd, st.st_uid, st.st_gid);
    (void)::fchmod(sub_to.fd, st.st_mode & 01777);
  } else if (S_ISLNK(st.st_mode)) {
    std::array<char, PATH_MAX> target{};
    const ssize_t n = ::readlinkat(from_dir, name, target.data(), target.size() - 1);
    if (n < 0) {
      return copy_failed("reading", name, errno);
    }
    if (::symlinkat(target.data(), to_dir, name) != 0 &&
        (errno != EEXIST || ::unlinkat(to_dir, name, 0) != 0 || ::symlinkat(target.data(), to_dir, name) != 0)) {
      return copy_failed("making", name, errno);
    }
    (void)::fchownat(to_dir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
  } else if (S_ISREG(st.st_mode)) {
    return copy_file_at(from_dir, to_dir, name, st, budget);
  }
  return {};
}

/// Copies the entries of the folder open as `from_dir` into the one open as `to_dir`, by descriptor
/// all the way down: no path is resolved again, so a folder swapped for a symlink meanwhile (on
/// either side) is never followed out of the tree.
Status copy_tree_at(int from_dir, int to_dir, int depth, CopyBudget* budget) {
  if (depth > kMaxCopyDepth) {
    return Status(Code::unavailable, fmt::format("more than {} folders deep", kMaxCopyDepth));
  }
  const int listing = ::dup(from_dir);
  DIR* dir = listing < 0 ? nullptr : ::fdopendir(listing);
  if (dir == nullptr) {
    if (listing >= 0) {
      ::close(listing);
    }
    return copy_failed("reading", "a folder", errno);
  }
  const std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, &::closedir);
  ::rewinddir(dir);
  for (errno = 0; const dirent* e = ::readdir(dir); errno = 0) {
    const char* name = e->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) {
      continue;
    }
    if (Status s = copy_entry_at(from_dir, to_dir, name, depth, budget); !s.ok()) {
      return s;
    }
  }
  if (errno != 0) {
    return copy_failed("reading", "a folder", errno);
  }
  return {};
}

int rename2(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

bool same_folder(const std::string& path, std::uint64_t dev, std::uint64_t ino) {
  std::uint64_t d = 0;
  std::uint64_t i = 0;
  folder_identity(path, d, i);
  return i != 0 && d == dev && i == ino;
}

}  // namespace

Status move_entries(const std::string& from, const std::string& to) {
  std::error_code ec;
  if (!std::filesystem::is_directory(from, ec)) {
    return {};
  }
  // Descriptors for the copy a move across file systems falls back to (a backend's workspace on a
  // tmpfs of its own, BACKEND_WORKSPACE_BYTES, and the session's folder on the volume).
  const Fd from_fd(::open(from.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  const Fd to_fd(::open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (from_fd.fd < 0 || to_fd.fd < 0) {
    return Status(Code::unavailable,
                  fmt::format("opening {}: {}", from_fd.fd < 0 ? from : to, std::strerror(errno)));
  }
  std::optional<CopyBudget> budget;  // set at the first move that crosses file systems
  for (std::filesystem::directory_iterator it(from, ec), end; !ec && it != end; it.increment(ec)) {
    const auto target = std::filesystem::path(to) / it->path().filename();
    if (std::filesystem::is_directory(target, ec) && !std::filesystem::is_symlink(target, ec)) {
      std::filesystem::remove_all(target, ec);
    }
    if (::rename(it->path().c_str(), target.c_str()) == 0) {
      continue;
    }
    if (errno != EXDEV) {
      return Status(Code::unavailable, fmt::format("moving {} to {}: {}", it->path().filename().string(), to,
                                                   std::strerror(errno)));
    }
    const std::string name = it->path().filename().string();
    if (!budget) {
      // Out of a file system of its own (a bounded workspace): at most what it can hold.
      struct statvfs fs {};
      if (::fstatvfs(from_fd.fd, &fs) != 0) {
        return Status(Code::unavailable, fmt::format("reading {}: {}", from, std::strerror(errno)));
      }
      const std::uint64_t bytes = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
      budget = CopyBudget{bytes, static_cast<std::uint64_t>(fs.f_files), bytes};
    }
    std::filesystem::remove_all(target, ec);
    if (Status copied = copy_entry_at(from_fd.fd, to_fd.fd, name.c_str(), 0, &*budget); !copied.ok()) {
      return Status(copied.code() == Code::resource_exhausted ? Code::resource_exhausted : Code::unavailable,
                    fmt::format("moving {} to {}: {}", name, to, copied.message()));
    }
    std::filesystem::remove_all(it->path(), ec);
    ec.clear();
  }
  if (ec) {
    return Status(Code::unavailable, fmt::format("reading {}: {}", from, ec.message()));
  }
  return {};
}

void folder_identity(const std::string& path, std::uint64_t& dev, std::uint64_t& ino) {
  struct stat st {};
  const bool there = ::stat(path.c_str(), &st) == 0;
  dev = there ? static_cast<std::uint64_t>(st.st_dev) : 0;
  ino = there ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

Status copy_entries(const std::string& from, const std::string& to, std::uint64_t& base_dev,
                    std::uint64_t& base_ino) {
  base_dev = 0;
  base_ino = 0;
  const int fd = ::open(from.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return errno == ENOENT ? Status() : Status(Code::unavailable, fmt::format("opening {}: {}", from, std::strerror(errno)));
  }
  struct stat st {};
  ::fstat(fd, &st);
  base_dev = static_cast<std::uint64_t>(st.st_dev);
  base_ino = static_cast<std::uint64_t>(st.st_ino);
  const Fd from_fd(fd);
  std::error_code ec;
  std::filesystem::create_directories(to, ec);
  // Through descriptors: a commit that swaps the folder meanwhile does not mix two versions, and
  // nothing in either tree is followed out of it.
  const Fd to_fd(::open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (to_fd.fd < 0) {
    return Status(Code::unavailable, fmt::format("opening {}: {}", to, std::strerror(errno)));
  }
  return copy_tree_at(from_fd.fd, to_fd.fd, 0, nullptr);
}

Status commit_files(const std::string& folder, const std::string& workspace, const std::string& tag,
                    std::uint64_t base_dev, std::uint64_t base_ino, const std::function<bool()>& still_leased,
                    bool& conflict) {
  conflict = false;
  const std::filesystem::path f(folder);
  const std::string staging = (f.parent_path() / fmt::format(".{}.{}", f.filename().string(), tag)).string();
  std::error_code ec;
  std::filesystem::remove_all(staging, ec);
  if (std::filesystem::create_directories(staging, ec); ec) {
    return Status(Code::unavailable, fmt::format("making {}: {}", staging, ec.message()));
  }
  ::chmod(staging.c_str(), 0700);
  if (Status moved = move_entries(workspace, staging); !moved.ok()) {
    std::filesystem::remove_all(staging, ec);
    return moved;
  }
  const auto drop = [&](Status why) {
    std::filesystem::remove_all(staging, ec);
    return why;
  };
  if (still_leased && !still_leased()) {
    conflict = true;
    return drop(Status(Code::unavailable, "the job's lease was lost before its files were committed"));
  }
  if (base_ino == 0) {
    if (rename2(staging, folder, RENAME_NOREPLACE) != 0) {
      conflict = errno == EEXIST;
      return drop(Status(Code::unavailable,
                         fmt::format("committing {}: {}", folder, std::strerror(errno))));
    }
    return {};
  }
  if (!same_folder(folder, base_dev, base_ino)) {
    conflict = true;
    return drop(Status(Code::unavailable, fmt::format("{} changed since the job copied it", folder)));
  }
  if (rename2(staging, folder, RENAME_EXCHANGE) != 0) {
    return drop(Status(Code::unavailable, fmt::format("committing {}: {}", folder, std::strerror(errno))));
  }
  // `staging` now names what was `folder`: it must be the one copied, or another commit got in
  // between the check and the swap, and the swap is undone.
  if (!same_folder(staging, base_dev, base_ino)) {
    (void)rename2(staging, folder, RENAME_EXCHANGE);
    conflict = true;
    return drop(Status(Code::unavailable, fmt::format("{} changed while the job committed", folder)));
  }
  std::filesystem::remove_all(staging, ec);
  return {};
}

Status check_beneath(const std::string& root, const std::string& path) {
  const std::filesystem::path r = std::filesystem::path(root).lexically_normal();
  const std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  const auto rel = p.lexically_relative(r);
  if (path.empty() || !p.is_absolute() || rel.empty() || rel == "." || *rel.begin() == "..") {
    return Status(Code::bad_request, fmt::format("{} is not beneath WORKSPACE_ROOT", path));
  }
  return {};
}

}  // namespace phasekit::app
