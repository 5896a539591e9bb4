#include "workspace_bound.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "phasekit/random_id.hpp"

namespace phasekit::backend {
namespace {

constexpr std::uint64_t kBytesPerInode = 4096;
constexpr std::uint64_t kLeastInodes = 1024;

/// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = 0;
      const auto [end, ec] = std::from_chars(field.data() + i + 1, field.data() + i + 4, value, 8);
      if (ec == std::errc() && end == field.data() + i + 4) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

}  // namespace

Status bound_workspace(const std::string& path, std::uint64_t bytes, int uid, int gid) {
  const std::uint64_t inodes = std::max(kLeastInodes, bytes / kBytesPerInode);
  std::string data = fmt::format("size={},nr_inodes={},mode=0700", bytes, inodes);
  if (uid >= 0) {
    data += fmt::format(",uid={},gid={}", uid, gid);
  }
  if (::mount("phasekit-workspace", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, data.c_str()) != 0) {
    return Status(Code::unavailable, fmt::format("cannot bound workspace {} (BACKEND_WORKSPACE_BYTES): mount tmpfs: {}",
                                                 path, std::strerror(errno)));
  }
  return {};
}

void unbound_workspace(const std::string& path) noexcept {
  // EINVAL: nothing mounted there (a workspace made before the bound, or unmounted already).
  (void)::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
}

std::string can_bound_workspaces(const std::string& root) {
  // Random too: another process on the same volume may probe at the same moment, with the same pid.
  const std::string probe = (std::filesystem::path(root) / fmt::format(".bound-{}-{}", ::getpid(), random_tag())).string();
  std::error_code ignored;
  std::filesystem::remove_all(probe, ignored);
  if (::mkdir(probe.c_str(), 0700) != 0) {
    return fmt::format("cannot make {}: {}", probe, std::strerror(errno));
  }
  const Status mounted = bound_workspace(probe, 1 << 20, -1, -1);
  unbound_workspace(probe);
  ::rmdir(probe.c_str());
  return mounted.ok() ? std::string() : mounted.message();
}

std::vector<std::string> mounts_under(std::string_view mountinfo, const std::string& root) {
  std::vector<std::string> names;
  std::string prefix = std::filesystem::path(root).lexically_normal().string();
  while (prefix.size() > 1 && prefix.back() == '/') {
    prefix.pop_back();
  }
  prefix += '/';
  std::istringstream lines{std::string(mountinfo)};
  for (std::string line; std::getline(lines, line);) {
    // id parent major:minor root MOUNT-POINT options …
    std::istringstream fields(line);
    std::string skip;
    std::string point;
    if (!(fields >> skip >> skip >> skip >> skip >> point)) {
      continue;
    }
    const std::string p = unescape(point);
    if (p.size() > prefix.size() && p.compare(0, prefix.size(), prefix) == 0 &&
        p.find('/', prefix.size()) == std::string::npos) {
      names.push_back(p.substr(prefix.size()));
    }
  }
  return names;
}

std::size_t sweep_stale_workspaces(const std::string& root, const std::function<bool(std::string_view)>& ours) {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  std::error_code ec;
  const std::string canonical = std::filesystem::canonical(root, ec).string();
  if (ec) {
    return 0;
  }
  std::size_t swept = 0;
  for (const std::string& name : mounts_under(text.str(), canonical)) {
    // p<pid>-<tag>-<n>, as ProcessDriver names its backends.
    if (name.size() < 2 || name[0] != 'p') {
      continue;
    }
    int pid = 0;
    const auto [end, err] = std::from_chars(name.data() + 1, name.data() + name.size(), pid);
    if (err != std::errc() || end == name.data() + name.size() || *end != '-' || pid <= 0) {
      continue;
    }
    const bool gone = ::kill(pid, 0) != 0 && errno == ESRCH;
    const bool mine_before = pid == ::getpid() && !ours(name);
    if (!gone && !mine_before) {
      continue;
    }
    const std::string path = canonical + "/" + name;
    unbound_workspace(path);
    std::filesystem::remove_all(path, ec);
    ++swept;
  }
  return swept;
}

}  // namespace phasekit::backend
