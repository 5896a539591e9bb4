// What the supervisor reads before it starts a program without the shell (phasekit/sandbox/direct.hpp): which
// commands are plain, the shell's report as a view, a process's limits. bash itself is the oracle.
#include "phasekit/sandbox/direct.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace phasekit::sandbox {
namespace {

std::vector<std::string> words_of(std::string_view command) {
  std::vector<std::string> words;
  return plain_words(command, words) ? words : std::vector<std::string>{"<refused>"};
}

TEST(PlainWords, SplitsOneSimpleCommandOfPlainWords) {
  using W = std::vector<std::string>;
  EXPECT_EQ(words_of("ls -la"), (W{"ls", "-la"}));
  EXPECT_EQ(words_of("  wc\t-c a.txt  b.txt \n"), (W{"wc", "-c", "a.txt", "b.txt"}));
  EXPECT_EQ(words_of("\n/bin/pwd\n"), (W{"/bin/pwd"}));
  EXPECT_EQ(words_of("./build.sh --jobs=2 -o out/a,b:c+d@e%f"), (W{"./build.sh", "--jobs=2", "-o", "out/a,b:c+d@e%f"}));
  EXPECT_EQ(words_of("git log -3"), (W{"git", "log", "-3"}));
}

TEST(PlainWords, RefusesEverythingTheShellGivesAMeaningTo) {
  for (const std::string& command : std::vector<std::string>{
           "", " \n\t", "echo 'a'", "echo \"a\"", "echo $HOME", "echo ${A}", "echo `id`", "echo $(id)", "ls; id",
        "ls && id", "ls || id", "ls | wc", "ls &", "ls > f", "ls < f", "ls 2>&1", "ls *", "ls ?", "ls [ab]",
        "ls ~", "ls ~/x", "ls #c", "ls {a,b}", "ls \\n", "ls\nid", "A=1 ls", "A=1", "%1", "-x", "!ls", "(ls)",
        "ls\r", "ls é", "ls \x01", std::string("ls \0x", 5), "ls !x", "ls a^b"}) {
    EXPECT_EQ(words_of(command), std::vector<std::string>{"<refused>"}) << command;
  }
  // Bounded: a command over 4 KiB, or of more than 256 words.
  EXPECT_EQ(words_of("ls " + std::string(4094, 'a')).size(), 1u);
  std::string many = "ls";
  for (int i = 0; i < 256; ++i) {
    many += " a";
  }
  EXPECT_EQ(words_of(many).front(), "<refused>");
}

TEST(ShellWord, KnowsReservedWordsAndBuiltins) {
  for (const char* w : {"cd", "echo", "export", "[[", "time", "if", "source", ".", "exec", "ulimit", "kill"}) {
    EXPECT_TRUE(shell_word(w)) << w;
  }
  for (const char* w : {"ls", "env", "cat", "/bin/echo", "timeout"}) {
    EXPECT_FALSE(shell_word(w)) << w;
  }
}

/// What the supervisor's loop reports, from a real bash after `setup`: the three fields.
struct Report {
  std::string exports, functions, settings;
};
Report bash_report(const std::string& setup) {
  const std::string dir = "/tmp/phk-direct-test-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  {
    std::ofstream script(dir + "/script");
    script << setup << "\nbuiltin declare -px > " << dir << "/e; { builtin declare -f; builtin alias -p; } > " << dir
           << "/f; { builtin printf '%s\\n' \"$-\"; builtin umask; builtin trap -p; builtin hash -l; } > " << dir
           << "/s 2>/dev/null\n";
  }
  EXPECT_EQ(std::system(("bash " + dir + "/script >/dev/null 2>&1").c_str()), 0) << setup;
  auto slurp = [&](const std::string& name) {
    std::ifstream f(dir + "/" + name);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  };
  Report r{slurp("e"), slurp("f"), slurp("s")};
  std::filesystem::remove_all(dir);
  return r;
}

ShellView view_after(const std::string& setup) {
  const Report r = bash_report(setup);
  return read_shell_view(r.exports, r.functions, r.settings);
}

TEST(ShellView, ReadsWhatBashReportsOfItself) {
  const ShellView v = view_after(
      "export PATH=/usr/bin:/bin PHK_A=$'x y\\nz'; alias ll='ls -l'; f() { :; }; function g { :; }; umask 027; "
      "hash -p /bin/cat kitty; trap '' USR1");
  ASSERT_TRUE(v.usable) << v.why;
  EXPECT_EQ(v.path, (std::vector<std::string>{"/usr/bin", "/bin"}));
  EXPECT_FALSE(v.path_relative);
  EXPECT_NE(std::find(v.environment.begin(), v.environment.end(), "PHK_A=x y\nz"), v.environment.end());
  EXPECT_NE(std::find(v.environment.begin(), v.environment.end(), "PATH=/usr/bin:/bin"), v.environment.end());
  EXPECT_TRUE(v.shadows.contains("ll"));
  EXPECT_TRUE(v.shadows.contains("f"));
  EXPECT_TRUE(v.shadows.contains("g"));
  EXPECT_FALSE(v.shadows.contains("ls"));
  ASSERT_TRUE(v.hashed.contains("kitty"));
  EXPECT_EQ(v.hashed.at("kitty"), "/bin/cat");
  EXPECT_EQ(v.umask, 027);
  EXPECT_EQ(v.ignored, std::vector<int>{SIGUSR1});
  EXPECT_TRUE(view_after("export PATH=/bin::bin").path_relative);
}

TEST(ShellView, WhatASpawnCannotHonourMakesItUnusable) {
  for (const std::string setup :
       {"f() { :; }; export -f f", "set -e", "set -v", "set -k", "trap 'echo x' USR1", "trap 'echo x' ERR",
        "trap '' ERR", "trap 'echo x' EXIT", "trap '' RTMIN+3", "unset PATH", "export -n PATH",
        "declare -nx REF=PATH"}) {
    const ShellView v = view_after(setup);
    EXPECT_FALSE(v.usable) << setup;
    EXPECT_FALSE(v.why.empty()) << setup;
  }
  EXPECT_TRUE(view_after("set -u -f -o pipefail").usable) << "options that do not change one simple command";
}

TEST(ShellView, AMalformedReportIsNotUsable) {
  const Report good = bash_report("true");
  ASSERT_TRUE(read_shell_view(good.exports, good.functions, good.settings).usable);
  for (const std::string& settings : std::vector<std::string>{"", "hBc\n", "hBc\n999\n", "hBc\n02x\n", "hBc\n0022\nbuiltin hash -p a b c\n"}) {
    EXPECT_FALSE(read_shell_view(good.exports, good.functions, settings).usable) << settings;
  }
  EXPECT_FALSE(read_shell_view("declare -x A=unquoted\n", good.functions, good.settings).usable);
}

TEST(ProcLimits, ReadsThisProcesssOwnAsGetrlimitSaysAndRefusesOtherText) {
  std::ifstream f("/proc/self/limits");
  std::stringstream s;
  s << f.rdbuf();
  const std::string text = s.str();
  std::array<rlimit, RLIM_NLIMITS> limits{};
  ASSERT_TRUE(parse_proc_limits(text, limits)) << text;
  for (int r = 0; r < RLIM_NLIMITS; ++r) {
    rlimit want{};
    ASSERT_EQ(::getrlimit(static_cast<__rlimit_resource>(r), &want), 0);
    EXPECT_EQ(limits[r].rlim_cur, want.rlim_cur) << r;
    EXPECT_EQ(limits[r].rlim_max, want.rlim_max) << r;
  }
  const std::size_t last_row = text.rfind('\n', text.size() - 2) + 1;
  const std::string no_last = text.substr(0, last_row);
  std::string swapped = text;
  swapped.replace(swapped.find("Max cpu time"), 12, "Max cpu tame");
  std::string word = text;
  word.replace(word.find("unlimited"), 9, "unlimitex");
  std::string soft_over_hard = text;
  const std::size_t files = soft_over_hard.find("Max open files");
  soft_over_hard.replace(files + 26, 20, "99999999999         ");
  for (const std::string& bad : {std::string(), no_last, swapped, word, soft_over_hard, text + text.substr(last_row)}) {
    EXPECT_FALSE(parse_proc_limits(bad, limits)) << bad;
  }
}

}  // namespace
}  // namespace phasekit::sandbox
