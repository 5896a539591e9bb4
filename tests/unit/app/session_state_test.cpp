// What of a session survives its backend: the shell's report and its parsing, the restore command, the file moves,
// and a round trip through a real sandboxed backend.
#include "app/session_state.hpp"
#include "app/tool_exec.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>

#include "backend/process_backend.hpp"
#include "observe/json_logger.hpp"
#include "support/backend_fixtures.hpp"

namespace phasekit::app {
namespace {

using namespace std::string_literals;

backend::ShellSnapshot snapshot(std::string cwd, std::string exports) {
  return backend::ShellSnapshot{true, std::move(cwd), std::move(exports)};
}

TEST(SessionState, ParsesHomeRelativeCwdAndSkipsTheShellsOwnVariables) {
  const std::string exports =
      "declare -x FOO=\"bar\"\ndeclare -x HOME=\"/w/b1\"\ndeclare -x MULTI=$'a\\nb=c'\ndeclare -x OLDPWD\n"
      "declare -x PWD=\"/w/b1/src/app\"\ndeclare -x SHLVL=\"1\"\n";
  ShellState s;
  ASSERT_TRUE(state_from_snapshot(snapshot("/w/b1/src/app", exports), "/w/b1", s).ok());
  EXPECT_EQ(s.cwd, "src/app");
  ASSERT_EQ(s.env.size(), 2u);
  EXPECT_EQ(s.env[0], (std::pair<std::string, std::string>{"FOO", "bar"}));
  EXPECT_EQ(s.env[1], (std::pair<std::string, std::string>{"MULTI", "a\nb=c"}));
}

TEST(SessionState, CwdAtTheTopIsEmptyAndOutsideTheWorkspaceStaysAbsolute) {
  ShellState s;
  ASSERT_TRUE(state_from_snapshot(snapshot("/w/b1", ""), "/w/b1", s).ok());
  EXPECT_EQ(s.cwd, "");
  ASSERT_TRUE(state_from_snapshot(snapshot("/w/b10/x", ""), "/w/b1", s).ok());  // a sibling sharing the prefix
  EXPECT_EQ(s.cwd, "/w/b10/x");
  ASSERT_TRUE(state_from_snapshot(snapshot("/tmp", ""), "/w/b1", s).ok());
  EXPECT_EQ(s.cwd, "/tmp");
}

TEST(SessionState, AMalformedOrMissingReportIsRefused) {
  ShellState s;
  EXPECT_EQ(state_from_snapshot(backend::ShellSnapshot{}, "/w/b1", s).code(), Code::unavailable);
  EXPECT_EQ(state_from_snapshot(snapshot("/w/b1", "declare -x FOO=\"unterminated"), "/w/b1", s).code(),
            Code::bad_request);
  EXPECT_EQ(state_from_snapshot(snapshot("/w/b1", "export FOO=1"), "/w/b1", s).code(), Code::bad_request);
}

TEST(SessionState, RestoreCommandQuotesEveryValueAndDropsBadNames) {
  const ShellState s{"dir with 'quote'", {{"A", "it's $HOME `x`"}, {"BAD-NAME", "x"}, {"HOME", "/evil"}, {"_ok", ""}}};
  EXPECT_EQ(restore_command(s),
            "cd -- \"$HOME\"/'dir with '\\''quote'\\''' 2>/dev/null || cd -- \"$HOME\"; export A='it'\\''s $HOME `x`'; "
            "export _ok=''");
}

TEST(SessionState, HistoryKeepsTheNewestCommandsUpToItsLimit) {
  std::vector<std::string> history;
  for (int i = 0; i < 5; ++i) {
    remember_command(history, "cmd " + std::to_string(i), 3);
  }
  EXPECT_EQ(history, (std::vector<std::string>{"cmd 2", "cmd 3", "cmd 4"}));
}

TEST(SessionState, ShellCommandOfAPayload) {
  using json = nlohmann::json;
  EXPECT_EQ(shell_command(json{{"tool", "shell"}, {"args", {{"command", "ls -la"}}}}), "ls -la");
  EXPECT_EQ(shell_command(json{{"tool", "shell"}, {"args", {{"command", 42}}}}), "");
  EXPECT_EQ(shell_command(json{{"tool", "shell"}}), "");
  EXPECT_EQ(shell_command(json{{"tool", "read_file"}, {"args", {{"path", "a"}}}}), std::nullopt);
  EXPECT_EQ(shell_command(json::array()), std::nullopt);
}

TEST(SessionState, CheckBeneathRefusesEscapesAndTheRootItself) {
  EXPECT_TRUE(check_beneath("/ws", "/ws/sessions/s-1").ok());
  EXPECT_FALSE(check_beneath("/ws", "/ws").ok());
  EXPECT_FALSE(check_beneath("/ws", "/ws/../etc").ok());
  EXPECT_FALSE(check_beneath("/ws", "/wsx/a").ok());
  EXPECT_FALSE(check_beneath("/ws", "relative/a").ok());
  EXPECT_FALSE(check_beneath("/ws", "").ok());
}

TEST(SessionState, MoveEntriesMovesEverythingAndAMissingSourceIsNothingToMove) {
  const auto root = std::filesystem::temp_directory_path() / ("phasekit-move-" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "a" / "sub");
  std::filesystem::create_directories(root / "b" / "sub");
  std::ofstream(root / "a" / "f.txt") << "one";
  std::ofstream(root / "a" / ".hidden") << "two";
  std::ofstream(root / "a" / "sub" / "g.txt") << "three";
  std::ofstream(root / "b" / "sub" / "stale.txt") << "old";
  ASSERT_TRUE(move_entries((root / "a").string(), (root / "b").string()).ok());
  EXPECT_TRUE(std::filesystem::is_empty(root / "a"));
  EXPECT_TRUE(std::filesystem::exists(root / "b" / ".hidden"));
  EXPECT_TRUE(std::filesystem::exists(root / "b" / "sub" / "g.txt"));
  EXPECT_FALSE(std::filesystem::exists(root / "b" / "sub" / "stale.txt"));  // replaced, not merged
  EXPECT_TRUE(move_entries((root / "missing").string(), (root / "b").string()).ok());
  EXPECT_EQ(move_entries((root / "b").string(), (root / "no" / "such").string()).code(), Code::unavailable);
  std::filesystem::remove_all(root);
}

TEST(SessionState, CaptureThenRestoreOnAnotherBackendGivesTheSameCwdAndExports) {
  boost::asio::io_context ioc;
  observe::LogSink logs(STDERR_FILENO, LogLevel::warn);
  auto env = test::make_backend_env(test::BackendKind::process, ioc.get_executor(), logs.logger("test"));
  ASSERT_TRUE(env.skip_reason.empty()) << env.skip_reason;
  std::vector<backend::ShellBackendPtr> backends;
  for (int i = 0; i < 2; ++i) {
    env.driver->create([&](Status s, plugin::BackendPtr b) {
      ASSERT_TRUE(s.ok()) << s.message();
      backends.push_back(std::dynamic_pointer_cast<backend::ShellBackend>(b));
    });
  }
  while (backends.size() < 2 && ioc.run_one() > 0) {
  }
  ASSERT_EQ(backends.size(), 2u);
  auto run = [&](const backend::ShellBackendPtr& b, const std::string& cmd) {
    std::optional<backend::RunResult> out;
    b->run(cmd, std::chrono::seconds(10), 1 << 20, [](std::string_view) {},
           [&](Status s, backend::RunResult r) {
             EXPECT_TRUE(s.ok()) << s.message();
             out = std::move(r);
           });
    while (!out && ioc.run_one() > 0) {
    }
    return out.value_or(backend::RunResult{});
  };
  run(backends[0], "mkdir -p 'a dir/b' && cd 'a dir/b' && export GREETING=\"it's\"$'\\n'\"multi\" OTHER=2");
  std::optional<ShellState> captured;
  capture_state(backends[0], [&](Status s, ShellState st) {
    ASSERT_TRUE(s.ok()) << s.message();
    captured = std::move(st);
  });
  while (!captured && ioc.run_one() > 0) {
  }
  ASSERT_TRUE(captured);
  EXPECT_EQ(captured->cwd, "a dir/b");
  ASSERT_TRUE(move_entries(backends[0]->workspace(), backends[1]->workspace()).ok());
  std::optional<Status> restored;
  restore_state(backends[1], *captured, [&](Status s) { restored = s; });
  while (!restored && ioc.run_one() > 0) {
  }
  ASSERT_TRUE(restored && restored->ok()) << (restored ? restored->message() : "no answer");
  const auto r = run(backends[1], "printf '%s|%s|%s' \"${PWD#$HOME/}\" \"$GREETING\" \"$OTHER\"");
  EXPECT_EQ(r.output, "a dir/b|it's\nmulti|2");
  for (auto& b : backends) {
    bool gone = false;
    env.driver->destroy(b, [&] { gone = true; });
    while (!gone && ioc.run_one() > 0) {
    }
  }
  env.teardown();
}

}  // namespace
}  // namespace phasekit::app
