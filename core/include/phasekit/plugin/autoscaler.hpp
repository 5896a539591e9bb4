#pragma once
// kind = autoscaler: turns observed metrics into a desired replica count (warm-pool size, worker
// concurrency, and phasekit_autoscaler_desired_replicas for a real HPA on external metrics).
#include <cstdint>
#include <string>
#include <vector>

namespace phasekit::plugin {

struct ScaleMetric {
  std::string name;
  double current = 0;  // observed value (average per replica, or total; see target_type)
  double target = 0;
  bool average = true;  // true: AverageValue per replica; false: Value for the whole set
};

struct ScaleInput {
  std::int64_t now_ms = 0;
  std::uint32_t current_replicas = 0;
  std::uint32_t min_replicas = 1;
  std::uint32_t max_replicas = 1;
  std::vector<ScaleMetric> metrics;
};

struct ScaleDecision {
  std::uint32_t desired_replicas = 0;
  std::string reason;  // which rule decided: "tolerance", "stabilization", "policy", "min", "max", …
};

class AutoscalerStrategy {
 public:
  virtual ~AutoscalerStrategy() = default;
  virtual ScaleDecision evaluate(const ScaleInput& input) noexcept = 0;
};

}  // namespace phasekit::plugin
