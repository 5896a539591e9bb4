// The acceptance commands of the foundation, run against the real binary.
#include <gtest/gtest.h>

#include <algorithm>

#include "support/run_process.hpp"

namespace phasekit {
namespace {

using test::lines_of;
using test::run_process;

/// The row of `phasekit config` whose first column is `name`.
std::string row_of(const std::string& table, const std::string& name) {
  for (const std::string& line : lines_of(table)) {
    if (line.rfind(name + " ", 0) == 0) {
      return line;
    }
  }
  return "";
}

std::vector<std::string> columns(const std::string& row) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < row.size()) {
    while (i < row.size() && row[i] == ' ') {
      ++i;
    }
    // columns are separated by two or more spaces; "phase preset" has one inside
    std::size_t end = row.find("  ", i);
    if (end == std::string::npos) {
      end = row.size();
    }
    if (end > i) {
      out.push_back(row.substr(i, end - i));
    }
    i = end;
  }
  return out;
}

TEST(PhasekitConfig, Phase2ShowsWarmPoolFromThePhasePreset) {
  const auto r = run_process(PHASEKIT_BIN, {"config"}, {{"PHASE", "2"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto cols = columns(row_of(r.out, "pool"));
  ASSERT_GE(cols.size(), 3u) << r.out;
  EXPECT_EQ(cols[1], "warm");
  EXPECT_EQ(cols[2], "phase preset");
}

TEST(PhasekitConfig, EnvSwitchesThePoolOffWithOriginEnv) {
  const auto r = run_process(PHASEKIT_BIN, {"config"}, {{"PHASE", "2"}, {"ENABLE_CONTAINER_POOL", "false"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto cols = columns(row_of(r.out, "pool"));
  ASSERT_GE(cols.size(), 3u) << r.out;
  EXPECT_EQ(cols[1], "none");
  EXPECT_EQ(cols[2], "env");
}

TEST(PhasekitConfig, PrintConfigFlagIsTheSameAsTheCommand) {
  const auto a = run_process(PHASEKIT_BIN, {"config"}, {{"PHASE", "3"}});
  const auto b = run_process(PHASEKIT_BIN, {"--print-config"}, {{"PHASE", "3"}});
  EXPECT_EQ(a.exit_code, 0);
  EXPECT_EQ(a.out, b.out);
}

TEST(PhasekitConfig, FlagsOverrideEnvironment) {
  const auto r = run_process(PHASEKIT_BIN, {"config", "--port", "4242", "--enable-container-pool"}, {{"PORT", "1"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(columns(row_of(r.out, "port"))[1], "4242");
  EXPECT_EQ(columns(row_of(r.out, "port"))[2], "flag");
  EXPECT_EQ(columns(row_of(r.out, "pool"))[1], "warm");
  EXPECT_EQ(columns(row_of(r.out, "pool"))[2], "flag");
}

struct BadRun {
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  const char* names;
};

TEST(PhasekitConfig, BadValuesExitTwoWithOneLineNamingTheSetting) {
  const std::vector<BadRun> runs{
      {{"config"}, {{"POOL_MIN_SIZE", "ten"}}, "POOL_MIN_SIZE"},
      {{"config"}, {{"POOL_MIN_SIZE", "50"}, {"POOL_MAX_SIZE", "10"}}, "POOL_MIN_SIZE=50 POOL_MAX_SIZE=10"},
      {{"config"}, {{"PHASE", "7"}}, "PHASE=7"},
      {{"config", "--config", "/nonexistent.json"}, {}, "/nonexistent.json"},
      {{"config", "--no-such-flag"}, {}, "no-such-flag"},
      {{"config", "--port"}, {}, "port"},
      {{"frobnicate"}, {}, "unknown command \"frobnicate\""},
  };
  for (const BadRun& run : runs) {
    const auto r = run_process(PHASEKIT_BIN, run.args, run.env);
    EXPECT_EQ(r.exit_code, 2) << run.names;
    EXPECT_TRUE(r.out.empty()) << r.out;
    const auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_NE(lines[0].find(run.names), std::string::npos) << lines[0];
  }
}

TEST(PhasekitHelp, ListsEverySettingWithItsEnvironmentName) {
  const auto r = run_process(PHASEKIT_BIN, {"--help"}, {});
  ASSERT_EQ(r.exit_code, 0);
  std::string flat;  // the help text wraps lines; compare with white space folded
  for (const char c : r.out) {
    if (c == ' ' || c == '\n') {
      if (!flat.empty() && flat.back() != ' ') {
        flat += ' ';
      }
    } else {
      flat += c;
    }
  }
  for (const char* text : {"--pool-min-size", "env POOL_MIN_SIZE;", "env PHASEKIT_PLUGIN_PATH;", "--print-config",
                           "phase 2: true", "plugins"}) {
    EXPECT_NE(flat.find(text), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace phasekit
