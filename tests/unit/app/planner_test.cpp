#include "phasekit/app/inflight_limiter.hpp"
#include "phasekit/app/planner.hpp"

#include <gtest/gtest.h>

namespace phasekit::app {
namespace {

using json = nlohmann::json;

TEST(Planner, StringIsAShellCommandLine) {
  ToolCall call;
  ASSERT_TRUE(DefaultPlanner().plan("ls -la", call).ok());
  EXPECT_EQ(call.tool, "shell");
  EXPECT_EQ(call.args, (json{{"command", "ls -la"}}));
}

TEST(Planner, ObjectIsADirectToolCall) {
  ToolCall call;
  ASSERT_TRUE(DefaultPlanner().plan(json{{"tool", "read_file"}, {"args", {{"path", "a.txt"}}}}, call).ok());
  EXPECT_EQ(call.tool, "read_file");
  EXPECT_EQ(call.args["path"], "a.txt");
  ASSERT_TRUE(DefaultPlanner().plan(json{{"tool", "list_dir"}}, call).ok());
  EXPECT_EQ(call.args, json::object());
}

TEST(Planner, MalformedMessagesAreBadRequests) {
  const std::vector<std::pair<json, std::string>> cases{
      {json(), "message must be a string (a command line) or an object {tool, args}"},
      {json(42), "message must be a string (a command line) or an object {tool, args}"},
      {json::array({"ls"}), "message must be a string (a command line) or an object {tool, args}"},
      {json("   "), "message is empty"},
      {json(std::string("a\0b", 3)), "command line longer than 65536 bytes or with NUL"},
      {json(std::string(70000, 'x')), "command line longer than 65536 bytes or with NUL"},
      {json{{"tool", "rm_rf"}}, "tool must be one of shell, read_file, write_file, list_dir"},
      {json{{"tool", 7}}, "tool must be one of shell, read_file, write_file, list_dir"},
      {json{{"tool", "read_file"}, {"args", "a.txt"}}, "args must be an object"},
      {json{{"tool", "shell"}, {"args", json::object()}}, "shell needs args.command, a string"},
  };
  for (const auto& [message, expected] : cases) {
    ToolCall call;
    const Status s = DefaultPlanner().plan(message, call);
    EXPECT_EQ(s.code(), Code::bad_request) << message.dump().substr(0, 40);
    EXPECT_EQ(s.message(), expected) << message.dump().substr(0, 40);
  }
}

TEST(InflightLimiter, CountsPerUserAndForgetsIdleUsers) {
  InflightLimiter limiter(2);
  EXPECT_TRUE(limiter.try_acquire("a"));
  EXPECT_TRUE(limiter.try_acquire("a"));
  EXPECT_FALSE(limiter.try_acquire("a"));
  EXPECT_TRUE(limiter.try_acquire("b")) << "another user is not disturbed";
  limiter.release("a");
  EXPECT_TRUE(limiter.try_acquire("a"));
  limiter.release("a");
  limiter.release("a");
  limiter.release("a");  // one too many: ignored
  EXPECT_EQ(limiter.in_flight("a"), 0u);
  EXPECT_EQ(limiter.in_flight("b"), 1u);
}

}  // namespace
}  // namespace phasekit::app
