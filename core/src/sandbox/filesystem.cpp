#include "filesystem.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

namespace phasekit::sandbox {
namespace {

constexpr std::array<std::string_view, 3> kScratch{"/tmp", "/var/tmp", "/dev/shm"};
constexpr std::array<const char*, 6> kDevices{"null", "zero", "full", "random", "urandom", "tty"};
/// Deeper folders are moved up to the top of the tree being wiped instead of descended into, so the
/// wipe holds a bounded number of descriptors whatever depth a user built.
constexpr int kMaxDepth = 64;

std::string failed(std::string_view what, std::string_view path) {
  std::string out(what);
  out += ' ';
  out += path;
  out += ": ";
  out += std::strerror(errno);
  return out;
}

bool beneath(std::string_view path, std::string_view dir) {
  return path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/';
}

/// Files a tmpfs may hold: one per 4 KiB of its size, so emptying a full one is bounded work.
std::uint64_t inodes_for(std::uint64_t bytes) { return std::max<std::uint64_t>(64, bytes / 4096); }

std::string mount_tmpfs(const char* path, unsigned mode, std::uint64_t bytes, unsigned long flags = 0) {
  const std::string data = "mode=" + std::to_string(mode >> 9 & 7) + std::to_string(mode >> 6 & 7) +
                           std::to_string(mode >> 3 & 7) + std::to_string(mode & 7) + ",size=" + std::to_string(bytes) +
                           ",nr_inodes=" + std::to_string(inodes_for(bytes));
  if (::mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | flags, data.c_str()) != 0) {
    return failed("mount tmpfs on", path);
  }
  return {};
}

/// mkdir -p, each new folder root-owned 0755 (they only hold mount points).
std::string make_dirs(const std::string& path) {
  for (std::size_t at = 1; at <= path.size(); ++at) {
    if (at == path.size() || path[at] == '/') {
      const std::string prefix = path.substr(0, at);
      if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
        return failed("mkdir", prefix);
      }
    }
  }
  return {};
}

/// Mounts a detached tree (from open_tree) at `target`, which is made (as a folder) first.
std::string attach(int tree, const std::string& target) {
  if (std::string e = make_dirs(target); !e.empty()) {
    return e;
  }
  if (::move_mount(tree, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return failed("move_mount onto", target);
  }
  return {};
}

/// The scratch mount (/tmp, /var/tmp, /dev/shm) the workspace root lies beneath, if any.
std::string_view scratch_holding(const std::string& root) {
  for (const std::string_view s : kScratch) {
    if (beneath(root, s)) {
      return s;
    }
  }
  return {};
}

/// Removes what `dir` (an open folder) holds; folders at kMaxDepth are renamed into `top` instead.
/// Sets `moved` when it did so (the caller then wipes `top` again).
std::string remove_children(int dir, int top, int depth, bool& moved, unsigned& serial, std::string_view keep) {
  // A fresh descriptor to list from: a dup would share `dir`'s offset, and a second pass over the
  // same folder would list nothing.
  const int listing = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing < 0) {
    return failed("open", "folder");
  }
  DIR* d = ::fdopendir(listing);
  if (d == nullptr) {
    ::close(listing);
    return failed("fdopendir", "folder");
  }
  std::string error;
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(d)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != ".." && name != keep) {
      names.emplace_back(name);
    }
  }
  ::closedir(d);
  for (const std::string& name : names) {
    if (::unlinkat(dir, name.c_str(), 0) == 0 || errno == ENOENT) {
      continue;
    }
    if (errno == EACCES || errno == EPERM) {
      // A folder whose mode forbids us (chmod 0 by its owner): open it up first.
      ::fchmod(dir, 0700);
      if (::unlinkat(dir, name.c_str(), 0) == 0) {
        continue;
      }
    }
    if (errno != EISDIR) {
      error = failed("unlink", name);
      continue;
    }
    if (depth >= kMaxDepth) {
      const std::string fresh = ".phasekit-deep-" + std::to_string(serial++);
      if (::renameat(dir, name.c_str(), top, fresh.c_str()) != 0) {
        error = failed("rename", name);
      }
      moved = true;
      continue;
    }
    int sub = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0 && errno == EACCES) {
      ::fchmodat(dir, name.c_str(), 0700, 0);
      sub = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (sub < 0) {
      error = failed("open", name);
      continue;
    }
    ::fchmod(sub, 0700);
    if (std::string e = remove_children(sub, top, depth + 1, moved, serial, {}); !e.empty()) {
      error = e;
    }
    ::close(sub);
    // ENOTEMPTY: something inside could not go (said above) or was moved up for a later pass.
    if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT && errno != ENOTEMPTY) {
      error = failed("rmdir", name);
    }
  }
  return error;
}

}  // namespace

std::string wipe_contents(const std::string& dir, std::string_view keep) {
  const int top = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (top < 0) {
    return errno == ENOENT ? std::string() : failed("open", dir);
  }
  std::string error;
  unsigned serial = 0;
  // Each pass removes all but what lay deeper than kMaxDepth, which it moved to the top: a chain of
  // depth D takes D / kMaxDepth passes.
  for (int pass = 0; pass < 100000; ++pass) {
    bool moved = false;
    error = remove_children(top, top, 0, moved, serial, keep);
    if (!moved || !error.empty()) {
      break;
    }
  }
  // Whatever happened above, the folder is empty (but for `keep`) or this says it is not.
  if (error.empty()) {
    const int listing = ::openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* d = listing >= 0 ? ::fdopendir(listing) : nullptr;
    if (d == nullptr) {
      error = failed("open", dir);
      if (listing >= 0) {
        ::close(listing);
      }
    } else {
      while (const dirent* entry = ::readdir(d)) {
        const std::string_view name = entry->d_name;
        if (name != "." && name != ".." && name != keep) {
          error = "cannot empty " + dir + ": " + std::string(name) + " is left";
          break;
        }
      }
      ::closedir(d);
    }
  }
  ::close(top);
  return error;
}

std::string setup_filesystem(const Options& o, int& state_fd) {
  // Detached copies of what gets covered below: the workspace (beneath a fresh tmpfs) and the devices
  // (beneath a fresh /dev).
  const int workspace = ::open_tree(AT_FDCWD, o.workspace.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (workspace < 0) {
    return failed("open_tree", o.workspace);
  }
  // Its files are the user's: nothing in it is setuid or a device, inside or (for the sandbox) out.
  mount_attr plain{};
  plain.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  if (::mount_setattr(workspace, "", AT_EMPTY_PATH, &plain, sizeof plain) != 0) {
    return failed("mount_setattr nosuid", o.workspace);
  }
  std::array<int, kDevices.size()> devices{};
  for (std::size_t i = 0; i < kDevices.size(); ++i) {
    const std::string path = std::string("/dev/") + kDevices[i];
    devices[i] = ::open_tree(AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  }
  // Nothing we mount reaches the host, and the host's tree becomes read-only, nosuid, nodev here (our
  // copies of its mounts only).
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return failed("make private", "/");
  }
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  if (::mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr) != 0) {
    return failed("mount_setattr read-only", "/");
  }
  for (const std::string_view s : {std::string_view("/tmp"), std::string_view("/var/tmp")}) {
    struct stat st {};
    if (::stat(std::string(s).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      if (std::string e = mount_tmpfs(std::string(s).c_str(), 01777, o.tmpfs_bytes); !e.empty()) {
        return e;
      }
    }
  }
  state_fd = -1;
  // /run, with the supervisor's folder on a tmpfs of its own: the sandbox sees both read-only (in a
  // user namespace its shell has the supervisor's uid, so modes alone would not keep it out, and a
  // mount point cannot be renamed); the supervisor writes through a detached writable clone.
  if (std::string e = mount_tmpfs("/run", 0755, 1u << 20); !e.empty()) {
    return e;
  }
  if (::mkdir("/run/phasekit", 0755) != 0) {
    return failed("mkdir", "/run/phasekit");
  }
  if (std::string e = mount_tmpfs("/run/phasekit", 0755, 16u << 20); !e.empty()) {
    return e;
  }
  state_fd = ::open_tree(AT_FDCWD, "/run/phasekit", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (state_fd < 0) {
    return failed("open_tree", "/run/phasekit");
  }
  mount_attr read_only{};
  read_only.attr_set = MOUNT_ATTR_RDONLY;
  for (const char* p : {"/run/phasekit", "/run"}) {
    if (::mount_setattr(AT_FDCWD, p, 0, &read_only, sizeof read_only) != 0) {
      return failed("mount_setattr read-only", p);
    }
  }
  // A /dev of a few harmless devices (no /dev/kmsg, no disks), read-only once made.
  if (std::string e = mount_tmpfs("/dev", 0755, 1u << 16, MS_NOEXEC); !e.empty()) {
    return e;
  }
  for (std::size_t i = 0; i < kDevices.size(); ++i) {
    if (devices[i] < 0) {
      continue;
    }
    const std::string path = std::string("/dev/") + kDevices[i];
    const int made = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (made >= 0) {
      ::close(made);
    }
    if (::move_mount(devices[i], "", AT_FDCWD, path.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      return failed("move_mount onto", path);
    }
    ::close(devices[i]);
  }
  for (const auto& [link, to] : {std::pair{"/dev/fd", "/proc/self/fd"}, std::pair{"/dev/stdin", "/proc/self/fd/0"},
                                 std::pair{"/dev/stdout", "/proc/self/fd/1"},
                                 std::pair{"/dev/stderr", "/proc/self/fd/2"}}) {
    ::symlink(to, link);
  }
  if (::mkdir("/dev/shm", 01777) != 0) {
    return failed("mkdir", "/dev/shm");
  }
  if (std::string e = mount_tmpfs("/dev/shm", 01777, o.tmpfs_bytes); !e.empty()) {
    return e;
  }
  // The IPC namespace's POSIX message queues, listed (and so removable between users) as files.
  if (::mkdir("/dev/mqueue", 01777) != 0 ||
      ::mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return failed("mount mqueue on", "/dev/mqueue");
  }
  mount_attr ro{};
  ro.attr_set = MOUNT_ATTR_RDONLY;
  if (::mount_setattr(AT_FDCWD, "/dev", 0, &ro, sizeof ro) != 0) {
    return failed("mount_setattr read-only", "/dev");
  }
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return failed("mount proc on", "/proc");
  }
  // The namespaces' own sysctls (IPC limits, pid_max, message queues) would otherwise be the shell's
  // to change in a user namespace, and outlive its user.
  const int sys = ::open_tree(AT_FDCWD, "/proc/sys", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  mount_attr sys_ro{};
  sys_ro.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
  if (sys < 0 || ::mount_setattr(sys, "", AT_EMPTY_PATH, &sys_ro, sizeof sys_ro) != 0 ||
      ::move_mount(sys, "", AT_FDCWD, "/proc/sys", MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return failed("bind read-only", "/proc/sys");
  }
  ::close(sys);
  // The host's cgroup tree names every backend; nothing in here needs it.
  struct stat cg {};
  if (::stat("/sys/fs/cgroup", &cg) == 0 && S_ISDIR(cg.st_mode)) {
    if (std::string e = mount_tmpfs("/sys/fs/cgroup", 0555, 4096, MS_RDONLY | MS_NOEXEC); !e.empty()) {
      return e;
    }
  }
  // Every workspace but this one hidden: beneath a scratch tmpfs already, or beneath one of its own,
  // read-only once the workspace is on it.
  const bool own_root = scratch_holding(o.workspace_root).empty();
  if (own_root) {
    if (std::string e = mount_tmpfs(o.workspace_root.c_str(), 0755, 1u << 16); !e.empty()) {
      return e;
    }
  }
  if (std::string e = attach(workspace, o.workspace); !e.empty()) {
    return e;
  }
  ::close(workspace);
  if (own_root && ::mount_setattr(AT_FDCWD, o.workspace_root.c_str(), 0, &read_only, sizeof read_only) != 0) {
    return failed("mount_setattr read-only", o.workspace_root);
  }
  return {};
}

std::string refresh_scratch(const Options& o) {
  if (o.mode == Mode::plain) {
    return {};  // /tmp is the host's, shared: nothing to do that would be safe
  }
  // Every place a user can write but the workspace: emptied in place (never unmounted: an unmount
  // waits for an RCU grace period, and under load dozens of resets at once waited seconds). The
  // tmpfs inode bound keeps this bounded too. /run only in a container, where it is the user's (the
  // supervisor makes its own folder in it afresh: the last user may have swapped it).
  std::vector<std::string_view> places{"/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue"};
  if (o.mode == Mode::container) {
    places.emplace_back("/run");
  }
  for (const std::string_view s : places) {
    const std::string p(s);
    if (!beneath(o.workspace, s)) {
      if (std::string e = wipe_contents(p); !e.empty()) {
        return e;
      }
      continue;
    }
    // The workspace is mounted beneath: everything goes but the folders on the way down to it (the
    // workspace itself is emptied on its own).
    std::string at = p;
    std::string_view rest = std::string_view(o.workspace).substr(p.size() + 1);
    while (!rest.empty()) {
      const std::size_t slash = rest.find('/');
      const std::string_view step = rest.substr(0, slash);
      if (std::string e = wipe_contents(at, step); !e.empty()) {
        return e;
      }
      at += "/" + std::string(step);
      rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    }
  }
  return remove_sysv_ipc();
}

std::string reset_workspace_mode(const std::string& workspace) {
  if (::chmod(workspace.c_str(), 0700) != 0) {
    return failed("chmod", workspace);
  }
  for (const char* acl : {"system.posix_acl_access", "system.posix_acl_default"}) {
    if (::removexattr(workspace.c_str(), acl) != 0 && errno != ENODATA && errno != ENOTSUP && errno != EOPNOTSUPP) {
      return failed("removexattr", workspace);
    }
  }
  return {};
}

std::string remove_sysv_ipc() {
  // /proc/sysvipc lists the IPC namespace's objects: a header line, then the key and the id first.
  std::string error;
  for (const auto& [file, remove] :
       {std::pair<const char*, int (*)(int)>{"/proc/sysvipc/shm", [](int id) { return ::shmctl(id, IPC_RMID, nullptr); }},
        std::pair<const char*, int (*)(int)>{"/proc/sysvipc/msg", [](int id) { return ::msgctl(id, IPC_RMID, nullptr); }},
        std::pair<const char*, int (*)(int)>{"/proc/sysvipc/sem", [](int id) { return ::semctl(id, 0, IPC_RMID); }}}) {
    const int fd = ::open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    std::string text;
    std::array<char, 4096> buf{};
    ssize_t n = 0;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) {
      text.append(buf.data(), static_cast<std::size_t>(n));
    }
    ::close(fd);
    std::size_t at = text.find('\n');
    while (at != std::string::npos && at + 1 < text.size()) {
      const std::size_t eol = text.find('\n', at + 1);
      const std::string line = text.substr(at + 1, (eol == std::string::npos ? text.size() : eol) - at - 1);
      long long key = 0;
      int id = -1;
      if (std::sscanf(line.c_str(), "%lld %d", &key, &id) == 2 && id >= 0 && remove(id) != 0 && errno != EINVAL &&
          errno != EIDRM) {
        error = failed("remove IPC object", std::to_string(id));
      }
      at = eol;
    }
  }
  return error;
}

std::string loopback_up() {
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    return failed("socket", "lo");
  }
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  std::string error;
  if (::ioctl(s, SIOCGIFFLAGS, &req) != 0) {
    error = failed("SIOCGIFFLAGS", "lo");
  } else {
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
    if (::ioctl(s, SIOCSIFFLAGS, &req) != 0) {
      error = failed("SIOCSIFFLAGS", "lo");
    }
  }
  ::close(s);
  return error;
}

}  // namespace phasekit::sandbox
