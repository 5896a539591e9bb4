// The process backend against the real sandbox (namespaces, cgroups on this machine) and as a plain
// process: the persistent shell, timeouts and shells that die, output framing, reset, and — sandboxed —
// isolation from the host and from the next user, and every limit, each ended cleanly.
#include "phasekit/backend/process_backend.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <sstream>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>

#include "workspace_bound.hpp"
#include "backend_fixtures.hpp"
#include "phasekit/observe/json_logger.hpp"

namespace phasekit::backend {
namespace {

using namespace std::chrono_literals;

/// Processes of this host (sandboxes' included) whose command line is `sleep <secs>`, not zombies.
int sleeping(const std::string& secs) { return test::count_processes({"sleep", secs}); }

/// Prints how many processes the shell sees, counted by its own glob, which starts no process. (A count
/// through `ls /proc | grep` raced itself: ls could read /proc before grep was forked.)
constexpr const char* kCountProcesses = "n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo $n";

/// A sleep duration no other process of this host has.
std::string unique_secs() { return test::unique_on_host(); }

class ProcessBackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  static constexpr int kNice = 7;

  void SetUp() override { make(test::test_limits()); }

  void make(const BackendLimits& limits) {
    root_ = (std::filesystem::temp_directory_path() /
             ("phasekit-backend-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)))
                .string();
    ProcessOptions options;
    options.workspace_root = root_;
    options.sandbox = GetParam() == "namespaces" ? SandboxKind::namespaces : SandboxKind::none;
    options.nice = kNice;
    options.limits = limits;
    if (::geteuid() == 0) {
      options.run_as_uid = 65534;
      options.run_as_gid = 65534;
    }
    driver_ = std::make_unique<ProcessDriver>(ioc_.get_executor(), options, logs_.logger("test"));
    backend_ = create();
    ASSERT_TRUE(backend_);
  }

  std::shared_ptr<ProcessBackend> create() {
    Status status(Code::internal, "not called");
    std::shared_ptr<ProcessBackend> made;
    bool done = false;
    driver_->create([&](Status s, plugin::BackendPtr b) {
      status = std::move(s);
      made = std::static_pointer_cast<ProcessBackend>(b);
      done = true;
    });
    EXPECT_TRUE(run_until([&] { return done; }));
    EXPECT_TRUE(status.ok()) << status.message();
    return made;
  }

  void destroy(const std::shared_ptr<ProcessBackend>& b) {
    const std::vector<std::string> groups = b->cgroup().dirs;
    bool gone = false;
    driver_->destroy(b, [&] { gone = true; });
    EXPECT_TRUE(run_until([&] { return gone; }));
    // The workspace goes on a thread of its own, after.
    EXPECT_TRUE(test::wait_until([&] { return !std::filesystem::exists(b->workspace()); }, 10s)) << b->workspace();
    for (const auto& dir : groups) {
      EXPECT_FALSE(std::filesystem::exists(dir)) << "cgroup left behind: " << dir;
    }
  }

  void TearDown() override {
    if (backend_) {
      destroy(backend_);
      backend_.reset();
    }
    driver_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds deadline = 30s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred() && std::chrono::steady_clock::now() < until) {
      if (ioc_.stopped()) {
        ioc_.restart();
      }
      ioc_.run_one_for(20ms);
    }
    return pred();
  }

  /// A call under way. It is shared with the call's callback, so a test that gives up on it (a failed
  /// ASSERT returns early) leaves nothing on its stack for the callback to write into later.
  struct Pending {
    Status status{Code::internal, "not called"};
    RunResult result;
    bool done = false;
  };

  std::shared_ptr<Pending> start(const std::shared_ptr<ProcessBackend>& b, const std::string& command,
                                 std::chrono::milliseconds timeout, std::size_t max_output = 65536) {
    auto pending = std::make_shared<Pending>();
    b->run(command, timeout, max_output, nullptr, [pending](Status s, RunResult r) {
      pending->status = std::move(s);
      pending->result = std::move(r);
      pending->done = true;
    });
    return pending;
  }

  RunResult run_on(const std::shared_ptr<ProcessBackend>& b, const std::string& command,
                   std::chrono::milliseconds timeout = 10s, std::size_t max_output = 65536,
                   Status* status_out = nullptr) {
    const auto call = start(b, command, timeout, max_output);
    EXPECT_TRUE(run_until([&] { return call->done; }, timeout + 30s)) << command;
    if (status_out != nullptr) {
      *status_out = call->status;
    } else {
      EXPECT_TRUE(call->status.ok()) << call->status.message();
    }
    return call->result;
  }

  RunResult run(const std::string& command, std::chrono::milliseconds timeout = 10s, std::size_t max_output = 65536,
                Status* status_out = nullptr) {
    return run_on(backend_, command, timeout, max_output, status_out);
  }

  Status reset(const std::shared_ptr<ProcessBackend>& b) {
    Status status(Code::internal, "not called");
    bool done = false;
    driver_->reset(b, [&](Status s) {
      status = std::move(s);
      done = true;
    });
    EXPECT_TRUE(run_until([&] { return done; }));
    return status;
  }

  ShellSnapshot snapshot() {
    ShellSnapshot got;
    bool done = false;
    backend_->snapshot([&](ShellSnapshot s) {
      got = std::move(s);
      done = true;
    });
    EXPECT_TRUE(run_until([&] { return done; }));
    return got;
  }

  [[nodiscard]] bool sandboxed() const { return GetParam() == "namespaces"; }

  static inline int counter_ = 0;
  std::string root_;
  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  boost::asio::io_context ioc_;
  std::unique_ptr<ProcessDriver> driver_;
  std::shared_ptr<ProcessBackend> backend_;
};

TEST_P(ProcessBackendTest, RunsACommandAndReportsItsOutputAndExitCode) {
  const RunResult r = run("echo hello; echo oops >&2; (exit 3)");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.output, "hello\noops\n");
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.truncated);
  EXPECT_FALSE(r.shell_restarted);
}

TEST_P(ProcessBackendTest, CdExportsFunctionsAndAliasesLiveOnInTheSessionsShell) {
  EXPECT_EQ(run("mkdir -p sub/dir && cd sub/dir && export GREETING='hi there' && greet() { echo \"$GREETING\"; } "
                "&& alias shout='echo LOUD'")
                .exit_code,
            0);
  const RunResult r = run("pwd; greet; shout; echo $$");
  EXPECT_EQ(r.output.substr(0, r.output.rfind('\n', r.output.size() - 2) + 1),
            backend_->workspace() + "/sub/dir\nhi there\nLOUD\n");
  // One shell for the session: the same process answers every call.
  EXPECT_EQ(run("echo $$").output, r.output.substr(r.output.rfind('\n', r.output.size() - 2) + 1));
}

TEST_P(ProcessBackendTest, StartsInItsWorkspaceWithHomeThere) {
  const RunResult r = run("pwd; echo $HOME; touch made-here");
  EXPECT_EQ(r.output, backend_->workspace() + "\n" + backend_->workspace() + "\n");
  EXPECT_TRUE(std::filesystem::exists(backend_->workspace() + "/made-here"));
}

TEST_P(ProcessBackendTest, ReportsTheShellsStateAfterEveryCall) {
  run("cd /tmp && export PHK_A='x y' PHK_B=$'tab\\there'");
  const ShellSnapshot s = snapshot();
  ASSERT_TRUE(s.known);
  EXPECT_EQ(s.cwd, "/tmp");
  EXPECT_NE(s.exports.find("declare -x PHK_A=\"x y\""), std::string::npos) << s.exports;
  EXPECT_NE(s.exports.find("declare -x PHK_B=$'tab\\there'"), std::string::npos) << s.exports;
}

TEST_P(ProcessBackendTest, ATimeoutKillsEveryProcessAndTheNextCallFindsTheSavedState) {
  run("cd /tmp && export KEEP=1");
  const std::string secs = unique_secs();
  run("setsid sleep " + secs + " >/dev/null 2>&1 & nohup sleep " + secs + " >/dev/null 2>&1 &");
  ASSERT_TRUE(test::wait_until([&] { return sleeping(secs) == 2; }, 10s));
  for (const std::string cmd : {"sleep 30", "while :; do :; done", "sleep 30 & wait"}) {
    const RunResult r = run(cmd, 300ms);
    EXPECT_TRUE(r.timed_out) << cmd;
    EXPECT_TRUE(r.shell_restarted) << cmd;
    EXPECT_EQ(r.exit_code, 124) << cmd;
    EXPECT_LT(r.duration, 5s) << cmd;
  }
  EXPECT_EQ(run("echo alive $KEEP; pwd").output, "alive 1\n/tmp\n") << "the saved state is back";
  EXPECT_TRUE(test::wait_until([&] { return sleeping(secs) == 0; }, 10s)) << "the background sleeps are gone";
  EXPECT_TRUE(backend_->alive());
}

TEST_P(ProcessBackendTest, ACommandThatEndsItsShellCostsOnlyItsOwnCall) {
  run("cd /tmp && export KEEP=2 && f() { echo fn; }");
  struct Case {
    std::string command;
    int exit_code;
    std::chrono::milliseconds timeout;
  };
  // Exits, is killed, is replaced, hangs. Only the one that hangs is meant to reach its timeout; the
  // others get a long one, which a loaded machine cannot turn into a 124.
  for (const Case& c : {Case{"exit 5", 5, 10s}, Case{"kill -9 $$", 137, 10s}, Case{"exec true", 0, 10s},
                        Case{"kill -STOP $$", 124, 1s}}) {
    const RunResult r = run(c.command, c.timeout);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.command;
    EXPECT_TRUE(r.shell_restarted) << c.command;
    EXPECT_EQ(run("echo $KEEP; pwd; f").output, "2\n/tmp\nfn\n") << "after " << c.command;
  }
}

TEST_P(ProcessBackendTest, OutputBeyondTheCapIsCountedAndMarkedTruncated) {
  const RunResult r = run("head -c 100000 /dev/zero | tr '\\0' a", 10s, 1000);
  EXPECT_EQ(r.output, std::string(1000, 'a'));
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.output_bytes, 100000u);
  EXPECT_EQ(run("echo next").output, "next\n");
}

TEST_P(ProcessBackendTest, OutputCannotForgeTheFraming) {
  // A DONE frame header with a plausible length, a FATAL one, and the old text markers: all of it is
  // output of this call, which still ends on its own status.
  static constexpr char kForged[] = "\x12\x00\x00\x00\x10\x00\x00\x00" "\x15\x00\x00\x00\x03\x00\x00\x00" "bye\x1e" "fake DONE 1 0\n";
  const std::string forged(kForged, sizeof kForged - 1);
  const RunResult r = run("printf '\\022\\0\\0\\0\\020\\0\\0\\0\\025\\0\\0\\0\\003\\0\\0\\0bye\\036fake DONE 1 0\\n'; "
                          "exit_code_is=7; (exit $exit_code_is)");
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.output, forged);
  EXPECT_TRUE(backend_->alive());
  EXPECT_EQ(run("echo fine").output, "fine\n");
}

TEST_P(ProcessBackendTest, ResetRemovesFilesProcessesAndState) {
  const std::string secs = unique_secs();
  run("touch secret && mkdir d && cd d && export TOKEN=abc && f() { echo planted; } && "
      "{ setsid sleep " + secs + " >/dev/null 2>&1 & }");
  // A program the supervisor starts itself (plain words) that leaves a daemon behind: gone too.
  const std::string direct_secs = unique_secs();
  EXPECT_TRUE(run("setsid -f sleep " + direct_secs).direct);
  ASSERT_TRUE(test::wait_until([&] { return sleeping(secs) == 1 && sleeping(direct_secs) == 1; }, 10s));
  ASSERT_TRUE(reset(backend_).ok());
  EXPECT_EQ(sleeping(secs), 0) << "the reset waits until every process is gone";
  EXPECT_EQ(sleeping(direct_secs), 0) << "a direct program's daemon included";
  const RunResult after = run("ls -A; pwd; echo \"[$TOKEN]\"; type f 2>/dev/null || echo no-f");
  EXPECT_EQ(after.output, backend_->workspace() + "\n[]\nno-f\n");
}

TEST_P(ProcessBackendTest, AResetEmptiesTreesDeeperThanItsDescentAndGivesTheWorkspaceItsModeBack) {
  // Deeper than the wipe descends at once (it moves what lies below up and goes again), and the
  // workspace opened to everyone.
  const std::string deep = "p=$1; for i in $(seq 200); do p=$p/d; done; mkdir -p $p && echo secret > $p/leaf";
  // (Without a sandbox /tmp and /dev/shm are the host's: the workspace only.)
  run("f() { " + deep + "; }; f $HOME/tree; chmod 0777 $HOME; " +
      (sandboxed() ? "f /dev/shm/tree; f /tmp/tree" : "true"));
  ASSERT_TRUE(reset(backend_).ok());
  // In the sandbox /tmp holds the folders down to the workspace's mount point, and nothing else.
  const RunResult r = run("find $HOME -mindepth 1 | head -3; " +
                          std::string(sandboxed() ? "find /dev/shm /tmp -mindepth 1 ! -path \"$(dirname $HOME)\" "
                                                    "! -path \"$HOME\" | grep -v \"^$(dirname $(dirname $HOME))$\" | head -3; "
                                                  : "") +
                          "stat -c %a $HOME");
  EXPECT_EQ(r.output, "700\n");
}

TEST_P(ProcessBackendTest, ALoopBuiltinRedefinedByTheUserDoesNotBreakTheSessionsShell) {
  // Functions named after what the shell's own loop runs, then a restart from the saved state.
  run("builtin() { echo hijacked; }; :() { echo colon; }; printf() { echo fake; }; true() { return 1; }");
  EXPECT_TRUE(run("exit 3").shell_restarted);
  const RunResult r = run("echo ok; builtin printf '%s\\n' real");
  EXPECT_EQ(r.output, "ok\nreal\n");
  EXPECT_EQ(run("echo again").output, "again\n");
}

TEST_P(ProcessBackendTest, NulInACommandIsRefused) {
  Status status;
  run(std::string("echo a\0b", 8), 1s, 100, &status);
  EXPECT_EQ(status.code(), Code::bad_request);
}

TEST_P(ProcessBackendTest, ABackendKilledFromOutsideFailsItsRequestsAndSaysSo) {
  ASSERT_GT(backend_->pid(), 0);
  ::kill(-backend_->pid(), SIGKILL);
  ::kill(backend_->pid(), SIGKILL);
  Status status;
  run("echo never", 2s, 100, &status);
  EXPECT_EQ(status.code(), Code::unavailable);
  EXPECT_FALSE(backend_->alive());
}

TEST_P(ProcessBackendTest, QueuedCommandsRunInOrder) {
  std::vector<std::string> outputs;
  for (int i = 0; i < 5; ++i) {
    backend_->run("echo " + std::to_string(i), 5s, 100, nullptr,
                  [&](Status, RunResult r) { outputs.push_back(r.output); });
  }
  ASSERT_TRUE(run_until([&] { return outputs.size() == 5; }));
  EXPECT_EQ(outputs, (std::vector<std::string>{"0\n", "1\n", "2\n", "3\n", "4\n"}));
}

TEST_P(ProcessBackendTest, ToolsRunLessFavouredThanTheOrchestrator) {
  errno = 0;
  const int ours = ::getpriority(PRIO_PROCESS, 0);
  ASSERT_EQ(errno, 0);
  // Every process of the backend inherits it, a background one too.
  const RunResult r = run("nice; (nice) & wait");
  const int expected = std::min(19, ours + kNice);
  EXPECT_EQ(r.output, std::to_string(expected) + "\n" + std::to_string(expected) + "\n");
}

TEST_P(ProcessBackendTest, ToolsCannotCreateUserNamespaces) {
  const RunResult r = run("unshare -r id; echo rc=$?; unshare --user true; echo rc=$?");
  EXPECT_NE(r.output.find("rc=1\n"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("uid=0"), std::string::npos) << "a nested user namespace made root: " << r.output;
  EXPECT_EQ(r.output.find("rc=0"), std::string::npos) << r.output;
}

// A plain simple command is started by the supervisor without the shell (phasekit/sandbox/direct.hpp).
// `command NAME` is the same program run by bash itself: the two must see the same world.
TEST_P(ProcessBackendTest, APlainProgramStartedWithoutTheShellSeesWhatTheShellWouldGiveIt) {
  ASSERT_EQ(run("mkdir -p sub && cd sub && touch a b && export PHK_D='x y' && unset PHK_NONE && umask 027 && "
                "ulimit -n 200 && ulimit -S -c 0")
                .exit_code,
            0);
  for (const std::string command :
       {"env", "ls -la", "cat /proc/self/status", "cat /proc/self/limits", "/bin/pwd", "id", "ls nonexistent",
        "stat -c %a%n . a b"}) {
    const RunResult direct = run(command);
    const RunResult shell = run("command " + command);
    EXPECT_TRUE(direct.direct) << command;
    EXPECT_FALSE(shell.direct) << command;
    EXPECT_EQ(direct.exit_code, shell.exit_code) << command;
    std::string want = shell.output;
    std::string got = direct.output;
    if (command == "env") {
      // The same variables, in another order (bash's is that of its hash table).
      auto sorted = [](const std::string& text) {
        std::vector<std::string> lines;
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);) {
          lines.push_back(line);
        }
        std::sort(lines.begin(), lines.end());
        std::string joined;
        for (const auto& l : lines) {
          joined += l + "\n";
        }
        return joined;
      };
      want = sorted(want);
      got = sorted(got);
      EXPECT_NE(got.find("\nPHK_D=x y\n"), std::string::npos) << got;
    }
    if (command == "cat /proc/self/status") {
      // Only what the two processes must share: their mask, credentials, capabilities and seccomp.
      auto keep = [](const std::string& text) {
        std::string kept;
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);) {
          for (const char* field : {"Umask:", "Uid:", "Gid:", "Groups:", "NoNewPrivs:", "Seccomp:", "CapInh:",
                                    "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "SigIgn:", "SigBlk:"}) {
            if (line.starts_with(field)) {
              kept += line + "\n";
            }
          }
        }
        return kept;
      };
      want = keep(want);
      got = keep(got);
      EXPECT_NE(got.find("Umask:\t0027"), std::string::npos) << got;
    }
    EXPECT_EQ(got, want) << command;
  }
  EXPECT_EQ(run("ls nonexistent").exit_code, 2);
}

TEST_P(ProcessBackendTest, WhatTheShellGivesMeaningToStaysWithTheShell) {
  struct Case {
    std::string setup;    // run first, through the shell
    std::string command;  // plain words, yet the shell's to run
    std::string output;
    std::string undo;
  };
  // For each: the command goes to the shell, and gives what bash gives.
  for (const Case& c : {
           Case{"alias ls='echo ALIASED'", "ls", "ALIASED\n", "unalias ls"},
           Case{"cat() { echo FUNCTION; }", "cat x", "FUNCTION\n", "unset -f cat"},
           Case{"trap 'echo FAILED' ERR", "/bin/false", "FAILED\n", "trap - ERR"},
           Case{"set -v", "/bin/echo verbose", "/bin/echo verbose\nverbose\n", "set +v"},
           Case{"f() { :; }; declare -fx f", "env", "", "declare +x -f f"},
           Case{"echo 'echo from-a-script' > script; chmod +x script", "./script", "from-a-script\n", "rm script"},
           Case{"", "no-such-program-anywhere", "", ""},
       }) {
    if (!c.setup.empty()) {
      ASSERT_EQ(run(c.setup).exit_code, 0) << c.setup;
    }
    const RunResult r = run(c.command);
    EXPECT_FALSE(r.direct) << c.command << " after " << c.setup;
    if (c.command == "env") {
      EXPECT_NE(r.output.find("BASH_FUNC_f%%=() {"), std::string::npos) << r.output;
    } else if (c.command == "/bin/false") {
      // (The loop's own `.` fails too, and bash runs the ERR trap again for it: the shell's way.)
      EXPECT_TRUE(r.output.starts_with(c.output)) << r.output;
    } else if (c.command == "no-such-program-anywhere") {
      EXPECT_EQ(r.exit_code, 127);
      EXPECT_NE(r.output.find("command not found"), std::string::npos) << r.output;
    } else {
      EXPECT_EQ(r.output, c.output) << c.command << " after " << c.setup;
    }
    if (!c.undo.empty()) {
      ASSERT_EQ(run(c.undo).exit_code, 0) << c.undo;
    }
    EXPECT_TRUE(run("/bin/true").direct) << "after " << c.undo;
  }
  // A program bash remembers is run from where it remembered it, as bash would.
  ASSERT_EQ(run("mkdir -p bin1 && cp /bin/echo bin1/tool && hash -p $PWD/bin1/tool tool").exit_code, 0);
  const RunResult hashed = run("tool remembered");
  EXPECT_TRUE(hashed.direct);
  EXPECT_EQ(hashed.output, "remembered\n");
}

TEST_P(ProcessBackendTest, ADirectProgramRunsInTheShellsFolderEvenRenamedWithItsLimitsAndNothingElseOpen) {
  ASSERT_EQ(run("mkdir -p old && cd old").exit_code, 0);
  EXPECT_TRUE(run("mv ../old ../new").direct);
  const RunResult pwd = run("/bin/pwd");
  EXPECT_TRUE(pwd.direct);
  EXPECT_EQ(pwd.output, backend_->workspace() + "/new\n");
  // Only stdin (/dev/null), stdout and stderr: fd 3 does not exist in the program.
  const RunResult fds = run("ls /proc/self/fd");
  EXPECT_TRUE(fds.direct);
  EXPECT_EQ(fds.output, "0\n1\n2\n3\n") << "3 is ls's own listing of the folder";
  EXPECT_EQ(run("readlink /proc/self/fd/0").output, "/dev/null\n");
  EXPECT_NE(run("readlink /proc/self/fd/3").exit_code, 0);
  // No way out of the sandbox's privileges.
  const RunResult ns = run("unshare -r id");
  EXPECT_TRUE(ns.direct);
  EXPECT_NE(ns.exit_code, 0);
  EXPECT_EQ(ns.output.find("uid=0"), std::string::npos) << ns.output;
}

TEST_P(ProcessBackendTest, ADirectProgramPastItsTimeoutIsKilledAndTheSessionGoesOn) {
  run("cd /tmp && export KEEP=3");
  const std::string secs = unique_secs();
  const RunResult r = run("sleep " + secs, 300ms);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, 124);
  EXPECT_LT(r.duration, 5s);
  EXPECT_TRUE(test::wait_until([&] { return sleeping(secs) == 0; }, 10s));
  EXPECT_EQ(run("echo $KEEP; pwd").output, "3\n/tmp\n");
  // Killed by a signal: the status bash would give.
  const RunResult killed = run("sh -c kill\\ -9\\ \\$\\$");
  EXPECT_FALSE(killed.direct) << "a backslash is the shell's";
  const RunResult self_killed = run("timeout -s KILL 0.1 sleep 5");
  EXPECT_TRUE(self_killed.direct);
  EXPECT_EQ(self_killed.exit_code, 137);
  EXPECT_TRUE(backend_->alive());
}

/// Whether anything is mounted at `path` in this process's mount namespace.
bool mounted_at(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  const auto parent = std::filesystem::path(path).parent_path().string();
  const auto names = mounts_under(text, parent);
  return std::find(names.begin(), names.end(), std::filesystem::path(path).filename().string()) != names.end();
}

TEST_P(ProcessBackendTest, AUserWhoFillsTheirWorkspaceFillsNothingElse) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "bounding a workspace mounts a tmpfs: root only";
  }
  destroy(backend_);
  backend_.reset();
  driver_.reset();
  BackendLimits limits = test::test_limits();
  limits.workspace_bytes = 8u << 20;
  make(limits);
  ASSERT_EQ(driver_->limits().workspace_by, "tmpfs") << driver_->limits().why_unbounded;
  // The workspace is a file system of its own, of the bound's size: not the volume under root_.
  struct stat ws {};
  struct stat volume {};
  ASSERT_EQ(::stat(backend_->workspace().c_str(), &ws), 0);
  ASSERT_EQ(::stat(root_.c_str(), &volume), 0);
  EXPECT_NE(ws.st_dev, volume.st_dev);
  struct statvfs fs {};
  ASSERT_EQ(::statvfs(backend_->workspace().c_str(), &fs), 0);
  EXPECT_EQ(fs.f_blocks * fs.f_frsize, 8u << 20);

  // Bytes: 20 MiB (under BACKEND_FILE_BYTES, 64 MiB) stop at the bound.
  const RunResult big = run("head -c 20M /dev/zero > big; echo rc=$?; stat -c %s big");
  EXPECT_NE(big.output.find("No space left on device"), std::string::npos) << big.output;
  EXPECT_NE(big.output.find("rc=1\n"), std::string::npos) << big.output;
  // Files: empty ones take no bytes, but inodes, which are bounded too.
  const RunResult many = run("rm -f big; i=0; while [ $i -lt 20000 ] && : > f$i; do i=$((i+1)); done; echo made=$i");
  const auto at = many.output.rfind("made=");
  ASSERT_NE(at, std::string::npos) << many.output;
  EXPECT_NE(many.output.find("No space left on device"), std::string::npos) << many.output;
  const int made = std::atoi(many.output.c_str() + at + 5);
  EXPECT_GT(made, 1000) << many.output;
  EXPECT_LT(made, 20000) << "20,000 empty files fitted in an 8 MiB workspace";

  // Another backend is untouched, and so is this one once reset for the next user.
  const auto other = create();
  ASSERT_TRUE(other);
  EXPECT_EQ(run_on(other, "head -c 4M /dev/zero > f && stat -c %s f").output, "4194304\n");
  destroy(other);
  ASSERT_TRUE(reset(backend_).ok());
  EXPECT_EQ(run("ls | wc -l; head -c 4M /dev/zero > f && stat -c %s f").output, "0\n4194304\n");

  // Destroyed: unmounted, then removed.
  const std::string path = backend_->workspace();
  EXPECT_TRUE(mounted_at(path));
  destroy(backend_);
  backend_.reset();
  EXPECT_FALSE(mounted_at(path));
}

TEST(WorkspaceBound, MountsUnderARootAreReadWithTheKernelsEscapesUndone) {
  const std::string info =
      "22 1 0:21 / /proc rw - proc proc rw\n"
      "90 22 0:50 / /var/ws/p12-abc-1 rw,nosuid,nodev - tmpfs phasekit-workspace rw,size=1024k\n"
      "91 22 0:51 / /var/ws/with\\040space rw - tmpfs x rw\n"
      "92 22 0:52 / /var/ws/p12-abc-1/inner rw - tmpfs x rw\n"
      "93 22 0:53 / /var/wsx/p1-a-1 rw - tmpfs x rw\n"
      "garbage\n";
  EXPECT_EQ(mounts_under(info, "/var/ws"), (std::vector<std::string>{"p12-abc-1", "with space"}));
  EXPECT_EQ(mounts_under(info, "/var/ws/"), (std::vector<std::string>{"p12-abc-1", "with space"}));
}

TEST(WorkspaceBound, AWorkspaceAKilledProcessLeftMountedIsSweptAndALiveOnesIsNot) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "mounting a tmpfs needs root";
  }
  const auto root = std::filesystem::temp_directory_path() / ("phasekit-sweep-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  // A pid that no longer runs: a child that has exited and been reaped.
  const pid_t dead = ::fork();
  if (dead == 0) {
    ::_exit(0);
  }
  ASSERT_GT(dead, 0);
  ::waitpid(dead, nullptr, 0);
  const std::string stale = (root / fmt::format("p{}-oldtag-1", dead)).string();
  const std::string mine = (root / fmt::format("p{}-livetag-1", ::getpid())).string();
  const std::string restarted = (root / fmt::format("p{}-before-1", ::getpid())).string();
  for (const auto& p : {stale, mine, restarted}) {
    std::filesystem::create_directories(p);
    ASSERT_TRUE(bound_workspace(p, 1 << 20, -1, -1).ok());
  }
  const auto ours = [](std::string_view name) { return name.find("-livetag-") != std::string_view::npos; };
  EXPECT_EQ(sweep_stale_workspaces(root.string(), ours), 2u);
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_FALSE(std::filesystem::exists(restarted));
  EXPECT_TRUE(mounted_at(mine));
  unbound_workspace(mine);
  std::filesystem::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Sandboxes, ProcessBackendTest, ::testing::Values("namespaces", "none"),
                         [](const auto& info) { return info.param == "namespaces" ? "sandboxed" : "plain"; });

class SandboxedBackend : public ProcessBackendTest {
 protected:
  void require_cgroups() {
    if (driver_->limits().mechanism == "rlimit") {
      GTEST_SKIP() << "no cgroup can be made here: " << driver_->limits().why_no_cgroups;
    }
  }
};

TEST_P(SandboxedBackend, OnlyTheWorkspaceAndFreshScratchAreWritableAndThereIsNoNetwork) {
  const std::string marker = "phasekit-marker-" + unique_secs();
  const RunResult r = run("touch /etc/phasekit-escape 2>/dev/null && echo wrote-etc; "
                          "ls " + root_ + " | wc -l; "
                          "cat /proc/net/dev | grep -c : ; "
                          "touch /tmp/" + marker + " /var/tmp/" + marker + " /dev/shm/" + marker + " && echo scratch-ok; "
                          "ls /dev | tr '\\n' ' '");
  EXPECT_EQ(r.output.find("wrote-etc"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists("/etc/phasekit-escape"));
  // Other workspaces are hidden: the root shows only this backend's own folder.
  EXPECT_EQ(r.output.substr(0, 2), "1\n") << r.output;
  EXPECT_NE(r.output.find("\n1\n"), std::string::npos) << "only loopback in the network namespace: " << r.output;
  EXPECT_NE(r.output.find("scratch-ok"), std::string::npos) << r.output;
  for (const char* dir : {"/tmp/", "/var/tmp/", "/dev/shm/"}) {
    EXPECT_FALSE(std::filesystem::exists(dir + marker)) << "the sandbox's " << dir << " is its own";
  }
  EXPECT_EQ(r.output.find("kmsg"), std::string::npos) << "a minimal /dev: " << r.output;
}

TEST_P(SandboxedBackend, TheSupervisorsFolderProcSysAndTheWorkspaceMountAreOutOfTheUsersHands) {
  const RunResult r = run(
      "mv /run/phasekit /run/x 2>/dev/null && echo moved; touch /run/x 2>/dev/null && echo wrote-run; "
      "{ echo x > /run/phasekit/cmd; } 2>/dev/null && echo wrote-cmd; "
      "{ echo 1 > /proc/sys/kernel/shmmni; } 2>/dev/null && echo wrote-sysctl; "
      "grep \" $HOME \" /proc/self/mountinfo | grep -c nosuid");
  EXPECT_EQ(r.output, "1\n") << "the workspace is nosuid and nothing else changed";
}

TEST_P(SandboxedBackend, ABuiltinSpawnsNoProcessAndACommandOnlyWhatItRuns) {
  // /proc/loadavg ends with the last pid given out in the reader's PID namespace: the sandbox's own.
  const std::string last = "read -r _ _ _ _ last < /proc/loadavg; echo ${last}";
  auto pid_after = [&](const std::string& command) {
    const RunResult r = run(command + "\n" + last);
    const std::string tail = r.output.substr(r.output.rfind('\n', r.output.size() - 2) + 1);
    int pid = 0;
    std::from_chars(tail.data(), tail.data() + tail.size() - 1, pid);
    return pid;
  };
  const int before = pid_after("true");
  EXPECT_EQ(pid_after("echo hi; cd /tmp; export X=1; cd - >/dev/null"), before) << "builtins spawn nothing";
  EXPECT_EQ(pid_after("ls -la >/dev/null"), before + 1) << "ls is the only process";
  // A plain program is started by the supervisor with no shell in between: one process again.
  const int mid = pid_after("true");
  const RunResult ls = run("ls -la");
  EXPECT_TRUE(ls.direct);
  EXPECT_NE(ls.output.find(" .\n"), std::string::npos) << ls.output;
  EXPECT_EQ(pid_after("true"), mid + 1) << "ls, and nothing to start it";
}

TEST_P(SandboxedBackend, TheSupervisorAndTheHostAreOutOfReach) {
  const RunResult r = run("cat /proc/1/environ >/dev/null 2>&1 || echo environ-denied; "
                          "cat /proc/1/mem >/dev/null 2>&1 || echo mem-denied; "
                          + std::string(kCountProcesses) + "; ls -A /run/phasekit | tr '\\n' ' '; "
                          "echo x > /run/phasekit/cmd 2>/dev/null && echo wrote-cmd");
  EXPECT_NE(r.output.find("environ-denied"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mem-denied"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("wrote-cmd"), std::string::npos) << "the command file is the supervisor's: " << r.output;
  // The supervisor and the shell: nothing of the host.
  EXPECT_NE(r.output.find("\n2\n"), std::string::npos) << r.output;
}

#if defined(__x86_64__)
TEST_P(SandboxedBackend, KernelKeyringsAreRefused) {
  // add_key(2) (248 on x86_64) into the user keyring, which every backend's nobody would share.
  const RunResult r = run("perl -e 'my ($t, $d, $p) = (\"user\", \"phk\", \"secret\"); "
                          "my $r = syscall(248, $t, $d, $p, 6, -4); print \"$r $!\\n\"'");
  EXPECT_EQ(r.output, "-1 Operation not permitted\n");
}
#endif

TEST_P(SandboxedBackend, AForkBombEndsItsCallAndNothingOfItRemainsWhileAnotherBackendKeepsWorking) {
  require_cgroups();
  auto other = create();
  ASSERT_TRUE(other);
  const auto started = std::chrono::steady_clock::now();
  const auto bomb = start(backend_, "bomb() { bomb | bomb & }; bomb; sleep 20", 30s);
  EXPECT_EQ(run_on(other, "echo other user").output, "other user\n");
  ASSERT_TRUE(run_until([&] { return bomb->done; }, 30s));
  EXPECT_TRUE(bomb->status.ok()) << bomb->status.message();
  const RunResult& r = bomb->result;
  destroy(other);
  EXPECT_EQ(r.limit, LimitHit::processes);
  EXPECT_TRUE(r.shell_restarted);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);
  EXPECT_TRUE(backend_->spent());
  // The supervisor and the new shell.
  EXPECT_EQ(run(std::string("echo alive; ") + kCountProcesses).output, "alive\n2\n");
  EXPECT_FALSE(reset(backend_).ok()) << "a spent backend is replaced, not reset";
}

TEST_P(SandboxedBackend, AMemoryHogEndsItsCallWhileAnotherBackendKeepsWorking) {
  require_cgroups();
  auto other = create();
  ASSERT_TRUE(other);
  // tail keeps a line it has not finished: 2 GiB without a newline, against a 256 MiB limit.
  const auto hog = start(backend_, "head -c 2G /dev/zero | tail -n 1 | wc -c", 60s, 4096);
  EXPECT_EQ(run_on(other, "echo other user").output, "other user\n");
  ASSERT_TRUE(run_until([&] { return hog->done; }, 60s));
  EXPECT_TRUE(hog->status.ok()) << hog->status.message();
  EXPECT_EQ(hog->result.limit, LimitHit::memory);
  EXPECT_EQ(run("echo alive").output, "alive\n");
  destroy(other);
}

TEST_P(SandboxedBackend, AMemoryLimitThatTakesTheShellItselfIsReported) {
  require_cgroups();
  // bash holds the whole command substitution: the biggest process when the limit is reached.
  const RunResult r = run("x=$(head -c 400M /dev/zero | tr '\\0' a); echo ${#x}", 60s);
  EXPECT_EQ(r.limit, LimitHit::memory);
  EXPECT_TRUE(r.shell_restarted);
  EXPECT_TRUE(backend_->spent());
  EXPECT_EQ(run("echo alive").output, "alive\n");
}

TEST_P(SandboxedBackend, ACpuHogIsHeldToItsShareWhileAnotherBackendKeepsWorking) {
  require_cgroups();
  if (!driver_->limits().cpu_by.starts_with("cgroup")) {
    GTEST_SKIP() << "no cpu cgroup here";
  }
  // Two spinning processes against a quarter of a CPU, until the cgroup says it held them back (20 s
  // at most): on a machine busy with other tests a fixed second of spinning might not reach the quota.
  destroy(backend_);
  backend_.reset();
  driver_.reset();
  std::filesystem::remove_all(root_);
  BackendLimits limits = test::test_limits();
  limits.cpus = 0.25;
  make(limits);
  std::string cpu_dir;
  for (const auto& dir : backend_->cgroup().dirs) {
    if (std::filesystem::exists(dir + "/cpu.stat")) {
      cpu_dir = dir;
    }
  }
  ASSERT_FALSE(cpu_dir.empty());
  const auto throttled = [&] {
    std::ifstream stat(cpu_dir + "/cpu.stat");
    std::string key;
    long long value = 0;
    while (stat >> key >> value) {
      if (key == "nr_throttled") {
        return value;
      }
    }
    return -1LL;
  };
  EXPECT_EQ(run("true").exit_code, 0);
  const long long before = throttled();  // the shell's own start may have met the quota already
  const auto hog = start(backend_,
                         "(while :; do :; done) & (while :; do :; done) & "
                         "while [ ! -e stop ]; do sleep 0.05; done; kill %1 %2; wait",
                         60s, 4096);
  const bool held = run_until([&] { return throttled() > before; }, 20s);
  std::ofstream(backend_->workspace() + "/stop").put('\n');
  ASSERT_TRUE(run_until([&] { return hog->done; }, 20s));
  EXPECT_TRUE(held) << "two CPUs of demand against a quarter of one were never throttled in 20 s";
  EXPECT_TRUE(hog->status.ok()) << hog->status.message();
  EXPECT_EQ(hog->result.exit_code, 0) << hog->result.output;
  EXPECT_EQ(run("echo alive").output, "alive\n");
}

TEST_P(SandboxedBackend, FilesTmpfsAndOpenFilesAreBounded) {
  const RunResult big = run("head -c 100M /dev/zero > big; echo rc=$?; stat -c %s big");
  EXPECT_NE(big.output.find("File too large"), std::string::npos) << big.output;
  EXPECT_NE(big.output.find("rc=1\n" + std::to_string(64u << 20) + "\n"), std::string::npos) << big.output;
  const RunResult tmp = run("head -c 32M /dev/zero > /tmp/x; echo rc=$?");
  EXPECT_NE(tmp.output.find("No space left on device"), std::string::npos) << tmp.output;
  EXPECT_EQ(run("ulimit -n; ulimit -f").output, "256\n65536\n");  // bash's ulimit -f counts KiB
}

INSTANTIATE_TEST_SUITE_P(Namespaces, SandboxedBackend, ::testing::Values("namespaces"));

}  // namespace
}  // namespace phasekit::backend
