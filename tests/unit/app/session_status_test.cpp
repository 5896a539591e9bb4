#include "phasekit/app/session_status.hpp"

#include <gtest/gtest.h>

namespace phasekit::app {
namespace {

TEST(SessionStatus, EveryStatusRoundTripsThroughTheStoresText) {
  for (const SessionStatus s : {SessionStatus::active, SessionStatus::detached, SessionStatus::ended}) {
    EXPECT_EQ(parse_session_status(to_string(s)), s) << to_string(s);
  }
  EXPECT_EQ(to_string(SessionStatus::active), "active");
  EXPECT_EQ(to_string(SessionStatus::detached), "detached");
  EXPECT_EQ(to_string(SessionStatus::ended), "ended");
}

TEST(SessionStatus, UnknownTextIsNoStatus) {
  EXPECT_EQ(parse_session_status(""), std::nullopt);
  EXPECT_EQ(parse_session_status("Active"), std::nullopt);
  EXPECT_EQ(parse_session_status("archived"), std::nullopt);
  EXPECT_EQ(parse_session_status(std::string_view("active\0", 7)), std::nullopt);
}

TEST(EndReason, EachReasonHasItsOwnWords) {
  EXPECT_EQ(to_string(EndReason::disconnected), "disconnected");
  EXPECT_EQ(to_string(EndReason::grace_over), "grace period over");
  EXPECT_EQ(to_string(EndReason::shutdown), "server shutting down");
}

}  // namespace
}  // namespace phasekit::app
