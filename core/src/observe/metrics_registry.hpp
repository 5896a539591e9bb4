#pragma once
// The host's Metrics: instruments keyed by name and labels, rendered as Prometheus text (0.0.4).
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "phasekit/plugin/metrics.hpp"

namespace phasekit::observe {

class MetricsRegistry final : public Metrics {
 public:
  MetricsRegistry();
  ~MetricsRegistry() override;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter& counter(std::string_view name, std::string_view help, Labels labels = {}) override;
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {}) override;
  Histogram& histogram(std::string_view name, std::string_view help, std::span<const double> buckets,
                       Labels labels = {}) override;

  /// The exposition text of every family, in the order they were first registered.
  [[nodiscard]] std::string render() const;

  /// Latency buckets in seconds used across phasekit: 100 µs … 30 s.
  static std::span<const double> latency_buckets() noexcept;

 private:
  struct Family;
  Family& family(std::string_view name, std::string_view help, int type, std::span<const double> buckets,
                 Labels labels);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;
};

}  // namespace phasekit::observe
