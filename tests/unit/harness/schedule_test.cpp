#include "schedule.hpp"

#include <gtest/gtest.h>

namespace phasekit::load {
namespace {

Phase rate(double duration, double r, std::optional<double> ramp = std::nullopt) {
  Phase p;
  p.duration_s = duration;
  p.arrival_rate = r;
  p.ramp_to = ramp;
  return p;
}

TEST(Schedule, ConstantRateIsEvenlySpaced) {
  const Schedule s({rate(60, 50)});
  ASSERT_EQ(s.total(), 3000u);  // 50/s for 60 s, as Artillery counts it
  EXPECT_DOUBLE_EQ(s.at(0).at_s, 0.0);
  EXPECT_DOUBLE_EQ(s.at(1).at_s, 0.02);
  EXPECT_NEAR(s.at(2999).at_s, 59.98, 1e-9);
}

TEST(Schedule, PhasesFollowEachOther) {
  Phase pause;
  pause.pause = true;
  pause.duration_s = 5;
  const Schedule s({rate(10, 1), pause, rate(10, 2)});
  ASSERT_EQ(s.total(), 30u);
  EXPECT_EQ(s.at(9).phase, 0u);
  EXPECT_EQ(s.at(10).phase, 2u);
  EXPECT_DOUBLE_EQ(s.at(10).at_s, 15.0);  // after the pause
  EXPECT_EQ(s.phase_at(12.0), 1u);
  EXPECT_DOUBLE_EQ(s.duration_s(), 25.0);
}

TEST(Schedule, RampArrivalsFollowTheIntegralOfTheRate) {
  const Schedule s({rate(10, 0, 10)});  // 0 → 10/s over 10 s: N(t) = t²/2, 50 arrivals
  ASSERT_EQ(s.total(), 50u);
  EXPECT_NEAR(s.at(2).at_s, 2.0, 1e-9);   // N(2) = 2
  EXPECT_NEAR(s.at(32).at_s, 8.0, 1e-9);  // N(8) = 32
  for (std::uint64_t k = 1; k < s.total(); ++k) {
    ASSERT_LT(s.at(k - 1).at_s, s.at(k).at_s);
  }
}

TEST(Schedule, RampDownStaysInsideThePhase) {
  const Schedule s({rate(10, 10, 0)});
  ASSERT_EQ(s.total(), 50u);
  EXPECT_NEAR(s.at(1).at_s, 0.1, 0.01);  // dense at the start
  EXPECT_LE(s.at(49).at_s, 10.0);
}

TEST(Schedule, ArrivalCountSpreadsEvenly) {
  Phase p;
  p.duration_s = 10;
  p.arrival_count = 4;
  const Schedule s({p});
  ASSERT_EQ(s.total(), 4u);
  EXPECT_DOUBLE_EQ(s.at(3).at_s, 7.5);
  EXPECT_THROW((void)s.at(4), std::out_of_range);
}

}  // namespace
}  // namespace phasekit::load
