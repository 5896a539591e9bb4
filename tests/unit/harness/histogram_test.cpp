#include "histogram.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

namespace phasekit::load {
namespace {

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (std::uint64_t v = 0; v < 128; ++v) {
    h.record(v);
  }
  EXPECT_EQ(h.count(), 128u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 127u);
  EXPECT_EQ(h.quantile(0.5), 63u);  // the 64th of 0..127
  EXPECT_EQ(h.quantile(1.0), 127u);
}

TEST(Histogram, BucketsTileTheRangeWithoutGapsOrOverlap) {
  for (std::size_t i = 0; i + 1 < Histogram::kBucketCount; ++i) {
    ASSERT_EQ(Histogram::upper_bound(i), Histogram::lower_bound(i + 1)) << "bucket " << i;
    ASSERT_EQ(Histogram::index_of(Histogram::lower_bound(i)), i);
    ASSERT_EQ(Histogram::index_of(Histogram::upper_bound(i) - 1), i);
  }
}

TEST(Histogram, RelativeErrorOfAnyQuantileIsUnderHalfAPercent) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(9.0, 1.5);  // µs, median ≈ 8 ms, long tail
  std::vector<std::uint64_t> values;
  Histogram h;
  for (int i = 0; i < 100000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(rng));
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.5, 0.9, 0.95, 0.99, 0.999}) {
    const auto exact = static_cast<double>(values[static_cast<std::size_t>(std::ceil(q * values.size())) - 1]);
    EXPECT_NEAR(static_cast<double>(h.quantile(q)), exact, exact * 0.005 + 1) << "q=" << q;
  }
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  Histogram a, b, all;
  for (std::uint64_t v = 1; v < 50000; v += 7) {
    (v % 3 == 0 ? a : b).record(v);
    all.record(v);
  }
  a.merge(b);
  EXPECT_EQ(a, all);
  EXPECT_EQ(a.quantile(0.99), all.quantile(0.99));
}

TEST(Histogram, ClampsHugeValues) {
  Histogram h;
  h.record(~std::uint64_t{0});
  EXPECT_EQ(h.max(), Histogram::kMaxValue);
  EXPECT_EQ(h.quantile(0.5), Histogram::kMaxValue);
}

TEST(Histogram, JsonRoundTripIsExact) {
  Histogram h;
  for (std::uint64_t v = 0; v < 1000000; v += 997) {
    h.record(v);
  }
  EXPECT_EQ(Histogram::from_json(h.to_json()), h);
  EXPECT_EQ(Histogram::from_json(Histogram().to_json()), Histogram());
}

TEST(Histogram, MalformedJsonIsRefusedWithTheReason) {
  Histogram h;
  h.record(5);
  const nlohmann::json good = h.to_json();
  struct Case {
    const char* name;
    nlohmann::json doc;
    const char* reason;
  };
  nlohmann::json wrong_layout = good, bad_index = good, bad_total = good, negative = good, not_pairs = good;
  wrong_layout["layout"] = "hdr";
  bad_index["buckets"] = nlohmann::json::array();
  bad_index["buckets"].push_back(nlohmann::json::array({Histogram::kBucketCount, 1}));
  bad_total["count"] = 2;
  negative["min"] = -1;
  not_pairs["buckets"] = nlohmann::json::array({1, 2});
  for (const Case& c : std::vector<Case>{{"array", nlohmann::json::array(), "expected an object"},
                                         {"layout", wrong_layout, "layout"},
                                         {"index", bad_index, "out of range"},
                                         {"total", bad_total, "add up"},
                                         {"negative", negative, "\"min\""},
                                         {"pairs", not_pairs, "[index, count]"}}) {
    try {
      (void)Histogram::from_json(c.doc);
      ADD_FAILURE() << c.name << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.reason), std::string::npos) << c.name << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace phasekit::load
