#include "report.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <random>

namespace phasekit::load {
namespace {

Report make_report(std::uint64_t seed, double base_ms, std::uint64_t failures) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> extra(1.0 / 2000.0);
  Report r;
  r.meta = {{"scenario", "s.yml"}, {"generator", "phasekit-load"}};
  r.duration_s = 20;
  r.peak_users = 10;
  for (int k = 0; k < 2; ++k) {
    Interval i;
    i.start_s = 10.0 * k;
    i.end_s = 10.0 * (k + 1);
    i.phase = "p";
    i.users_active = 5;
    for (int n = 0; n < 1000; ++n) {
      i.metrics.record(kResponseTime, static_cast<std::uint64_t>(base_ms * 1000 + extra(rng)));
    }
    i.metrics.add(kVusersCreated, 100);
    i.metrics.add(kEmits, 1000);
    i.metrics.add(kVusersFailed, failures);
    i.metrics.add(kVusersCompleted, 100 - failures);
    r.total.merge(i.metrics);
    r.intervals.push_back(std::move(i));
  }
  return r;
}

TEST(Report, JsonRoundTripKeepsEveryCountAndBucket) {
  const Report r = make_report(1, 10, 2);
  const Report back = Report::from_json(r.to_json());
  EXPECT_DOUBLE_EQ(back.duration_s, r.duration_s);
  ASSERT_EQ(back.intervals.size(), 2u);
  EXPECT_EQ(back.total.counters, r.total.counters);
  EXPECT_EQ(back.total.histograms, r.total.histograms);
  EXPECT_EQ(back.intervals[1].metrics.histograms, r.intervals[1].metrics.histograms);
}

TEST(Report, MergeIsExact) {
  const Report a = make_report(1, 10, 0);
  const Report b = make_report(2, 30, 4);
  const Report m = merge_reports({a, b});
  Histogram all = *a.total.histogram(kResponseTime);
  all.merge(*b.total.histogram(kResponseTime));
  EXPECT_EQ(*m.total.histogram(kResponseTime), all);
  EXPECT_EQ(m.total.counter(kVusersCreated), 400u);
  EXPECT_EQ(m.total.counter(kVusersFailed), 8u);
  EXPECT_EQ(m.peak_users, 20u);
  ASSERT_EQ(m.intervals.size(), 2u);
  EXPECT_EQ(m.intervals[0].users_active, 10u);
  EXPECT_EQ(m.intervals[0].metrics.histogram(kResponseTime)->count(), 2000u);
  EXPECT_EQ(m.meta["generators"], 2);
}

TEST(Report, MalformedReportsAreRefusedWithThePath) {
  nlohmann::json j = make_report(1, 10, 0).to_json();
  j["intervals"][1]["histograms"]["socketio.response_time"]["count"] = 5;
  try {
    (void)Report::from_json(j);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("report.intervals[1].histograms.socketio.response_time"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW((void)Report::from_json(nlohmann::json{{"schema", "other"}}), std::invalid_argument);
  nlohmann::json neg = make_report(1, 10, 0).to_json();
  neg["durationSeconds"] = -1;
  EXPECT_THROW((void)Report::from_json(neg), std::invalid_argument);
}

TEST(Compare, SameRunPasses) {
  const Report a = make_report(1, 10, 0);
  const auto rows = compare_reports(a, a, CompareOptions{});
  for (const auto& r : rows) {
    EXPECT_FALSE(r.regressed) << r.metric;
  }
}

TEST(Compare, SlowerLatencyMoreErrorsAndLessThroughputAreRegressions) {
  const Report base = make_report(1, 10, 0);
  Report slow = make_report(1, 20, 5);  // +10 ms, 5 % errors
  slow.duration_s = 40;                 // half the emit rate
  CompareOptions o;
  const auto rows = compare_reports(base, slow, o);
  std::map<std::string, bool> regressed;
  for (const auto& r : rows) {
    regressed[r.metric] = r.regressed;
  }
  EXPECT_TRUE(regressed["socketio.response_time.p50"]);
  EXPECT_TRUE(regressed["error_rate"]);
  EXPECT_TRUE(regressed["socketio.emit_rate"]);
  EXPECT_NE(render_compare(rows, o).find("REGRESSION"), std::string::npos);
}

TEST(Compare, SmallAbsoluteChangesBelowTheNoiseFloorPass) {
  const Report base = make_report(1, 0.2, 0);
  const Report current = make_report(1, 0.5, 0);  // +150 % but +0.3 ms
  for (const auto& r : compare_reports(base, current, CompareOptions{})) {
    EXPECT_FALSE(r.regressed) << r.metric;
  }
}

TEST(IntervalRule, ShortRunsGetOneSecondIntervalsNeverLess) {
  EXPECT_EQ(auto_interval_s(0), 1);
  EXPECT_EQ(auto_interval_s(0.2), 1);
  EXPECT_EQ(auto_interval_s(10), 1);   // 10 points: a second is the finest grain
  EXPECT_EQ(auto_interval_s(60), 1);
  EXPECT_EQ(auto_interval_s(119), 1);
  EXPECT_EQ(auto_interval_s(-5), 1);
  EXPECT_EQ(auto_interval_s(std::numeric_limits<double>::infinity()), 1);
  EXPECT_EQ(auto_interval_s(std::numeric_limits<double>::quiet_NaN()), 1);
}

TEST(IntervalRule, LongerRunsGetRoundIntervalsAndAtLeastSixtyPoints) {
  EXPECT_EQ(auto_interval_s(120), 2);
  EXPECT_EQ(auto_interval_s(300), 5);
  EXPECT_EQ(auto_interval_s(600), 10);
  EXPECT_EQ(auto_interval_s(1000), 15);  // 16.7 s would be the most: rounded down
  EXPECT_EQ(auto_interval_s(3600), 60);
  EXPECT_EQ(auto_interval_s(86400), 1200);
  EXPECT_EQ(auto_interval_s(7 * 86400), 2 * 3600);  // 2.8 h would be the most
  for (double run_s = 60; run_s < 30 * 86400; run_s *= 1.07) {
    const double interval = auto_interval_s(run_s);
    EXPECT_GE(interval, kMinIntervalSeconds) << run_s;
    EXPECT_GE(run_s / interval, kMinChartPoints) << run_s << " s in intervals of " << interval << " s";
    EXPECT_LT(run_s / interval, 2 * kMinChartPoints + 60) << run_s << ": far more points than needed";
  }
}

TEST(IntervalLine, CarriesTheIntervalsCountersAndPercentiles) {
  const Report r = make_report(1, 10, 2);
  const nlohmann::json line = interval_line(r.intervals[1], "2026-12-05T07:00:00.000Z", 300);
  EXPECT_EQ(line["time"], "2026-12-05T07:00:00.000Z");
  EXPECT_EQ(line["start"], 10.0);
  EXPECT_EQ(line["end"], 20.0);
  EXPECT_EQ(line["step"], 300);
  EXPECT_EQ(line["usersActive"], 5);
  EXPECT_EQ(line["counters"]["vusers.failed"], 2);
  const auto& rt = line["latencyMs"]["socketio.response_time"];
  EXPECT_EQ(rt["count"], 1000);
  EXPECT_GT(rt["p95"].get<double>(), rt["p50"].get<double>());
  EXPECT_FALSE(interval_line(r.intervals[0], "t").contains("step"));
}

TEST(Html, IsSelfContained) {
  Report r = make_report(1, 10, 3);
  r.intervals[0].metrics.add("errors.response_timeout", 3);
  const std::string html = render_html(r);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("response_timeout"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
}

}  // namespace
}  // namespace phasekit::load
