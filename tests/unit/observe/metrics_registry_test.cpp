#include "phasekit/observe/metrics_registry.hpp"

#include <gtest/gtest.h>

#include <array>
#include <stdexcept>

namespace phasekit::observe {
namespace {

TEST(MetricsRegistry, RendersCountersGaugesAndLabelsInPrometheusText) {
  MetricsRegistry r;
  const std::array<Label, 1> ok{{{"outcome", "ok"}}};
  const std::array<Label, 1> err{{{"outcome", "error"}}};
  r.counter("phasekit_jobs_total", "Jobs by outcome.", ok).inc();
  r.counter("phasekit_jobs_total", "Jobs by outcome.", ok).inc(2);
  r.counter("phasekit_jobs_total", "Jobs by outcome.", err).inc();
  r.gauge("phasekit_sessions", "Connected sessions.").set(5);
  r.gauge("phasekit_sessions", "Connected sessions.").add(-2);
  EXPECT_EQ(r.render(),
            "# HELP phasekit_jobs_total Jobs by outcome.\n"
            "# TYPE phasekit_jobs_total counter\n"
            "phasekit_jobs_total{outcome=\"ok\"} 3\n"
            "phasekit_jobs_total{outcome=\"error\"} 1\n"
            "# HELP phasekit_sessions Connected sessions.\n"
            "# TYPE phasekit_sessions gauge\n"
            "phasekit_sessions 3\n");
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithSumAndCount) {
  MetricsRegistry r;
  const std::array<double, 3> bounds{0.001, 0.01, 0.1};
  Histogram& h = r.histogram("phasekit_acquire_seconds", "Backend acquisition time.", bounds);
  h.observe(0.0005);
  h.observe(0.001);  // le is inclusive
  h.observe(0.05);
  h.observe(3);
  EXPECT_EQ(r.render(),
            "# HELP phasekit_acquire_seconds Backend acquisition time.\n"
            "# TYPE phasekit_acquire_seconds histogram\n"
            "phasekit_acquire_seconds_bucket{le=\"0.001\"} 2\n"
            "phasekit_acquire_seconds_bucket{le=\"0.01\"} 2\n"
            "phasekit_acquire_seconds_bucket{le=\"0.1\"} 3\n"
            "phasekit_acquire_seconds_bucket{le=\"+Inf\"} 4\n"
            "phasekit_acquire_seconds_sum 3.0515\n"
            "phasekit_acquire_seconds_count 4\n");
}

TEST(MetricsRegistry, LabelValuesAreEscaped) {
  MetricsRegistry r;
  const std::array<Label, 1> l{{{"event", "a\"b\\c\nd"}}};
  r.counter("phasekit_events_total", "Events.", l).inc();
  EXPECT_NE(r.render().find(R"(phasekit_events_total{event="a\"b\\c\nd"} 1)"), std::string::npos) << r.render();
}

TEST(MetricsRegistry, SameNameAndLabelsIsTheSameInstrument) {
  MetricsRegistry r;
  EXPECT_EQ(&r.counter("phasekit_x_total", "x"), &r.counter("phasekit_x_total", "x"));
}

TEST(MetricsRegistry, ConflictingRegistrationsAndBadNamesThrow) {
  MetricsRegistry r;
  r.counter("phasekit_x_total", "x");
  EXPECT_THROW(r.gauge("phasekit_x_total", "x"), std::invalid_argument);
  const std::array<Label, 1> l{{{"kind", "a"}}};
  EXPECT_THROW(r.counter("phasekit_x_total", "x", l), std::invalid_argument);
  EXPECT_THROW(r.counter("9bad", "x"), std::invalid_argument);
  EXPECT_THROW(r.counter("has-dash", "x"), std::invalid_argument);
  const std::array<Label, 1> le{{{"le", "1"}}};
  EXPECT_THROW(r.histogram("phasekit_h_seconds", "h", MetricsRegistry::event_buckets(), le), std::invalid_argument);
  const std::array<double, 2> unsorted{1, 0.5};
  EXPECT_THROW(r.histogram("phasekit_u_seconds", "h", unsorted), std::invalid_argument);
}

TEST(MetricsRegistry, CountersIgnoreNegativeIncrements) {
  MetricsRegistry r;
  Counter& c = r.counter("phasekit_c_total", "c");
  c.inc(-5);
  c.inc(1);
  EXPECT_NE(r.render().find("phasekit_c_total 1\n"), std::string::npos);
}

}  // namespace
}  // namespace phasekit::observe
