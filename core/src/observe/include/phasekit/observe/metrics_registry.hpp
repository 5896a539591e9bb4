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

  /// The two sets of histogram buckets phasekit uses, in seconds (one place, so dashboards compare).
  /// What takes 100 µs to seconds: a client event's handling, getting a backend from the pool.
  static std::span<const double> event_buckets() noexcept;
  /// A tool call, from its approval to its result: 1 ms to 30 s.
  static std::span<const double> call_buckets() noexcept;

 private:
  struct Family;
  Family& family(std::string_view name, std::string_view help, int type, std::span<const double> buckets,
                 Labels labels);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;
};

}  // namespace phasekit::observe
