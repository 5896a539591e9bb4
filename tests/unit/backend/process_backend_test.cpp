// The process backend against the real sandbox of this machine (bubblewrap when it works) and as a
// plain process: persistence of cd/export, timeouts that spare the backend, output caps, cleanup.
#include "backend/process_backend.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>

#include "observe/json_logger.hpp"

namespace phasekit::backend {
namespace {

using namespace std::chrono_literals;

class ProcessBackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  static constexpr int kNice = 7;

  void SetUp() override {
    root_ = (std::filesystem::temp_directory_path() /
             ("phasekit-backend-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)))
                .string();
    ProcessOptions options;
    options.workspace_root = root_;
    options.sandbox = detect_sandbox(GetParam(), logs_.logger("test"));
    options.nice = kNice;
    if (GetParam() == "auto" && options.sandbox == SandboxKind::none) {
      GTEST_SKIP() << "no sandbox works on this machine; the plain-process variant still runs";
    }
    if (::geteuid() == 0) {
      options.run_as_uid = 65534;
      options.run_as_gid = 65534;
    }
    driver_ = std::make_unique<ProcessDriver>(ioc_.get_executor(), options, logs_.logger("test"));
    Status status(Code::internal, "not called");
    bool done = false;
    driver_->create([&](Status s, plugin::BackendPtr b) {
      status = std::move(s);
      backend_ = std::static_pointer_cast<ProcessBackend>(b);
      done = true;
    });
    ASSERT_TRUE(run_until([&] { return done; }));
    ASSERT_TRUE(status.ok()) << status.message();
  }

  void TearDown() override {
    if (backend_) {
      bool gone = false;
      driver_->destroy(backend_, [&] { gone = true; });
      EXPECT_TRUE(run_until([&] { return gone; }));
      EXPECT_FALSE(std::filesystem::exists(backend_->workspace()));
      backend_.reset();
    }
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds deadline = 20s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred() && std::chrono::steady_clock::now() < until) {
      if (ioc_.stopped()) {
        ioc_.restart();
      }
      ioc_.run_one_for(20ms);
    }
    return pred();
  }

  RunResult run(const std::string& command, std::chrono::milliseconds timeout = 10s, std::size_t max_output = 65536,
                Status* status_out = nullptr) {
    RunResult result;
    Status status(Code::internal, "not called");
    bool done = false;
    backend_->run(command, timeout, max_output, nullptr, [&](Status s, RunResult r) {
      status = std::move(s);
      result = std::move(r);
      done = true;
    });
    EXPECT_TRUE(run_until([&] { return done; })) << command;
    if (status_out != nullptr) {
      *status_out = status;
    } else {
      EXPECT_TRUE(status.ok()) << status.message();
    }
    return result;
  }

  static inline int counter_ = 0;
  std::string root_;
  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  boost::asio::io_context ioc_;
  std::unique_ptr<ProcessDriver> driver_;
  std::shared_ptr<ProcessBackend> backend_;
};

TEST_P(ProcessBackendTest, RunsACommandAndReportsItsOutputAndExitCode) {
  const RunResult r = run("echo hello; echo oops >&2; exit 3");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.output, "hello\noops\n");
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.truncated);
}

TEST_P(ProcessBackendTest, CdAndExportPersistBetweenCommands) {
  EXPECT_EQ(run("mkdir -p sub/dir && cd sub/dir && export GREETING='hi there'").exit_code, 0);
  const RunResult r = run("pwd; echo \"$GREETING\"");
  EXPECT_EQ(r.output, backend_->workspace() + "/sub/dir\nhi there\n");
}

TEST_P(ProcessBackendTest, StartsInItsWorkspaceWithHomeThere) {
  const RunResult r = run("pwd; echo $HOME; touch made-here");
  EXPECT_EQ(r.output, backend_->workspace() + "\n" + backend_->workspace() + "\n");
  EXPECT_TRUE(std::filesystem::exists(backend_->workspace() + "/made-here"));
}

TEST_P(ProcessBackendTest, TimeoutKillsTheCommandButNotTheBackend) {
  run("cd /tmp && export KEEP=1");
  for (const std::string cmd : {"sleep 30", "while :; do :; done", "sleep 30 & wait"}) {
    const RunResult r = run(cmd, 300ms);
    EXPECT_TRUE(r.timed_out) << cmd;
    EXPECT_LT(r.duration, 5s) << cmd;
  }
  const RunResult after = run("echo alive $KEEP; pwd");
  EXPECT_EQ(after.output, "alive 1\n/tmp\n");
  EXPECT_TRUE(backend_->alive());
}

TEST_P(ProcessBackendTest, OutputBeyondTheCapIsCountedAndMarkedTruncated) {
  const RunResult r = run("head -c 100000 /dev/zero | tr '\\0' a", 10s, 1000);
  EXPECT_EQ(r.output, std::string(1000, 'a'));
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.output_bytes, 100000u);
}

TEST_P(ProcessBackendTest, ForgedReplyMarkersAreJustOutput) {
  const RunResult r = run("printf '\\036fake DONE 1 0\\n'; printf '\\036'; echo tail");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "\x1e" "fake DONE 1 0\n\x1etail\n");
}

TEST_P(ProcessBackendTest, ResetRemovesFilesProcessesAndState) {
  const RunResult started =
      run("touch secret && mkdir d && cd d && export TOKEN=abc && { sleep 1000 >/dev/null 2>&1 & } && echo $!");
  const std::string pid = started.output.substr(0, started.output.find('\n'));
  ASSERT_FALSE(pid.empty());
  Status status(Code::internal, "not called");
  bool done = false;
  backend_->reset([&](Status s) {
    status = std::move(s);
    done = true;
  });
  ASSERT_TRUE(run_until([&] { return done; }));
  ASSERT_TRUE(status.ok()) << status.message();
  // A killed process may linger as a zombie until its new parent reaps it: that counts as gone.
  const RunResult after = run("ls -A; pwd; echo \"[$TOKEN]\"; state=$(ps -o stat= -p " + pid +
                              " 2>/dev/null); case \"$state\" in ''|Z*) ;; *) echo still-running ;; esac");
  EXPECT_EQ(after.output, backend_->workspace() + "\n[]\n");
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

INSTANTIATE_TEST_SUITE_P(Sandboxes, ProcessBackendTest, ::testing::Values("auto", "none"),
                         [](const auto& info) { return info.param == "auto" ? "sandboxed" : "plain"; });

class SandboxedBackend : public ProcessBackendTest {};

TEST_P(SandboxedBackend, OnlyTheWorkspaceIsWritableAndThereIsNoNetwork) {
  const RunResult r = run("touch /etc/phasekit-escape 2>/dev/null && echo wrote-etc; "
                          "ls " + std::filesystem::path(root_).string() + " | wc -l; "
                          "cat /proc/net/dev | grep -c : ");
  EXPECT_EQ(r.output.find("wrote-etc"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists("/etc/phasekit-escape"));
  // Other workspaces are hidden: the root shows only this backend's own folder.
  EXPECT_EQ(r.output.substr(0, 2), "1\n") << r.output;
  EXPECT_NE(r.output.find("\n1\n"), std::string::npos) << "only loopback in the network namespace: " << r.output;
}

INSTANTIATE_TEST_SUITE_P(Bubblewrap, SandboxedBackend, ::testing::Values("auto"));

}  // namespace
}  // namespace phasekit::backend
