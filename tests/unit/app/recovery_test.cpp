// The offsets of Socket.IO connection-state recovery and what a client coming back is missing
// (phasekit/app/recovery.hpp), against conversations whose stored order differs from the order
// events went out.
#include "phasekit/app/recovery.hpp"

#include <gtest/gtest.h>

namespace phasekit::app {
namespace {

using json = nlohmann::json;

json request(const std::string& id) { return json{{"role", "user"}, {"callId", id}, {"message", "echo " + id}}; }
json result(const std::string& id) { return json{{"role", "tool"}, {"result", {{"callId", id}, {"exitCode", 0}}}}; }

std::vector<std::string> replayed(const std::vector<json>& entries, const std::string& offset,
                                  std::vector<std::string>* waiting_out = nullptr) {
  const auto o = parse_offset(offset);
  EXPECT_TRUE(o.has_value()) << offset;
  std::vector<std::string> waiting;
  std::vector<std::string> ids;
  for (const std::size_t i : results_to_replay(entries, o.value_or(RecoveryOffset{}), waiting)) {
    ids.push_back(entries[i]["result"]["callId"]);
  }
  if (waiting_out != nullptr) {
    *waiting_out = waiting;
  }
  return ids;
}

TEST(RecoveryOffset, FormatsAndParsesBack) {
  const RecoveryOffset o{'q', "call-b", {"call-a", "call-b"}};
  EXPECT_EQ(format_offset(o), "q:call-b;call-a,call-b");
  const auto back = parse_offset(format_offset(o));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->kind, 'q');
  EXPECT_EQ(back->call_id, "call-b");
  EXPECT_EQ(back->outstanding, (std::vector<std::string>{"call-a", "call-b"}));
  EXPECT_EQ(parse_offset("r:call-a;")->outstanding.size(), 0u);
}

TEST(RecoveryOffset, AnythingElseSaysNothing) {
  for (const char* bad : {"", "r", "r:", "r:;", "x:call-a;", "r:call-a", "r:call a;", "r:call-a;b,", "r:call-a;,b",
                          "r:call-a;b,,c", "q:../x;", "r:call-a;b\nc"}) {
    EXPECT_FALSE(parse_offset(bad).has_value()) << bad;
  }
  EXPECT_FALSE(parse_offset("r:" + std::string(65, 'a') + ";").has_value());  // an id too long
  std::string many = "r:c;";
  for (int i = 0; i <= static_cast<int>(kOffsetOutstandingMost); ++i) {
    many += (i ? "," : "") + std::string("c") + std::to_string(i);
  }
  EXPECT_FALSE(parse_offset(many).has_value());  // more outstanding calls than an offset lists
}

TEST(RecoveryOffset, AnOffsetListsTheNewestOutstandingCallsOnly) {
  RecoveryOffset o{'r', "call-x", {}};
  for (std::size_t i = 0; i < kOffsetOutstandingMost + 5; ++i) {
    o.outstanding.push_back("c" + std::to_string(i));
  }
  const auto back = parse_offset(format_offset(o));
  ASSERT_TRUE(back);
  ASSERT_EQ(back->outstanding.size(), kOffsetOutstandingMost);
  EXPECT_EQ(back->outstanding.front(), "c5");
}

TEST(ResultsToReplay, TheResultsAfterTheLastOneTheClientGot) {
  const std::vector<json> entries{request("a"), result("a"), request("b"), result("b"), request("c"), result("c")};
  EXPECT_EQ(replayed(entries, "r:a;"), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(replayed(entries, "r:c;"), std::vector<std::string>{});
  EXPECT_EQ(replayed(entries, "q:b;b"), (std::vector<std::string>{"b", "c"}));
}

TEST(ResultsToReplay, AResultStoredBeforeARequestTheClientSawStillComes) {
  // a runs; b is asked meanwhile; a's result is stored before b's request but reaches the client
  // after it: the client's last event is b's request, with a still outstanding.
  const std::vector<json> entries{request("a"), result("a"), request("b")};
  std::vector<std::string> waiting;
  EXPECT_EQ(replayed(entries, "q:b;a,b", &waiting), std::vector<std::string>{"a"});
  EXPECT_EQ(waiting, std::vector<std::string>{"b"});  // still running: it comes later
}

TEST(ResultsToReplay, AResultTheClientGotBeforeItsLastEventIsNotSentAgain) {
  // a's result reached the client before b's request, though stored after it.
  const std::vector<json> entries{request("a"), request("b"), result("a"), result("b")};
  EXPECT_EQ(replayed(entries, "q:b;b"), std::vector<std::string>{"b"});
  EXPECT_EQ(replayed(entries, "r:a;b"), std::vector<std::string>{"b"});
}

TEST(ResultsToReplay, AnOffsetOlderThanTheEntriesReplaysItsOutstandingCallsOnly) {
  const std::vector<json> entries{request("b"), result("b"), result("a"), request("c"), result("c")};
  std::vector<std::string> waiting;
  EXPECT_EQ(replayed(entries, "r:gone;a,z", &waiting), std::vector<std::string>{"a"});
  EXPECT_EQ(waiting, std::vector<std::string>{"z"});
}

TEST(ResultsToReplay, UnreadableAndMalformedEntriesAreSkipped) {
  const std::vector<json> entries{json::object(), request("a"), json{{"role", "tool"}, {"result", "not an object"}},
                                  json{{"role", "tool"}, {"result", {{"callId", 7}}}}, json{{"role", 3}},
                                  result("a"), result("a")};
  EXPECT_EQ(replayed(entries, "q:a;a"), std::vector<std::string>{"a"});  // once, though stored twice
}

}  // namespace
}  // namespace phasekit::app
