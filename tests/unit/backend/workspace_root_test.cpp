// WORKSPACE_ROOT must be this process's alone (finding 8): another user who can write it could swap a
// workspace for a symlink to anywhere, and this process — root, in most deployments — would follow it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "phasekit/backend/shell_backend.hpp"

namespace phasekit::backend {
namespace {

namespace fs = std::filesystem;
constexpr uid_t kNobody = 65534;

class WorkspaceRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("phasekit-wsroot-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_);
  }
  void TearDown() override { fs::remove_all(base_); }

  /// prepare_workspace_root's error, "" when it accepted the folder.
  static std::string refusal(const fs::path& root) {
    try {
      prepare_workspace_root(root.string());
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }

  static std::string fmt_mode(const fs::path& root, mode_t mode) {
    return fmt::format("WORKSPACE_ROOT={}: writable by group or others (mode {:o}); expected chmod go-w",
                       root.string(), mode);
  }

  fs::path base_;
};

TEST_F(WorkspaceRoot, AFolderOfThisUserIsAcceptedAndClosedToOthersWrites) {
  const fs::path root = base_ / "mine";
  EXPECT_EQ(refusal(root), "");  // created
  struct stat st {};
  ASSERT_EQ(::stat(root.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  EXPECT_EQ(refusal(root), "");  // and accepted again
}

TEST_F(WorkspaceRoot, AFolderOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to give a folder to another user";
  }
  const fs::path root = base_ / "theirs";
  fs::create_directories(root);
  ASSERT_EQ(::chown(root.c_str(), kNobody, kNobody), 0);
  EXPECT_EQ(refusal(root), "WORKSPACE_ROOT=" + root.string() +
                               ": owned by uid 65534, not by this process (uid 0); expected a folder of this user's "
                               "that no other user can write");
  std::string ws;
  EXPECT_FALSE(make_workspace(root.string(), "p1-1", -1, -1, ws).ok()) << "checked at every workspace too";
  EXPECT_FALSE(fs::exists(root / "p1-1"));
}

TEST_F(WorkspaceRoot, AFolderOthersMayWriteIsRefused) {
  const fs::path root = base_ / "open";
  fs::create_directories(root);
  for (const mode_t mode : {01777, 0777, 0770, 0702}) {
    ASSERT_EQ(::chmod(root.c_str(), mode), 0);
    EXPECT_EQ(refusal(root), fmt_mode(root, mode)) << std::oct << mode;
  }
}

TEST_F(WorkspaceRoot, ASymlinkAsTheRootIsRefused) {
  fs::create_directories(base_ / "target");
  fs::create_symlink(base_ / "target", base_ / "link");
  EXPECT_NE(refusal(base_ / "link").find("cannot open it as a folder (symlinks are refused)"), std::string::npos);
}

// A workspace name that someone turned into a symlink to a root-only folder: the link goes, the folder
// behind it is neither entered nor given away.
TEST_F(WorkspaceRoot, AWorkspaceSwappedForASymlinkIsReplacedNotFollowed) {
  const fs::path root = base_ / "root";
  ASSERT_EQ(refusal(root), "");
  fs::create_directories(base_ / "root-only");
  fs::permissions(base_ / "root-only", fs::perms::owner_all);
  fs::create_symlink(base_ / "root-only", root / "p1-7");
  std::string ws;
  ASSERT_TRUE(make_workspace(root.string(), "p1-7", static_cast<int>(kNobody), static_cast<int>(kNobody), ws).ok());
  EXPECT_FALSE(fs::is_symlink(root / "p1-7"));
  EXPECT_TRUE(fs::is_directory(root / "p1-7"));
  struct stat st {};
  ASSERT_EQ(::stat((base_ / "root-only").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::geteuid()) << "the folder behind the link was given away";
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

}  // namespace
}  // namespace phasekit::backend
