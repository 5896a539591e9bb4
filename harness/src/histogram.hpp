#pragma once
// A log-linear histogram of microsecond values (HdrHistogram's layout, written here): exact below
// 128 µs, then 128 buckets per power of two, so any value is known to within 0.4 % of itself.
// Fixed memory (35 KiB), O(1) record, and merges exactly: two histograms add bucket by bucket, so
// reports from several load generators combine into the same percentiles one process would give.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace phasekit::load {

class Histogram {
 public:
  static constexpr unsigned kSubBucketBits = 7;
  static constexpr std::uint64_t kSubBuckets = 1u << kSubBucketBits;
  static constexpr unsigned kMaxExponent = 40;  // values are clamped to 2^40 µs (12.7 days)
  static constexpr std::size_t kBucketCount = kSubBuckets * (kMaxExponent - kSubBucketBits + 1);
  static constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << kMaxExponent) - 1;

  Histogram();

  void record(std::uint64_t micros) noexcept;
  void merge(const Histogram& other) noexcept;
  void clear() noexcept;

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
  [[nodiscard]] std::uint64_t sum() const noexcept { return sum_; }  // µs
  [[nodiscard]] double mean() const noexcept;
  /// The value at quantile q in [0, 1]: the middle of the bucket holding the ceil(q·count)-th value,
  /// kept within [min, max]. 0 when empty.
  [[nodiscard]] std::uint64_t quantile(double q) const noexcept;

  /// For each bound (µs, ascending), how many values are at most that bound at this histogram's
  /// precision: the values of every bucket up to and including the one that holds the bound. Exact
  /// below 128 µs and at bucket edges; elsewhere a bucket straddling the bound (0.4 % wide) counts
  /// whole. What a Prometheus histogram's cumulative `le` buckets need.
  [[nodiscard]] std::vector<std::uint64_t> count_at_or_below(std::span<const std::uint64_t> bounds) const;

  static std::size_t index_of(std::uint64_t value) noexcept;
  static std::uint64_t lower_bound(std::size_t index) noexcept;
  static std::uint64_t upper_bound(std::size_t index) noexcept;  // exclusive

  /// {"count","min","max","sum","buckets":[[index,count],…]} (only non-empty buckets), plus a
  /// readable summary in milliseconds that from_json ignores.
  [[nodiscard]] nlohmann::json to_json() const;
  /// Throws std::invalid_argument naming what is wrong (bucket index out of range, counts that do not
  /// add up, another layout).
  static Histogram from_json(const nlohmann::json& j);

  friend bool operator==(const Histogram&, const Histogram&) = default;

 private:
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t sum_ = 0;  // µs; 2^64 µs is 584,000 years of latency
};

}  // namespace phasekit::load
