#include "phasekit/observe/metrics_registry.hpp"

#include "phasekit/prometheus_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <stdexcept>

namespace phasekit::observe {
namespace {

using prometheus::append_label_value;
using prometheus::format_number;

enum FamilyType : int { kCounter = 0, kGauge = 1, kHistogram = 2 };
constexpr std::array<std::string_view, 3> kTypeNames{"counter", "gauge", "histogram"};

bool valid_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
  });
}



void add(std::atomic<double>& a, double by) noexcept {
  double old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, old + by, std::memory_order_relaxed)) {
  }
}

class CounterImpl final : public Counter {
 public:
  void inc(double by) noexcept override {
    if (by > 0) {
      add(value_, by);
    }
  }
  [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class GaugeImpl final : public Gauge {
 public:
  void set(double v) noexcept override { value_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept override { observe::add(value_, d); }
  [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class HistogramImpl final : public Histogram {
 public:
  explicit HistogramImpl(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void observe(double v) noexcept override {
    const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
    counts_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
    add(sum_, v);
  }
  void render(std::string& out, std::string_view name, const std::string& labels) const {
    std::uint64_t cumulative = 0;
    const std::string sep = labels.empty() ? "" : ",";
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += counts_[i].load(std::memory_order_relaxed);
      const std::string le = i < bounds_.size() ? format_number(bounds_[i]) : "+Inf";
      out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, le, cumulative);
    }
    const std::string braces = labels.empty() ? "" : fmt::format("{{{}}}", labels);
    out += fmt::format("{}_sum{} {}\n", name, braces, format_number(sum_.load(std::memory_order_relaxed)));
    out += fmt::format("{}_count{} {}\n", name, braces, cumulative);
  }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> counts_;
  std::atomic<double> sum_{0};
};

}  // namespace

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  int type = kCounter;
  std::vector<double> buckets;
  std::vector<std::string> label_names;
  struct Series {
    std::vector<std::string> label_values;
    std::string rendered_labels;  // a="x",b="y"
    std::unique_ptr<CounterImpl> counter;
    std::unique_ptr<GaugeImpl> gauge;
    std::unique_ptr<HistogramImpl> histogram;
  };
  std::vector<std::unique_ptr<Series>> series;

  Series& series_for(Labels labels) {
    for (auto& s : series) {
      if (std::equal(s->label_values.begin(), s->label_values.end(), labels.begin(), labels.end(),
                     [](const std::string& v, const Label& l) { return v == l.second; })) {
        return *s;
      }
    }
    auto s = std::make_unique<Series>();
    for (const Label& l : labels) {
      s->label_values.emplace_back(l.second);
      if (!s->rendered_labels.empty()) {
        s->rendered_labels += ',';
      }
      s->rendered_labels += fmt::format("{}=\"", l.first);
      append_label_value(s->rendered_labels, l.second);
      s->rendered_labels += '"';
    }
    switch (type) {
      case kCounter: s->counter = std::make_unique<CounterImpl>(); break;
      case kGauge: s->gauge = std::make_unique<GaugeImpl>(); break;
      default: s->histogram = std::make_unique<HistogramImpl>(buckets); break;
    }
    series.push_back(std::move(s));
    return *series.back();
  }
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::family(std::string_view name, std::string_view help, int type,
                                                 std::span<const double> buckets, Labels labels) {
  if (!valid_name(name)) {
    throw std::invalid_argument(fmt::format("metric name \"{}\" is not a valid Prometheus name", name));
  }
  for (const Label& l : labels) {
    if (!valid_name(l.first) || l.first == "le") {
      throw std::invalid_argument(fmt::format("metric {}: label name \"{}\" is not valid", name, l.first));
    }
  }
  for (auto& f : families_) {
    if (f->name != name) {
      continue;
    }
    const bool same_labels =
        std::equal(f->label_names.begin(), f->label_names.end(), labels.begin(), labels.end(),
                   [](const std::string& n, const Label& l) { return n == l.first; });
    if (f->type != type || !same_labels) {
      throw std::invalid_argument(fmt::format("metric {} registered again with another type or label names", name));
    }
    return *f;
  }
  auto f = std::make_unique<Family>();
  f->name = std::string(name);
  f->help = std::string(help);
  f->type = type;
  f->buckets.assign(buckets.begin(), buckets.end());
  if (!std::is_sorted(f->buckets.begin(), f->buckets.end())) {
    throw std::invalid_argument(fmt::format("metric {}: bucket bounds must be sorted", name));
  }
  for (const Label& l : labels) {
    f->label_names.emplace_back(l.first);
  }
  families_.push_back(std::move(f));
  return *families_.back();
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, Labels labels) {
  const std::lock_guard lock(mutex_);
  return *family(name, help, kCounter, {}, labels).series_for(labels).counter;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, Labels labels) {
  const std::lock_guard lock(mutex_);
  return *family(name, help, kGauge, {}, labels).series_for(labels).gauge;
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help, std::span<const double> buckets,
                                      Labels labels) {
  const std::lock_guard lock(mutex_);
  return *family(name, help, kHistogram, buckets, labels).series_for(labels).histogram;
}

std::string MetricsRegistry::render() const {
  const std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& f : families_) {
    out += fmt::format("# HELP {} ", f->name);
    for (const char c : f->help) {
      out += c == '\n' ? std::string("\\n") : c == '\\' ? std::string("\\\\") : std::string(1, c);
    }
    out += fmt::format("\n# TYPE {} {}\n", f->name, kTypeNames[static_cast<std::size_t>(f->type)]);
    for (const auto& s : f->series) {
      const std::string braces = s->rendered_labels.empty() ? "" : fmt::format("{{{}}}", s->rendered_labels);
      if (s->counter) {
        out += fmt::format("{}{} {}\n", f->name, braces, format_number(s->counter->value()));
      } else if (s->gauge) {
        out += fmt::format("{}{} {}\n", f->name, braces, format_number(s->gauge->value()));
      } else {
        s->histogram->render(out, f->name, s->rendered_labels);
      }
    }
  }
  return out;
}

std::span<const double> MetricsRegistry::event_buckets() noexcept {
  static constexpr std::array<double, 14> kBuckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                   0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};
  return kBuckets;
}

std::span<const double> MetricsRegistry::call_buckets() noexcept {
  static constexpr std::array<double, 14> kBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25,  0.5,    1,     2.5,  5,     10,   30};
  return kBuckets;
}

}  // namespace phasekit::observe
