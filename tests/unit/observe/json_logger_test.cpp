#include "phasekit/observe/json_logger.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

namespace phasekit::observe {
namespace {

struct Captured {
  std::mutex mutex;
  std::vector<std::string> lines;
  LogSink::Writer writer() {
    return [this](std::string_view line) {
      const std::lock_guard lock(mutex);
      lines.emplace_back(line);
    };
  }
};

TEST(JsonLogger, WritesOneJsonObjectPerLineWithTimeLevelMsgComponentAndFields) {
  Captured out;
  LogSink sink(out.writer(), LogLevel::info);
  sink.logger("pool.warm").info("backend.ready", {{"id", "b-1"}, {"ms", 12}, {"ratio", 0.5}, {"warm", true},
                                                  {"count", 7u}});
  ASSERT_EQ(out.lines.size(), 1u);
  const std::string& line = out.lines[0];
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "backend.ready");
  EXPECT_EQ(j["component"], "pool.warm");
  EXPECT_EQ(j["id"], "b-1");
  EXPECT_EQ(j["ms"], 12);
  EXPECT_EQ(j["ratio"], 0.5);
  EXPECT_EQ(j["warm"], true);
  EXPECT_EQ(j["count"], 7);
  const std::string time = j["time"];
  EXPECT_EQ(time.size(), std::string("2026-11-23T03:55:20.123Z").size()) << time;
  EXPECT_EQ(time.back(), 'Z');
}

TEST(JsonLogger, LevelsBelowTheSinkLevelAreNotWritten) {
  Captured out;
  LogSink sink(out.writer(), LogLevel::warn);
  Logger& log = sink.logger("x");
  log.debug("no");
  log.info("no");
  log.warn("yes");
  log.error("yes");
  EXPECT_FALSE(log.enabled(LogLevel::info));
  EXPECT_TRUE(log.enabled(LogLevel::error));
  EXPECT_EQ(out.lines.size(), 2u);
  sink.set_level(LogLevel::off);
  log.error("no");
  EXPECT_EQ(out.lines.size(), 2u);
}

TEST(JsonLogger, SecretsPrintAsMask) {
  Captured out;
  LogSink sink(out.writer(), LogLevel::info);
  const Secret token("eyJhbGciOiJIUzI1NiJ9.secret-part");
  sink.logger("auth").info("auth.ok", {{"token", token}});
  ASSERT_EQ(out.lines.size(), 1u);
  EXPECT_EQ(out.lines[0].find("secret-part"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(out.lines[0])["token"], "***");
}

TEST(JsonLogger, HostileTextStaysOneValidLine) {
  Captured out;
  LogSink sink(out.writer(), LogLevel::info);
  const std::string hostile = std::string("quote\" backslash\\ newline\n tab\t nul") + '\0' + " bad\xff\xfe utf8 \xc3\xa9 end";
  sink.logger("x").info(hostile, {{"k\"ey", hostile}});
  ASSERT_EQ(out.lines.size(), 1u);
  EXPECT_EQ(std::count(out.lines[0].begin(), out.lines[0].end(), '\n'), 1);
  const auto j = nlohmann::json::parse(out.lines[0]);  // throws on invalid JSON or UTF-8
  const std::string msg = j["msg"];
  EXPECT_NE(msg.find("quote\" backslash\\ newline\n"), std::string::npos);
  EXPECT_NE(msg.find("\xef\xbf\xbd"), std::string::npos) << "invalid bytes become U+FFFD";
  EXPECT_NE(msg.find("\xc3\xa9"), std::string::npos) << "valid UTF-8 is kept";
}

TEST(JsonLogger, ConcurrentWritersNeverInterleaveLines) {
  Captured out;
  LogSink sink(out.writer(), LogLevel::info);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&sink, t] {
      Logger& log = sink.logger("t" + std::to_string(t));
      for (int i = 0; i < 500; ++i) {
        log.info("line", {{"t", t}, {"i", i}, {"pad", std::string(200, 'x')}});
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  ASSERT_EQ(out.lines.size(), 2000u);
  for (const auto& line : out.lines) {
    EXPECT_NO_THROW((void)nlohmann::json::parse(line));
  }
}

TEST(JsonLogger, WritesToAFileDescriptor) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  {
    LogSink sink(fds[1], LogLevel::info);
    sink.logger("fd").info("hello", {{"n", 1}});
  }
  ::close(fds[1]);
  char buf[512] = {};
  const ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
  ::close(fds[0]);
  ASSERT_GT(n, 0);
  EXPECT_EQ(nlohmann::json::parse(std::string(buf, static_cast<std::size_t>(n)))["msg"], "hello");
}

TEST(JsonLogger, ParseLevelRoundTrips) {
  for (const LogLevel l : {LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error,
                           LogLevel::off}) {
    EXPECT_EQ(parse_level(level_name(l)), l);
  }
}

}  // namespace
}  // namespace phasekit::observe
