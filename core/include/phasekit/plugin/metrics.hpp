#pragma once
// Metrics as the host exposes them (Prometheus text at /metrics). Instruments are created once and
// live as long as the host's registry, which outlives every plugin instance; updating one is a
// lock-free atomic operation.
#include <span>
#include <string_view>
#include <utility>

namespace phasekit {

using Label = std::pair<std::string_view, std::string_view>;
using Labels = std::span<const Label>;

class Counter {
 public:
  virtual ~Counter() = default;
  virtual void inc(double by = 1.0) noexcept = 0;
};

class Gauge {
 public:
  virtual ~Gauge() = default;
  virtual void set(double value) noexcept = 0;
  virtual void add(double delta) noexcept = 0;
};

class Histogram {
 public:
  virtual ~Histogram() = default;
  virtual void observe(double value) noexcept = 0;
};

/// Names follow Prometheus practice: `phasekit_` prefix, base units (`_seconds`, `_bytes`), counters
/// end in `_total`. Labels only for bounded dimensions. Asking twice for the same name and labels
/// returns the same instrument; asking for a name with another type or label set throws
/// std::invalid_argument (a programming error, found at start-up).
class Metrics {
 public:
  virtual ~Metrics() = default;
  virtual Counter& counter(std::string_view name, std::string_view help, Labels labels = {}) = 0;
  virtual Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {}) = 0;
  virtual Histogram& histogram(std::string_view name, std::string_view help, std::span<const double> buckets,
                               Labels labels = {}) = 0;
};

}  // namespace phasekit
