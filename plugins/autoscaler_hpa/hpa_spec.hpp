#pragma once
// The part of a Kubernetes autoscaling/v2 HorizontalPodAutoscaler spec the algorithm reads, with the
// API server's defaults applied (SetDefaults_HorizontalPodAutoscaler, GenerateHPAScale{Up,Down}Rules)
// and its validation (validateMetricSpec, validateBehavior). Parsing errors name the field.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace phasekit::hpa {

enum class SourceType : std::uint8_t { resource, container_resource, pods, object, external };
enum class TargetType : std::uint8_t { utilization, value, average_value };

struct MetricSpec {
  SourceType source = SourceType::resource;
  std::string name;       // resource name (Resource, ContainerResource) or metric name
  std::string container;  // ContainerResource only
  std::string object;     // Object only: "<kind>/<name>" of describedObject, for messages
  TargetType target = TargetType::utilization;
  std::int32_t average_utilization = 0;  // percent, Utilization targets
  std::int64_t milli = 0;                // Value or AverageValue targets, as a milli-value
};

enum class SelectPolicy : std::uint8_t { max, min, disabled };

struct ScalingPolicy {
  bool percent = false;  // Percent, else Pods
  std::int32_t value = 0;
  std::int32_t period_seconds = 0;
};

struct ScalingRules {
  std::int32_t stabilization_window_seconds = 0;
  SelectPolicy select = SelectPolicy::max;
  std::vector<ScalingPolicy> policies;
  std::optional<double> tolerance;  // behavior.scale{Up,Down}.tolerance (overrides the global one)
};

struct HpaSpec {
  std::int32_t min_replicas = 1;
  std::int32_t max_replicas = 0;
  std::vector<MetricSpec> metrics;
  ScalingRules scale_up;
  ScalingRules scale_down;
  double tolerance = 0.1;  // --horizontal-pod-autoscaler-tolerance
};

/// The controller's --horizontal-pod-autoscaler-downscale-stabilization default, used when
/// behavior.scaleDown.stabilizationWindowSeconds is absent.
inline constexpr std::int32_t kDefaultDownscaleStabilizationSeconds = 300;

/// `spec` holds autoscaling/v2 field names (minReplicas, maxReplicas, metrics, behavior). Throws
/// json_fields::FieldError naming the first bad field ("spec.metrics[1].pods.target.averageValue: …").
HpaSpec parse_spec(const nlohmann::json& spec, double tolerance, const std::string& path = "spec");

}  // namespace phasekit::hpa
