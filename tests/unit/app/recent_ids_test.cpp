// RecentIds: a session's "sent already?" memory of result ids, bounded, and free while empty.
#include <gtest/gtest.h>

#include <string>

#include "phasekit/recent_ids.hpp"

namespace phasekit {
namespace {

TEST(RecentIds, AnIdSeenOnceIsRefusedTheSecondTime) {
  RecentIds ids(4);
  EXPECT_TRUE(ids.insert("a"));
  EXPECT_FALSE(ids.insert("a"));
  EXPECT_TRUE(ids.contains("a"));
  EXPECT_FALSE(ids.contains("b"));
}

TEST(RecentIds, KeepsTheLatestCapacityIdsAndForgetsTheOldestFirst) {
  RecentIds ids(3);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(ids.insert("id" + std::to_string(i))) << i;
  }
  for (int i = 0; i < 7; ++i) {
    EXPECT_FALSE(ids.contains("id" + std::to_string(i))) << i << " should be forgotten";
  }
  for (int i = 7; i < 10; ++i) {
    EXPECT_TRUE(ids.contains("id" + std::to_string(i))) << i;
    EXPECT_FALSE(ids.insert("id" + std::to_string(i))) << i;
  }
  // A forgotten id is new again, and pushes out the oldest kept one (id7).
  EXPECT_TRUE(ids.insert("id0"));
  EXPECT_FALSE(ids.contains("id7"));
  EXPECT_TRUE(ids.contains("id8"));
}

TEST(RecentIds, ClearForgetsEverythingAndTheRingStartsOver) {
  RecentIds ids(2);
  ids.insert("a");
  ids.insert("b");
  ids.insert("c");
  ids.clear();
  EXPECT_FALSE(ids.contains("b"));
  EXPECT_FALSE(ids.contains("c"));
  EXPECT_TRUE(ids.insert("x"));
  EXPECT_TRUE(ids.insert("y"));
  EXPECT_TRUE(ids.insert("z"));  // x goes
  EXPECT_FALSE(ids.contains("x"));
  EXPECT_TRUE(ids.contains("y"));
  EXPECT_TRUE(ids.contains("z"));
}

TEST(RecentIds, ACapacityOfZeroStillRemembersTheLastId) {
  RecentIds ids(0);
  EXPECT_TRUE(ids.insert("a"));
  EXPECT_FALSE(ids.insert("a"));
  EXPECT_TRUE(ids.insert("b"));
  EXPECT_FALSE(ids.contains("a"));
}

}  // namespace
}  // namespace phasekit
