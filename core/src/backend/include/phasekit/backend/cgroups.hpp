#pragma once
// A cgroup per backend, where the machine lets this process make one: memory, process count and CPU
// limits the kernel enforces on the sandbox and everything in it. cgroup v2 when its memory, pids and
// cpu controllers can be enabled below this process's own group; else the v1 hierarchies of those
// controllers; else none (the sandbox falls back to rlimits, and says so).
//
// Layout: <this process's group>/phasekit-<pid>-<n>/<backend id>, in each hierarchy. The parent group
// holds every backend of one driver; its CPU weight is that of BACKEND_NICE, so tools together
// yield to the orchestrator as a niced process would (a cgroup's tasks compete as one group).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "phasekit/status.hpp"

namespace phasekit::backend {

struct BackendLimits {
  std::uint64_t memory_bytes = 0;  // 0: no limit
  std::uint64_t processes = 0;     // 0: no limit
  double cpus = 0;                 // CPU time per second, as docker --cpus (0: no cap)
  int nice = 10;                   // weight of all backends together (BACKEND_NICE)
  std::uint64_t tmpfs_bytes = 64u << 20;
  std::uint64_t file_bytes = 0;
  std::uint64_t open_files = 1024;
  std::uint64_t workspace_bytes = 0;  // a tmpfs of this size per workspace (workspace_bound.hpp); 0: none
};

/// What the host gives a sandbox of one backend's cgroup.
struct CgroupHandles {
  std::vector<std::string> dirs;   // one per hierarchy
  std::vector<int> procs;          // each dir's cgroup.procs, open for writing (the child joins by writing 0)
  int pids_events = -1;            // pids.events ("max N")
  int memory_events = -1;          // memory.oom_control (v1) or memory.events (v2) ("oom_kill N")
  void close_fds() noexcept;
};

class Cgroups {
 public:
  enum class Version { v1, v2 };

  /// Finds where this process may make groups, from /proc/self/mountinfo and /proc/self/cgroup (given
  /// as text, so tests can point at a fake tree), and makes the phasekit-<pid> parent. nullptr when
  /// there is nowhere: `why` then says what is missing.
  static std::unique_ptr<Cgroups> open(const std::string& mountinfo, const std::string& self_cgroup,
                                       const std::string& name, const BackendLimits& limits, std::string& why);
  /// The same, from this process's own /proc files.
  static std::unique_ptr<Cgroups> open_here(const BackendLimits& limits, std::string& why);
  ~Cgroups();
  Cgroups(const Cgroups&) = delete;
  Cgroups& operator=(const Cgroups&) = delete;

  /// Makes the group of one backend with its limits, and opens what its sandbox needs.
  Status create(const std::string& backend_id, CgroupHandles& out) const;
  /// Removes a backend's group; false while processes are still leaving it (try again shortly).
  bool remove(const CgroupHandles& handles) const;

  [[nodiscard]] Version version() const noexcept { return version_; }
  [[nodiscard]] bool limits_memory() const noexcept { return !memory_.empty(); }
  [[nodiscard]] bool limits_processes() const noexcept { return !pids_.empty(); }
  [[nodiscard]] bool limits_cpu() const noexcept { return !cpu_.empty(); }
  /// "cgroup-v1" or "cgroup-v2".
  [[nodiscard]] std::string_view mechanism() const noexcept { return version_ == Version::v1 ? "cgroup-v1" : "cgroup-v2"; }
  /// The parent folders (memory, pids, cpu; empty where absent), for tests and diagnostics.
  [[nodiscard]] const std::string& memory_parent() const noexcept { return memory_; }
  [[nodiscard]] const std::string& pids_parent() const noexcept { return pids_; }
  [[nodiscard]] const std::string& cpu_parent() const noexcept { return cpu_; }

 private:
  Cgroups() = default;
  Version version_ = Version::v1;
  BackendLimits limits_;
  std::string memory_;  // parent group per controller (v2: all three the same folder)
  std::string pids_;
  std::string cpu_;
};

/// The kernel's weight of a nice value (sched_prio_to_weight): 1024 at 0, 110 at 10, 15 at 19.
std::uint32_t nice_weight(int nice) noexcept;

}  // namespace phasekit::backend
