#pragma once
// kind = autoscaler: turns observations into a desired replica count (warm-pool size, worker
// concurrency, and phasekit_autoscaler_desired_replicas for a real HPA on external metrics).
//
// What the host observes crosses the boundary as Kubernetes would see it: pods with phase, readiness,
// requests and usage, plus Object and External metric values. What to aim for (minReplicas,
// maxReplicas, metrics, behavior, tolerance) is the plugin's own configuration. All quantities are
// Kubernetes milli-values ("600m" cpu = 600, "1" = 1000, "1Ki" = 1024000).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace phasekit::plugin {

using MilliValues = std::map<std::string, std::int64_t>;  // resource or metric name -> milli-value

struct ScaleContainer {
  std::string name;
  MilliValues requests;  // by resource ("cpu", "memory")
  MilliValues usage;     // by resource; absent = no metric for it
};

enum class PodPhase : std::uint8_t { pending, running, succeeded, failed, unknown };

struct ScalePod {
  std::string name;
  PodPhase phase = PodPhase::running;
  bool ready = true;             // the Ready condition
  bool deleting = false;         // has a deletion timestamp
  bool cpu_initializing = false; // within the CPU initialization period (its cpu sample is not trusted)
  MilliValues requests;          // pod totals by resource; empty: the sum over containers
  MilliValues usage;             // by resource (Resource metrics) or metric name (Pods metrics)
  std::vector<ScaleContainer> containers;  // for ContainerResource metrics
};

struct ScaleInput {
  std::int64_t now_ms = 0;             // the evaluation's time (virtual in the simulator)
  std::int32_t current_replicas = 0;   // scale.spec.replicas
  std::int32_t status_replicas = 0;    // scale.status.replicas (AverageValue Object/External targets)
  std::vector<ScalePod> pods;          // the pods the scale target's selector matches
  MilliValues object_metrics;          // Object metrics by metric name
  std::map<std::string, std::vector<std::int64_t>> external_metrics;  // External series by metric name
};

struct MetricProposal {
  std::string metric;            // "cpu resource utilization (percentage of request)", "pods metric x", …
  std::int32_t replicas = 0;     // the proposal (valid when error is empty)
  std::int64_t current = 0;      // the observed value (milli), or utilization percent for utilization targets
  std::string rule;              // how it was reached: "ratio", "tolerance", "directionReversal", …
  std::string error;             // non-empty: this metric could not be computed
};

struct ScaleDecision {
  std::int32_t desired_replicas = 0;
  std::vector<MetricProposal> proposals;  // one per configured metric, in order
  std::int32_t metric_replicas = 0;       // the highest proposal, before stabilization and policies
  /// Which rule decided when the result differs from the metrics' proposal or from a change:
  /// "" (none), "tolerance", "stabilization", "policy", "scaleUpLimit" (no behavior: max(2 × current, 4)),
  /// "min", "max", "invalidMetrics", "scalingDisabled".
  std::string limited_by;
  std::string reason;  // one human line
};

class AutoscalerStrategy {
 public:
  virtual ~AutoscalerStrategy() = default;
  /// Evaluations must come in non-decreasing now_ms: the strategy keeps the history that its
  /// stabilization windows and scaling policies need.
  virtual ScaleDecision evaluate(const ScaleInput& input) noexcept = 0;
};

}  // namespace phasekit::plugin
