#include "thresholds.hpp"

#include <gtest/gtest.h>

namespace phasekit::load {
namespace {

MetricSet sample() {
  MetricSet m;
  for (std::uint64_t ms = 1; ms <= 100; ++ms) {
    m.record(kResponseTime, ms * 1000);  // 1..100 ms
  }
  m.add(kVusersCreated, 200);
  m.add(kVusersFailed, 3);
  m.add(kEmits, 500);
  m.add("errors.response_timeout", 3);
  return m;
}

TEST(Slo, ShorthandUnitsAndPercent) {
  const MetricCatalog c;
  const auto t = parse_slo("p95<200ms, errors<1%, p99<=1s, socketio.emit_rate>10", c);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].metric, "socketio.response_time.p95");
  EXPECT_DOUBLE_EQ(t[0].value, 200);
  EXPECT_EQ(t[1].metric, "error_rate");
  EXPECT_EQ(t[2].op, Op::le);
  EXPECT_DOUBLE_EQ(t[2].value, 1000);
  EXPECT_EQ(t[3].op, Op::gt);
}

TEST(Slo, MalformedTermsAreErrors) {
  const MetricCatalog c;
  for (const char* bad : {"", "p95", "p95<fast", "latency<3", "errors<3ms", "p95<3%", "vusers.failed<2s", "p95<<3"}) {
    EXPECT_THROW(parse_slo(bad, c), std::invalid_argument) << bad;
  }
}

TEST(Thresholds, EvaluateAgainstMeasuredValues) {
  const MetricCatalog c;
  const MetricSet m = sample();
  const auto results = evaluate(parse_slo("p50<=51ms,p95<90ms,errors<2%,errors<1%", c), m, 10.0);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].ok);   // p50 is 50 ms
  EXPECT_FALSE(results[1].ok);  // p95 is 95 ms
  EXPECT_NEAR(*results[1].actual, 95, 1);
  EXPECT_TRUE(results[2].ok);   // 1.5 %
  EXPECT_FALSE(results[3].ok);
  EXPECT_FALSE(all_ok(results));
}

TEST(Thresholds, AMetricWithoutSamplesFails) {
  const MetricCatalog c;
  const auto results = evaluate(parse_slo("p95<1000ms", c), MetricSet{}, 1.0);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].actual.has_value());
  EXPECT_FALSE(results[0].ok);
}

TEST(Thresholds, K6Expressions) {
  const MetricCatalog c({"message"});
  const MetricSet m = sample();
  EXPECT_EQ(parse_k6_threshold("socketio.response_time", "p(99.9)<5", c).metric, "socketio.response_time.p999");
  EXPECT_EQ(parse_k6_threshold("socketio.response_time.message", "avg<5", c).metric,
            "socketio.response_time.message.mean");
  EXPECT_EQ(parse_k6_threshold("socketio.emit", "rate>10", c).metric, "socketio.emit.rate");
  EXPECT_EQ(parse_k6_threshold("errors.response_timeout", "count<1", c).metric, "errors.response_timeout");
  const auto r = evaluate({parse_k6_threshold("socketio.emit", "rate>=50", c),
                           parse_k6_threshold("errors.response_timeout", "count<1", c)}, m, 10.0);
  EXPECT_TRUE(r[0].ok);   // 500 emits in 10 s
  EXPECT_FALSE(r[1].ok);  // 3 timeouts
  EXPECT_THROW(parse_k6_threshold("socketio.response_time.nope", "p(95)<1", c), std::invalid_argument);
  EXPECT_THROW(parse_k6_threshold("socketio.response_time", "p95<1", c), std::invalid_argument);
}

TEST(Catalog, KnowsChannelMetricsOnlyForTheScenariosChannels) {
  const MetricCatalog c({"message"});
  EXPECT_FALSE(c.check("socketio.response_time.message.p95").has_value());
  EXPECT_TRUE(c.check("socketio.response_time.other.p95").has_value());
  EXPECT_TRUE(c.is_time("socketio.connect_time.p99"));
  EXPECT_FALSE(c.is_time("socketio.connect_time.count"));
  EXPECT_FALSE(c.is_time("error_rate"));
}

}  // namespace
}  // namespace phasekit::load
