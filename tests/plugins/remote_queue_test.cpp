// What a process runs follows from what its queue declares (QueueStrategy::remote()), not from its
// name: a queue plugin the core has never heard of (tests/plugins/fixtures/relay_queue.cpp) makes an
// orchestrator keep no backends and lets a worker start, as the redis queue does; the in-process
// queue makes an orchestrator run its tools and a worker refuse to start. Real binaries, started
// here and stopped by their pid.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "support/child_process.hpp"
#include "support/run_process.hpp"

namespace phasekit {
namespace {

using namespace std::chrono_literals;

class RemoteQueue : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("phasekit-remote-queue-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "workspaces");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  [[nodiscard]] std::map<std::string, std::string> env(const std::string& queue) const {
    return {{"PATH", "/usr/local/bin:/usr/bin:/bin"},
            {"PORT", "0"},
            {"ADMIN_PORT", "0"},
            {"AUTH_MODE", "none"},
            {"SANDBOX", "none"},  // what runs tools is the question here, not how they are confined
            {"QUEUE_PLUGIN", queue},
            {"ENABLE_CONTAINER_POOL", "true"},  // pool=warm, unless the process runs no backends
            {"PHASEKIT_PLUGIN_PATH", std::string(PHASEKIT_FIXTURE_DIR) + "/relay:" + PHASEKIT_PLUGIN_DIR},
            {"WORKSPACE_ROOT", (dir_ / "workspaces").string()}};
  }

  /// The first log line of `child` whose msg is `msg`, parsed; null if none came within 20 s.
  static nlohmann::json line_of(test::ChildProcess& child, const std::string& msg) {
    nlohmann::json found;
    test::poll_until(
        [&] {
          for (const std::string& line : test::lines_of(child.log())) {
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_object() && j.value("msg", "") == msg) {
              found = std::move(j);
              return true;
            }
          }
          return !child.running();
        },
        20s);
    return found;
  }

  std::filesystem::path dir_;
};

TEST_F(RemoteQueue, AnOrchestratorKeepsNoBackendsWhenItsQueueOfAnyNameIsRemote) {
  for (const auto& [queue, backend, pool] :
       {std::tuple{"relay", "none", "pool=none"}, std::tuple{"inproc", "process", "pool=warm"}}) {
    SCOPED_TRACE(queue);
    test::ChildProcess orchestrator(ORCHESTRATOR_BIN, {}, env(queue), (dir_ / (std::string(queue) + ".log")).string());
    const nlohmann::json listening = line_of(orchestrator, "server.listening");
    ASSERT_TRUE(listening.is_object()) << orchestrator.log();
    EXPECT_EQ(listening.value("backend", ""), backend) << listening.dump();
    const std::string plugins = listening.value("plugins", "");
    EXPECT_NE(plugins.find(std::string("queue=") + queue), std::string::npos) << plugins;
    EXPECT_NE(plugins.find(pool), std::string::npos) << plugins;
    EXPECT_EQ(orchestrator.stop(SIGTERM), 0) << orchestrator.log();
  }
}

TEST_F(RemoteQueue, AWorkerStartsOnARemoteQueueOfAnyNameAndRefusesAnInProcessOne) {
  {
    test::ChildProcess worker(PHASEKIT_WORKER_BIN, {}, env("relay"), (dir_ / "relay.log").string());
    const nlohmann::json started = line_of(worker, "worker.started");
    ASSERT_TRUE(started.is_object()) << worker.log();
    EXPECT_EQ(started.value("backend", ""), "process") << started.dump();
    EXPECT_NE(started.value("plugins", "").find("queue=relay"), std::string::npos) << started.dump();
    worker.stop(SIGTERM);
  }
  test::ChildProcess worker(PHASEKIT_WORKER_BIN, {}, env("inproc"), (dir_ / "inproc.log").string());
  ASSERT_TRUE(test::poll_until([&] { return !worker.running(); }, 20s)) << worker.log();
  const int status = worker.stop(SIGKILL);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status << " " << worker.log();
  EXPECT_NE(worker.log().find("\"msg\":\"worker.queue_not_remote\""), std::string::npos) << worker.log();
  EXPECT_NE(worker.log().find("a worker takes jobs from a shared queue"), std::string::npos) << worker.log();
}

}  // namespace
}  // namespace phasekit
