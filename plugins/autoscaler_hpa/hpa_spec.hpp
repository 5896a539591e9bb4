#pragma once
// The part of a Kubernetes autoscaling/v2 HorizontalPodAutoscaler spec the algorithm reads, with the
// API server's defaults applied (SetDefaults_HorizontalPodAutoscaler, GenerateHPAScale{Up,Down}Rules)
// and its validation (validateMetricSpec, validateBehavior). Parsing errors name the field.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "phasekit/hpa_behavior.hpp"

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

struct HpaSpec {
  std::int32_t min_replicas = 1;
  std::int32_t max_replicas = 0;
  std::vector<MetricSpec> metrics;
  /// spec.behavior with the defaults filled in; absent (no `behavior` key, or null) selects the
  /// controller's legacy normalisation (horizontal.go normalizeDesiredReplicas), as Kubernetes does:
  /// the API server fills in defaults only for a behavior that is there (SetDefaults_HorizontalPodAutoscalerBehavior).
  std::optional<Behavior> behavior;
  double tolerance = 0.1;  // --horizontal-pod-autoscaler-tolerance
};

/// `spec` holds autoscaling/v2 field names (minReplicas, maxReplicas, metrics, behavior). Throws
/// json_fields::FieldError naming the first bad field ("spec.metrics[1].pods.target.averageValue: …").
HpaSpec parse_spec(const nlohmann::json& spec, double tolerance, const std::string& path = "spec");

}  // namespace phasekit::hpa
