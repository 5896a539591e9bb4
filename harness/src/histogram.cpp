#include "histogram.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace phasekit::load {
namespace {

bool is_count(const nlohmann::json& j) { return j.is_number_integer() && j.get<std::int64_t>() >= 0; }

}  // namespace

Histogram::Histogram() : buckets_(kBucketCount, 0) {}

std::size_t Histogram::index_of(std::uint64_t value) noexcept {
  value = std::min(value, kMaxValue);
  if (value < kSubBuckets) {
    return static_cast<std::size_t>(value);
  }
  const unsigned exponent = static_cast<unsigned>(std::bit_width(value)) - 1 - kSubBucketBits;
  return static_cast<std::size_t>((value >> exponent) + kSubBuckets * exponent);
}

std::uint64_t Histogram::lower_bound(std::size_t index) noexcept {
  if (index < kSubBuckets) {
    return index;
  }
  const std::uint64_t exponent = index / kSubBuckets - 1;
  const std::uint64_t mantissa = index % kSubBuckets + kSubBuckets;
  return mantissa << exponent;
}

std::uint64_t Histogram::upper_bound(std::size_t index) noexcept {
  if (index < kSubBuckets) {
    return index + 1;
  }
  const std::uint64_t exponent = index / kSubBuckets - 1;
  return lower_bound(index) + (std::uint64_t{1} << exponent);
}

void Histogram::record(std::uint64_t micros) noexcept {
  micros = std::min(micros, kMaxValue);
  ++buckets_[index_of(micros)];
  min_ = count_ == 0 ? micros : std::min(min_, micros);
  max_ = std::max(max_, micros);
  ++count_;
  sum_ += micros;
}

void Histogram::merge(const Histogram& other) noexcept {
  if (other.count_ == 0) {
    return;
  }
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    buckets_[i] += other.buckets_[i];
  }
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

void Histogram::clear() noexcept {
  std::fill(buckets_.begin(), buckets_.end(), 0);
  count_ = min_ = max_ = sum_ = 0;
}

std::vector<std::uint64_t> Histogram::count_at_or_below(std::span<const std::uint64_t> bounds) const {
  std::vector<std::uint64_t> out;
  out.reserve(bounds.size());
  std::uint64_t cumulative = 0;
  std::size_t next = 0;  // the first bucket not yet added
  for (const std::uint64_t bound : bounds) {
    const std::size_t last = index_of(bound);
    for (; next <= last && next < kBucketCount; ++next) {
      cumulative += buckets_[next];
    }
    out.push_back(cumulative);
  }
  return out;
}

double Histogram::mean() const noexcept {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
}

std::uint64_t Histogram::quantile(double q) const noexcept {
  if (count_ == 0) {
    return 0;
  }
  q = std::clamp(q, 0.0, 1.0);
  const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      const std::uint64_t middle = lower_bound(i) + (upper_bound(i) - lower_bound(i) - 1) / 2;
      return std::clamp(middle, min_, max_);
    }
  }
  return max_;
}

nlohmann::json Histogram::to_json() const {
  nlohmann::json buckets = nlohmann::json::array();
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    if (buckets_[i] != 0) {
      buckets.push_back({i, buckets_[i]});
    }
  }
  const auto ms = [](double us) { return std::round(us) / 1000.0; };
  return {
      {"layout", "log-linear-us-7"},
      {"count", count_},
      {"min", min()},
      {"max", max_},
      {"sum", sum_},
      {"summaryMs",
       {{"min", ms(static_cast<double>(min()))},
        {"mean", ms(mean())},
        {"p50", ms(static_cast<double>(quantile(0.50)))},
        {"p90", ms(static_cast<double>(quantile(0.90)))},
        {"p95", ms(static_cast<double>(quantile(0.95)))},
        {"p99", ms(static_cast<double>(quantile(0.99)))},
        {"p999", ms(static_cast<double>(quantile(0.999)))},
        {"max", ms(static_cast<double>(max_))}}},
      {"buckets", std::move(buckets)},
  };
}

Histogram Histogram::from_json(const nlohmann::json& j) {
  const auto fail = [](const std::string& what) { throw std::invalid_argument("histogram: " + what); };
  if (!j.is_object()) {
    fail("expected an object");
  }
  if (j.value("layout", std::string()) != "log-linear-us-7") {
    fail("layout \"" + j.value("layout", std::string()) + "\", expected \"log-linear-us-7\"");
  }
  const auto number = [&](const char* key) {
    const auto it = j.find(key);
    if (it == j.end() || !is_count(*it)) {
      fail(std::string("\"") + key + "\" must be a non-negative integer");
    }
    return it->get<std::uint64_t>();
  };
  Histogram h;
  h.count_ = number("count");
  h.min_ = number("min");
  h.max_ = number("max");
  h.sum_ = number("sum");
  const auto it = j.find("buckets");
  if (it == j.end() || !it->is_array()) {
    fail("\"buckets\" must be an array of [index, count]");
  }
  std::uint64_t total = 0;
  for (const auto& b : *it) {
    if (!b.is_array() || b.size() != 2 || !is_count(b[0]) || !is_count(b[1])) {
      fail("each bucket must be [index, count] with non-negative integers");
    }
    const auto index = b[0].get<std::uint64_t>();
    if (index >= kBucketCount) {
      fail("bucket index " + std::to_string(index) + " out of range");
    }
    h.buckets_[index] += b[1].get<std::uint64_t>();
    total += b[1].get<std::uint64_t>();
  }
  if (total != h.count_) {
    fail("bucket counts add up to " + std::to_string(total) + ", \"count\" says " + std::to_string(h.count_));
  }
  if (h.count_ != 0 && (h.min_ > h.max_ || index_of(h.min_) > index_of(h.max_))) {
    fail("min is above max");
  }
  return h;
}

}  // namespace phasekit::load
