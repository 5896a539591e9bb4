// `phasekit plugins` against folders holding exactly one fixture.
#include <gtest/gtest.h>

#include "phasekit/plugin/abi.h"
#include "support/run_process.hpp"

namespace phasekit {
namespace {

std::string dir(const std::string& fixture) { return std::string(PHASEKIT_FIXTURE_DIR) + "/" + fixture; }

TEST(PhasekitPlugins, WrongAbiLibrary_IsNamedWithItsVersionAndTheExpectedOne) {
  const auto r = test::run_process(PHASEKIT_BIN, {"plugins"}, {{"PHASEKIT_PLUGIN_PATH", dir("wrong_abi")}});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  const std::string file = dir("wrong_abi") + "/libphasekit_pool_wrong_abi.so";
  bool found = false;
  for (const std::string& line : test::lines_of(r.out)) {
    if (line.rfind(file, 0) == 0) {
      found = true;
      EXPECT_NE(line.find(" 999 "), std::string::npos) << line;
      EXPECT_NE(line.find("ABI version 999, host expects " + std::to_string(PHK_ABI_VERSION)), std::string::npos)
          << line;
    }
  }
  EXPECT_TRUE(found) << r.out;
}

TEST(PhasekitPlugins, GoodLibraryAndBuiltinsAreListedAsOk) {
  const auto r = test::run_process(PHASEKIT_BIN, {"plugins"}, {{"PHASEKIT_PLUGIN_PATH", dir("ok")}});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(dir("ok") + "/libphasekit_pool_ok.so"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ok: fixture: loads fine"), std::string::npos) << r.out;
  for (const char* builtin : {"inproc", "memory"}) {
    EXPECT_NE(r.out.find(builtin), std::string::npos) << builtin;
  }
  EXPECT_EQ(r.out.find("error:"), std::string::npos) << r.out;
}

TEST(PhasekitPlugins, EveryFailureIsReportedAndTheExitCodeSaysSo) {
  std::string path;
  for (const char* f : {"ok", "no_entry", "wrong_kind", "wrong_signature", "name_mismatch"}) {
    path += (path.empty() ? "" : ":") + dir(f);
  }
  const auto r = test::run_process(PHASEKIT_BIN, {"plugins"}, {{"PHASEKIT_PLUGIN_PATH", path}});
  EXPECT_EQ(r.exit_code, 3);
  for (const char* reason : {"does not export phasekit_plugin_entry", "is a queue plugin, expected pool",
                             "built as \"gcc-4", "calls itself \"other\""}) {
    EXPECT_NE(r.out.find(reason), std::string::npos) << reason << "\n" << r.out;
  }
}

TEST(PhasekitPlugins, MissingFolderIsAWarningNotAFailure) {
  const auto r = test::run_process(PHASEKIT_BIN, {"plugins"}, {{"PHASEKIT_PLUGIN_PATH", "/nonexistent/plugins"}});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("warning: cannot read folder"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace phasekit
