#include "phasekit/backend/cgroups.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

namespace phasekit::backend {
namespace {

constexpr std::uint64_t kCpuPeriodUs = 100000;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  while (at <= s.size()) {
    const std::size_t next = std::min(s.find(sep, at), s.size());
    out.push_back(s.substr(at, next - at));
    at = next + 1;
  }
  return out;
}

bool has_token(std::string_view list, std::string_view token, char sep) {
  for (const std::string_view t : split(list, sep)) {
    if (t == token) {
      return true;
    }
  }
  return false;
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 4 <= s.size()) {
      int v = 0;
      if (std::from_chars(s.data() + i + 1, s.data() + i + 4, v, 8).ptr == s.data() + i + 4) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

struct Mount {
  std::string point;
  std::string root;  // the part of the hierarchy mounted there
  std::string fstype;
  std::string super_options;
};

std::vector<Mount> parse_mountinfo(const std::string& text) {
  std::vector<Mount> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) {
      continue;
    }
    const auto left = split(std::string_view(line).substr(0, dash), ' ');
    const auto right = split(std::string_view(line).substr(dash + 3), ' ');
    if (left.size() < 5 || right.size() < 3) {
      continue;
    }
    out.push_back({unescape(left[4]), unescape(left[3]), std::string(right[0]), std::string(right[2])});
  }
  return out;
}

/// This process's group in the hierarchy holding `controller` ("" = the v2 line), from /proc/self/cgroup.
bool own_path(const std::string& self_cgroup, std::string_view controller, std::string& path) {
  std::istringstream in(self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find(':');
    const auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) {
      continue;
    }
    const std::string_view controllers = std::string_view(line).substr(first + 1, second - first - 1);
    if ((controller.empty() && controllers.empty() && line.compare(0, first, "0") == 0) ||
        (!controller.empty() && has_token(controllers, controller, ','))) {
      path = line.substr(second + 1);
      return true;
    }
  }
  return false;
}

/// <mount point>/<own path below the mount's root>
std::string join(const Mount& m, const std::string& own) {
  std::string rel = own;
  if (m.root != "/" && rel.compare(0, m.root.size(), m.root) == 0) {
    rel = rel.substr(m.root.size());
  }
  std::string out = m.point;
  if (!rel.empty() && rel != "/") {
    out += rel.front() == '/' ? rel : "/" + rel;
  }
  return out;
}

Status write_text(const std::string& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status(Code::unavailable, fmt::format("open {}: {}", path, std::strerror(errno)));
  }
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    return Status(Code::unavailable, fmt::format("write {} to {}: {}", text, path, std::strerror(err)));
  }
  return {};
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Groups named phasekit-<pid> whose process is gone (an orchestrator that was killed): removed, with
/// their (empty) backend groups.
void sweep_stale(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    int pid = 0;
    // phasekit-<pid>-<n>: the pid of the process that made it.
    if (name.rfind("phasekit-", 0) != 0 ||
        std::from_chars(name.data() + 9, name.data() + name.size(), pid).ec != std::errc() || pid <= 0 ||
        (::kill(pid, 0) == 0 || errno != ESRCH)) {
      continue;
    }
    std::error_code ignored;
    for (const auto& child : std::filesystem::directory_iterator(entry.path(), ignored)) {
      if (child.is_directory(ignored)) {
        ::rmdir(child.path().c_str());
      }
    }
    ::rmdir(entry.path().c_str());
  }
}

/// Makes the parent group; false (and why) when this process may not.
bool make_parent(const std::string& dir, std::string& why) {
  sweep_stale(std::filesystem::path(dir).parent_path().string());
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    why = fmt::format("cannot create {}: {}", dir, std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

std::uint32_t nice_weight(int nice) noexcept {
  // kernel/sched/core.c, sched_prio_to_weight[]
  static constexpr std::array<std::uint32_t, 40> kWeights{
      88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904,
      3906,  3121,  2501,  1991,  1586,  1277,  1024,  820,   655,   526,   423,  335,  272,  215,
      172,   137,   110,   87,    70,    56,    45,    36,    29,    23,    18,   15};
  return kWeights[static_cast<std::size_t>(std::clamp(nice, -20, 19) + 20)];
}

void CgroupHandles::close_fds() noexcept {
  for (int& fd : procs) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  procs.clear();
  for (int* fd : {&pids_events, &memory_events}) {
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
  }
}

std::unique_ptr<Cgroups> Cgroups::open_here(const BackendLimits& limits, std::string& why) {
  // One parent per driver (a test process may hold several at once).
  static std::atomic<unsigned> serial{0};
  return open(read_text("/proc/self/mountinfo"), read_text("/proc/self/cgroup"),
              fmt::format("phasekit-{}-{}", ::getpid(), serial++), limits, why);
}

std::unique_ptr<Cgroups> Cgroups::open(const std::string& mountinfo, const std::string& self_cgroup,
                                       const std::string& name, const BackendLimits& limits, std::string& why) {
  const std::vector<Mount> mounts = parse_mountinfo(mountinfo);
  std::unique_ptr<Cgroups> out(new Cgroups());
  out->limits_ = limits;
  std::vector<std::string> reasons;
  // cgroup v2, when the controllers can be enabled for groups below ours.
  for (const Mount& m : mounts) {
    std::string own;
    if (m.fstype != "cgroup2" || !own_path(self_cgroup, "", own)) {
      continue;
    }
    const std::string here = join(m, own);
    const std::string available = read_text(here + "/cgroup.controllers");
    std::string enable;
    for (const char* c : {"memory", "pids", "cpu"}) {
      if (has_token(available.substr(0, available.find('\n')), c, ' ')) {
        enable += fmt::format("{}+{}", enable.empty() ? "" : " ", c);
      }
    }
    if (enable.empty()) {
      reasons.push_back(fmt::format("cgroup v2 at {} offers no memory, pids or cpu controller", m.point));
      break;
    }
    const std::string parent = here + "/" + name;
    std::string why_not;
    if (!make_parent(parent, why_not)) {
      reasons.push_back(why_not);
      break;
    }
    const Status delegated = write_text(here + "/cgroup.subtree_control", enable);
    const Status below = delegated.ok() ? write_text(parent + "/cgroup.subtree_control", enable) : delegated;
    if (!below.ok()) {
      ::rmdir(parent.c_str());
      reasons.push_back("cgroup v2: cannot enable controllers below this process's group: " + below.message());
      break;
    }
    out->version_ = Version::v2;
    const std::string_view enabled = enable;
    out->memory_ = enabled.find("memory") != std::string_view::npos ? parent : "";
    out->pids_ = enabled.find("pids") != std::string_view::npos ? parent : "";
    out->cpu_ = enabled.find("cpu") != std::string_view::npos ? parent : "";
    if (!out->cpu_.empty()) {
      const auto weight = std::max<std::uint32_t>(1, nice_weight(limits.nice) * 100 / 1024);
      (void)write_text(parent + "/cpu.weight", std::to_string(weight));
    }
    return out;
  }
  // cgroup v1: one hierarchy per controller.
  out->version_ = Version::v1;
  for (const char* c : {"memory", "pids", "cpu"}) {
    std::string own;
    const Mount* hierarchy = nullptr;
    for (const Mount& m : mounts) {
      if (m.fstype == "cgroup" && has_token(m.super_options, c, ',')) {
        hierarchy = &m;
        break;
      }
    }
    if (hierarchy == nullptr || !own_path(self_cgroup, c, own)) {
      reasons.push_back(fmt::format("no cgroup v1 {} hierarchy", c));
      continue;
    }
    const std::string parent = join(*hierarchy, own) + "/" + name;
    std::string why_not;
    if (!make_parent(parent, why_not)) {
      reasons.push_back(why_not);
      continue;
    }
    std::string_view controller = c;
    (controller == "memory" ? out->memory_ : controller == "pids" ? out->pids_ : out->cpu_) = parent;
    if (controller == "cpu") {
      (void)write_text(parent + "/cpu.shares", std::to_string(std::max<std::uint32_t>(2, nice_weight(limits.nice))));
    }
  }
  if (out->memory_.empty() && out->pids_.empty() && out->cpu_.empty()) {
    why.clear();
    for (const auto& r : reasons) {
      why += (why.empty() ? "" : "; ") + r;
    }
    return nullptr;
  }
  return out;
}

Cgroups::~Cgroups() {
  for (const std::string* dir : {&memory_, &pids_, &cpu_}) {
    if (!dir->empty()) {
      ::rmdir(dir->c_str());
    }
  }
}

Status Cgroups::create(const std::string& backend_id, CgroupHandles& out) const {
  out = CgroupHandles{};
  auto fail = [&out](Status s) {
    out.close_fds();
    return s;
  };
  auto group = [&](const std::string& parent) -> Status {
    const std::string dir = parent + "/" + backend_id;
    if (std::find(out.dirs.begin(), out.dirs.end(), dir) != out.dirs.end()) {
      return {};  // v2: one folder for every controller
    }
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status(Code::unavailable, fmt::format("cannot create cgroup {}: {}", dir, std::strerror(errno)));
    }
    out.dirs.push_back(dir);
    return {};
  };
  const bool v2 = version_ == Version::v2;
  if (!memory_.empty()) {
    if (Status s = group(memory_); !s.ok()) {
      return fail(s);
    }
    const std::string dir = memory_ + "/" + backend_id;
    if (limits_.memory_bytes > 0) {
      const std::string bytes = std::to_string(limits_.memory_bytes);
      if (Status s = write_text(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes"), bytes); !s.ok()) {
        return fail(s);
      }
      // Swap must not extend the limit.
      if (v2 && exists(dir + "/memory.swap.max")) {
        (void)write_text(dir + "/memory.swap.max", "0");
      } else if (!v2 && exists(dir + "/memory.memsw.limit_in_bytes")) {
        (void)write_text(dir + "/memory.memsw.limit_in_bytes", bytes);
      }
    }
    out.memory_events =
        ::open((dir + (v2 ? "/memory.events" : "/memory.oom_control")).c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (!pids_.empty()) {
    if (Status s = group(pids_); !s.ok()) {
      return fail(s);
    }
    const std::string dir = pids_ + "/" + backend_id;
    if (limits_.processes > 0) {
      if (Status s = write_text(dir + "/pids.max", std::to_string(limits_.processes)); !s.ok()) {
        return fail(s);
      }
    }
    out.pids_events = ::open((dir + "/pids.events").c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (!cpu_.empty()) {
    if (Status s = group(cpu_); !s.ok()) {
      return fail(s);
    }
    const std::string dir = cpu_ + "/" + backend_id;
    if (limits_.cpus > 0) {
      const auto quota = static_cast<std::uint64_t>(std::llround(limits_.cpus * kCpuPeriodUs));
      const Status s = v2 ? write_text(dir + "/cpu.max", fmt::format("{} {}", quota, kCpuPeriodUs))
                          : write_text(dir + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs));
      const Status q = v2 || !s.ok() ? s : write_text(dir + "/cpu.cfs_quota_us", std::to_string(quota));
      if (!q.ok()) {
        return fail(q);
      }
    }
  }
  for (const std::string& dir : out.dirs) {
    const int fd = ::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      return fail(Status(Code::unavailable, fmt::format("open {}/cgroup.procs: {}", dir, std::strerror(errno))));
    }
    out.procs.push_back(fd);
  }
  return {};
}

bool Cgroups::remove(const CgroupHandles& handles) const {
  bool all = true;
  for (const std::string& dir : handles.dirs) {
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
      all = false;
    }
  }
  return all;
}

}  // namespace phasekit::backend
