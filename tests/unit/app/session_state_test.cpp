// What of a session survives its backend: the shell's report and its parsing, the restore command, the file moves,
// and a round trip through a real sandboxed backend.
#include "phasekit/app/session_state.hpp"
#include "phasekit/app/tool_exec.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <functional>

#include "phasekit/backend/process_backend.hpp"
#include "workspace_bound.hpp"
#include "phasekit/observe/json_logger.hpp"
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

std::string read_all(const std::filesystem::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(SessionState, MoveEntriesAcrossFileSystemsCopiesEachEntryAndFollowsNoLink) {
  // A backend's workspace bounded by BACKEND_WORKSPACE_BYTES is a tmpfs of its own: a rename to the
  // session's folder on the volume fails with EXDEV, and the move copies instead.
  if (::geteuid() != 0) {
    GTEST_SKIP() << "mounting a tmpfs needs root";
  }
  const auto root = std::filesystem::temp_directory_path() / ("phasekit-move-xdev-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root / "a");
  std::filesystem::create_directories(root / "b" / "sub");
  std::filesystem::create_directories(root / "outside");
  ASSERT_TRUE(backend::bound_workspace((root / "a").string(), 1 << 20, -1, -1).ok());
  std::filesystem::create_directories(root / "a" / "sub" / "deeper");
  std::ofstream(root / "a" / "f.txt") << "one";
  std::ofstream(root / "a" / "sub" / "deeper" / "g.txt") << "three";
  std::ofstream(root / "b" / "sub" / "stale.txt") << "old";
  std::ofstream(root / "outside" / "secret") << "host";
  std::filesystem::create_directory_symlink(root / "outside", root / "a" / "link");
  struct stat a {};
  struct stat b {};
  ASSERT_EQ(::stat((root / "a").c_str(), &a), 0);
  ASSERT_EQ(::stat((root / "b").c_str(), &b), 0);
  ASSERT_NE(a.st_dev, b.st_dev);

  const Status moved = move_entries((root / "a").string(), (root / "b").string());
  ASSERT_TRUE(moved.ok()) << moved.message();
  EXPECT_TRUE(std::filesystem::is_empty(root / "a"));
  EXPECT_EQ(read_all(root / "b" / "f.txt"), "one");
  EXPECT_EQ(read_all(root / "b" / "sub" / "deeper" / "g.txt"), "three");
  EXPECT_FALSE(std::filesystem::exists(root / "b" / "sub" / "stale.txt"));  // replaced, not merged
  EXPECT_TRUE(std::filesystem::is_symlink(root / "b" / "link"));           // the link, not what it names
  EXPECT_EQ(read_all(root / "outside" / "secret"), "host");

  // What takes little room in the bounded workspace but a lot once copied: a sparse file (its
  // size in full) and hard links (a whole file each). The move stops at the workspace's own size.
  const auto du = [](const std::filesystem::path& p) {
    std::uint64_t blocks = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(p)) {
      struct stat st {};
      if (::lstat(e.path().c_str(), &st) == 0) {
        blocks += static_cast<std::uint64_t>(st.st_blocks) * 512;
      }
    }
    return blocks;
  };
  for (const bool sparse : {true, false}) {
    std::filesystem::create_directories(root / "c");
    std::filesystem::create_directories(root / "d");
    ASSERT_TRUE(backend::bound_workspace((root / "c").string(), 1 << 20, -1, -1).ok());
    if (sparse) {
      std::ofstream(root / "c" / "hole");
      std::filesystem::resize_file(root / "c" / "hole", std::uintmax_t{256} << 20);
    } else {
      std::ofstream(root / "c" / "f") << std::string(300 << 10, 'x');
      for (int i = 0; i < 20; ++i) {
        std::filesystem::create_hard_link(root / "c" / "f", root / "c" / ("l" + std::to_string(i)));
      }
    }
    const Status over = move_entries((root / "c").string(), (root / "d").string());
    EXPECT_EQ(over.code(), Code::resource_exhausted) << over.message();
    EXPECT_NE(over.message().find("once copied out"), std::string::npos) << over.message();
    EXPECT_LE(du(root / "d"), std::uint64_t{2} << 20) << "the copy went past the bound";
    backend::unbound_workspace((root / "c").string());
    std::filesystem::remove_all(root / "c");
    std::filesystem::remove_all(root / "d");
  }
  backend::unbound_workspace((root / "a").string());
  std::filesystem::remove_all(root);
}


TEST(SessionState, CopyEntriesCopiesFilesFoldersLinksAndModesAndLeavesTheSourceAsItWas) {
  const auto root = std::filesystem::temp_directory_path() / ("phasekit-copy-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root / "from" / "sub" / "deeper");
  std::ofstream(root / "from" / "f.txt") << "one";
  std::ofstream(root / "from" / "sub" / "deeper" / "g.txt") << std::string(200000, 'g');
  ::chmod((root / "from" / "f.txt").c_str(), 0751);
  ::chmod((root / "from" / "sub").c_str(), 0710);
  std::filesystem::create_symlink("sub/deeper/g.txt", root / "from" / "link");
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  ASSERT_TRUE(copy_entries((root / "from").string(), (root / "to").string(), dev, ino).ok());
  EXPECT_NE(ino, 0u);
  EXPECT_EQ(read_all(root / "to" / "f.txt"), "one");
  EXPECT_EQ(read_all(root / "to" / "sub" / "deeper" / "g.txt"), std::string(200000, 'g'));
  EXPECT_EQ(std::filesystem::read_symlink(root / "to" / "link"), "sub/deeper/g.txt");
  struct stat st {};
  ASSERT_EQ(::stat((root / "to" / "f.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0751u);
  ASSERT_EQ(::stat((root / "to" / "sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0710u);
  EXPECT_EQ(read_all(root / "from" / "f.txt"), "one");
  std::uint64_t none_ino = 1;
  EXPECT_TRUE(copy_entries((root / "missing").string(), (root / "to2").string(), dev, none_ino).ok());
  EXPECT_EQ(none_ino, 0u);
  std::filesystem::remove_all(root);
}

TEST(SessionState, CopyEntriesNeverWritesThroughALinkPlantedInTheWorkspace) {
  // The attack: the workspace a session's files are copied into (as root, by the orchestrator or a
  // worker) holds a symlink or a fifo where a file or folder of the session goes, made by a process
  // of the backend's user. Writing through it would overwrite or chmod a host file, fill a host
  // folder, or block the copy for good. Each is refused with an error, the host untouched.
  const auto root = std::filesystem::temp_directory_path() / ("phasekit-copy-attack-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  const auto host = root / "host";
  std::filesystem::create_directories(host / "etc");
  std::ofstream(host / "passwd") << "root:x:0:0";
  ::chmod((host / "passwd").c_str(), 0644);
  struct Plant {
    std::string name;
    std::function<void(const std::filesystem::path&)> plant;  // into the workspace
    std::function<void(const std::filesystem::path&)> session;  // the session's entry of that name
  };
  const std::vector<Plant> plants{
      {"a file over a link to a host file",
       [&](const auto& to) { std::filesystem::create_symlink(host / "passwd", to / "passwd"); },
       [](const auto& from) {
         std::ofstream(from / "passwd") << "the user's text";
         ::chmod((from / "passwd").c_str(), 0777);
       }},
      {"a folder over a link to a host folder",
       [&](const auto& to) { std::filesystem::create_symlink(host / "etc", to / "dir"); },
       [](const auto& from) {
         std::filesystem::create_directories(from / "dir");
         std::ofstream(from / "dir" / "inner") << "the user's text";
       }},
      {"a file over a fifo", [](const auto& to) { ASSERT_EQ(::mkfifo((to / "fifo").c_str(), 0666), 0); },
       [](const auto& from) { std::ofstream(from / "fifo") << "data"; }},
  };
  int n = 0;
  for (const Plant& p : plants) {
    const auto from = root / ("from" + std::to_string(n));
    const auto to = root / ("to" + std::to_string(n++));
    std::filesystem::create_directories(from);
    std::filesystem::create_directories(to);
    p.session(from);
    p.plant(to);
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    const Status s = copy_entries(from.string(), to.string(), dev, ino);
    EXPECT_EQ(s.code(), Code::unavailable) << p.name;
    EXPECT_EQ(read_all(host / "passwd"), "root:x:0:0") << p.name;
    struct stat st {};
    ASSERT_EQ(::stat((host / "passwd").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u) << p.name;
    EXPECT_TRUE(std::filesystem::is_empty(host / "etc")) << p.name;
  }
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
