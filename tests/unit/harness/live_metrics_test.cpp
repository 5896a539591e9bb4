// What a scrape of --metrics-port sees: the Prometheus text of a snapshot, and snapshots that a
// publisher replaces while readers render them. promtool checks the real endpoint's text in
// tests/interop/harness_live.test.js.
#include "live_metrics.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

namespace phasekit::load {
namespace {

/// "name{labels} value" lines → value (the comment lines checked for form on the way).
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  const std::regex sample(R"re(^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) ([-+0-9.eInf]+)$)re");
  const std::regex comment(R"re(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)re");
  while (std::getline(in, line)) {
    std::smatch m;
    if (line.starts_with("#")) {
      EXPECT_TRUE(std::regex_match(line, comment)) << line;
      continue;
    }
    EXPECT_TRUE(std::regex_match(line, m, sample)) << line;
    if (!m.empty()) {
      out[m[1]] = std::stod(m[3]);
    }
  }
  return out;
}

TEST(Exposition, CountersHistogramsAndGaugesWithTheirNames) {
  LiveSnapshot s;
  s.running = true;
  s.users_active = 7;
  s.phase = "ramp \"up\"";
  s.total.add(kVusersCreated, 12);
  s.total.add("errors.response_timeout", 3);
  for (std::uint64_t us : {50, 90, 2000, 150000, 150000, 4000000}) {
    s.total.record(kResponseTime, us);
  }
  s.total.record("socketio.response_time.tool:approval", 3000);
  const std::string text = render_prometheus(s, {"s.yml", "http://127.0.0.1:1"});
  const auto v = samples(text);
  EXPECT_EQ(v.at("phasekit_load_vusers_created_total"), 12);
  EXPECT_EQ(v.at("phasekit_load_vusers_completed_total"), 0);  // known counters are there from the start
  EXPECT_EQ(v.at(R"(phasekit_load_errors_total{code="response_timeout"})"), 3);
  EXPECT_EQ(v.at("phasekit_load_vusers_active"), 7);
  EXPECT_EQ(v.at(R"(phasekit_load_phase_info{phase="ramp \"up\""})"), 1);
  EXPECT_EQ(v.at(R"(phasekit_load_info{scenario="s.yml",target="http://127.0.0.1:1"})"), 1);
  // Cumulative buckets in seconds: 50 and 90 µs ≤ 100 µs, 2 ms ≤ 2.5 ms, 150 ms ≤ 0.15 s, 4 s ≤ 5 s.
  const std::string rt = "phasekit_load_socketio_response_time_seconds";
  EXPECT_EQ(v.at(rt + R"(_bucket{le="0.0001"})"), 2);
  EXPECT_EQ(v.at(rt + R"(_bucket{le="0.001"})"), 2);
  EXPECT_EQ(v.at(rt + R"(_bucket{le="0.0025"})"), 3);
  EXPECT_EQ(v.at(rt + R"(_bucket{le="0.1"})"), 3);
  EXPECT_EQ(v.at(rt + R"(_bucket{le="0.15"})"), 5);
  EXPECT_EQ(v.at(rt + R"(_bucket{le="2.5"})"), 5);
  EXPECT_EQ(v.at(rt + R"(_bucket{le="5"})"), 6);
  EXPECT_EQ(v.at(rt + R"(_bucket{le="+Inf"})"), 6);
  EXPECT_EQ(v.at(rt + "_count"), 6);
  EXPECT_DOUBLE_EQ(v.at(rt + "_sum"), 4.30214);
  EXPECT_EQ(v.at(R"(phasekit_load_socketio_channel_response_time_seconds_count{channel="tool:approval"})"), 1);
  EXPECT_EQ(v.at("phasekit_load_socketio_connect_time_seconds_count"), 0);  // known histograms too
  // Buckets never decrease.
  double previous = 0;
  for (const double le : exposition_buckets_s()) {
    const double n = v.at(fmt::format("{}_bucket{{le=\"{}\"}}", rt, le));
    EXPECT_GE(n, previous) << le;
    previous = n;
  }
  // One HELP and TYPE per family.
  EXPECT_EQ(text.find("# TYPE phasekit_load_errors_total counter"),
            text.rfind("# TYPE phasekit_load_errors_total counter"));
}

TEST(LiveMetrics, StepsAddUpSoCountersNeverGoBack) {
  LiveMetrics live({"s.yml", "t"});
  EXPECT_FALSE(live.snapshot()->running);
  MetricSet first;
  first.add(kEmits, 10);
  live.begin_step(100);
  live.begin_run();
  MetricSet pending;
  pending.add(kEmits, 4);
  live.publish(MetricSet(), pending, 3, 0.5, "ramp");
  EXPECT_EQ(live.snapshot()->total.counter(kEmits), 4u);
  EXPECT_EQ(live.snapshot()->step_users, 100u);
  EXPECT_TRUE(live.snapshot()->running);
  live.end_run(first);
  EXPECT_EQ(live.snapshot()->total.counter(kEmits), 10u);
  EXPECT_EQ(live.snapshot()->runs_completed, 1u);
  live.begin_step(200);
  live.begin_run();
  live.publish(first, pending, 5, 1.5, "hold");  // the second step so far: 10 + 4
  EXPECT_EQ(live.snapshot()->total.counter(kEmits), 24u);
  EXPECT_EQ(live.snapshot()->phase, "hold");
}

TEST(LiveMetrics, ReadersRenderWhileThePublisherReplacesSnapshots) {
  LiveMetrics live({"s.yml", "t"});
  live.begin_run();
  std::atomic<bool> stop{false};
  std::atomic<int> renders{0};
  std::thread reader([&] {
    double last = 0;
    while (!stop.load()) {
      const auto v = samples(live.render());
      const double emits = v.at("phasekit_load_socketio_emit_total");
      EXPECT_GE(emits, last);
      EXPECT_EQ(v.at("phasekit_load_socketio_response_time_seconds_count"), emits);  // one snapshot, not a mix
      last = emits;
      ++renders;
    }
  });
  MetricSet total;
  for (int k = 0; k < 300 || renders.load() < 3; ++k) {
    MetricSet pending;
    pending.add(kEmits, 1);
    pending.record(kResponseTime, 1000);
    live.publish(total, pending, 1, k, "p");
    total.merge(pending);
  }
  stop = true;
  reader.join();
  EXPECT_GE(renders.load(), 3);
}

}  // namespace
}  // namespace phasekit::load
