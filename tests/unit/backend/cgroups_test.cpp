// Cgroups per backend: where they go and what is written, on fake v1 and v2 trees (files only), and
// on this machine's real hierarchy when it offers one.
#include "phasekit/backend/cgroups.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace phasekit::backend {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FakeTree : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("phasekit-cgfake-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(FakeTree, V1MakesOneGroupPerControllerUnderThisProcesssOwnWithLimits) {
  for (const char* c : {"memory", "pids", "cpu,cpuacct"}) {
    fs::create_directories(root_ / c / "svc");
  }
  const std::string mountinfo =
      "30 22 0:27 / " + root_.string() + "/memory rw - cgroup cgroup rw,memory\n" +
      "31 22 0:28 / " + root_.string() + "/pids rw - cgroup cgroup rw,pids\n" +
      "32 22 0:29 / " + root_.string() + "/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
  const std::string self = "4:memory:/svc\n8:pids:/svc\n1:cpu,cpuacct:/svc\n0::/\n";
  BackendLimits limits;
  limits.memory_bytes = 1 << 20;
  limits.processes = 64;
  limits.cpus = 0.5;
  limits.nice = 10;
  std::string why;
  auto cg = Cgroups::open(mountinfo, self, "phasekit-1-0", limits, why);
  ASSERT_TRUE(cg) << why;
  EXPECT_EQ(cg->version(), Cgroups::Version::v1);
  EXPECT_EQ(slurp(root_ / "cpu,cpuacct/svc/phasekit-1-0/cpu.shares"), "110");
  // The files a real cgroupfs has: made here so that open() finds them.
  for (const char* c : {"memory", "pids", "cpu,cpuacct"}) {
    fs::create_directories(root_ / c / "svc/phasekit-1-0/b1");
    std::ofstream(root_ / c / "svc/phasekit-1-0/b1/cgroup.procs");
  }
  std::ofstream(root_ / "pids/svc/phasekit-1-0/b1/pids.events") << "max 0\n";
  std::ofstream(root_ / "memory/svc/phasekit-1-0/b1/memory.oom_control") << "oom_kill 0\n";
  CgroupHandles h;
  ASSERT_TRUE(cg->create("b1", h).ok());
  EXPECT_EQ(h.dirs.size(), 3u);
  EXPECT_EQ(h.procs.size(), 3u);
  EXPECT_GE(h.pids_events, 0);
  EXPECT_GE(h.memory_events, 0);
  EXPECT_EQ(slurp(root_ / "memory/svc/phasekit-1-0/b1/memory.limit_in_bytes"), "1048576");
  EXPECT_EQ(slurp(root_ / "pids/svc/phasekit-1-0/b1/pids.max"), "64");
  EXPECT_EQ(slurp(root_ / "cpu,cpuacct/svc/phasekit-1-0/b1/cpu.cfs_quota_us"), "50000");
  h.close_fds();
}

TEST_F(FakeTree, V2WithDelegatedControllersUsesOneFolder) {
  fs::create_directories(root_ / "unified/svc");
  std::ofstream(root_ / "unified/svc/cgroup.controllers") << "cpuset cpu io memory pids\n";
  const std::string mountinfo = "40 22 0:40 / " + root_.string() + "/unified rw - cgroup2 cgroup2 rw\n";
  BackendLimits limits;
  limits.memory_bytes = 2 << 20;
  limits.processes = 32;
  limits.cpus = 2;
  limits.nice = 10;
  std::string why;
  auto cg = Cgroups::open(mountinfo, "0::/svc\n", "phasekit-2-0", limits, why);
  ASSERT_TRUE(cg) << why;
  EXPECT_EQ(cg->version(), Cgroups::Version::v2);
  EXPECT_EQ(slurp(root_ / "unified/svc/cgroup.subtree_control"), "+memory +pids +cpu");
  EXPECT_EQ(slurp(root_ / "unified/svc/phasekit-2-0/cpu.weight"), "10");
  fs::create_directories(root_ / "unified/svc/phasekit-2-0/b1");
  std::ofstream(root_ / "unified/svc/phasekit-2-0/b1/cgroup.procs");
  CgroupHandles h;
  ASSERT_TRUE(cg->create("b1", h).ok());
  EXPECT_EQ(h.dirs.size(), 1u);
  EXPECT_EQ(slurp(root_ / "unified/svc/phasekit-2-0/b1/memory.max"), "2097152");
  EXPECT_EQ(slurp(root_ / "unified/svc/phasekit-2-0/b1/pids.max"), "32");
  EXPECT_EQ(slurp(root_ / "unified/svc/phasekit-2-0/b1/cpu.max"), "200000 100000");
  h.close_fds();
}

TEST_F(FakeTree, NoHierarchyMeansNoCgroupsAndSaysWhy) {
  std::string why;
  EXPECT_FALSE(Cgroups::open("", "", "phasekit-3-0", BackendLimits{}, why));
  EXPECT_NE(why.find("no cgroup v1 memory hierarchy"), std::string::npos) << why;
  fs::create_directories(root_ / "unified");
  std::ofstream(root_ / "unified/cgroup.controllers") << "\n";
  EXPECT_FALSE(Cgroups::open("40 22 0:40 / " + root_.string() + "/unified rw - cgroup2 cgroup2 rw\n", "0::/\n",
                             "phasekit-3-1", BackendLimits{}, why));
  EXPECT_NE(why.find("offers no memory, pids or cpu controller"), std::string::npos) << why;
}

TEST(Cgroups, NiceWeightsAreTheKernels) {
  EXPECT_EQ(nice_weight(0), 1024u);
  EXPECT_EQ(nice_weight(10), 110u);
  EXPECT_EQ(nice_weight(19), 15u);
  EXPECT_EQ(nice_weight(-20), 88761u);
  EXPECT_EQ(nice_weight(99), 15u);
}

TEST(Cgroups, OnThisMachineABackendsGroupHoldsItsLimitsAndGoesAway) {
  BackendLimits limits;
  limits.memory_bytes = 64 << 20;
  limits.processes = 16;
  std::string why;
  auto cg = Cgroups::open_here(limits, why);
  if (!cg) {
    GTEST_SKIP() << "no cgroup here: " << why;
  }
  CgroupHandles h;
  ASSERT_TRUE(cg->create("probe", h).ok());
  if (cg->limits_processes()) {
    EXPECT_EQ(slurp(fs::path(cg->pids_parent()) / "probe/pids.max"), "16\n");
  }
  if (cg->limits_memory() && cg->version() == Cgroups::Version::v1) {
    EXPECT_EQ(slurp(fs::path(cg->memory_parent()) / "probe/memory.limit_in_bytes"), std::to_string(64 << 20) + "\n");
  }
  h.close_fds();
  EXPECT_TRUE(cg->remove(h));
  for (const auto& d : h.dirs) {
    EXPECT_FALSE(fs::exists(d));
  }
}

}  // namespace
}  // namespace phasekit::backend
