#include "hpa_spec.hpp"

#include "phasekit/json_fields.hpp"

namespace phasekit::hpa {
namespace {

using namespace json_fields;  // NOLINT(google-build-using-namespace): a parser made of these helpers
constexpr std::int64_t kInt32Max = 2147483647;

/// autoscaling/v2 MetricTarget, with the target types the source allows.
void parse_target(const Json& j, const std::string& path, MetricSpec& m, bool utilization_ok, bool value_ok,
                  bool average_value_ok) {
  only_keys(j, path, {"type", "averageUtilization", "value", "averageValue"});
  const std::string type = text(required(j, path, "type"), child(path, "type"));
  if (type == "Utilization" && utilization_ok) {
    m.target = TargetType::utilization;
    m.average_utilization = static_cast<std::int32_t>(
        integer(required(j, path, "averageUtilization"), child(path, "averageUtilization"), 1, kInt32Max));
  } else if (type == "Value" && value_ok) {
    m.target = TargetType::value;
    m.milli = quantity(required(j, path, "value"), child(path, "value"));
  } else if (type == "AverageValue" && average_value_ok) {
    m.target = TargetType::average_value;
    m.milli = quantity(required(j, path, "averageValue"), child(path, "averageValue"));
  } else {
    std::vector<std::string_view> allowed;
    for (const auto& [ok, name] : {std::pair{utilization_ok, "Utilization"}, std::pair{value_ok, "Value"},
                                   std::pair{average_value_ok, "AverageValue"}}) {
      if (ok) {
        allowed.emplace_back(name);
      }
    }
    refuse(type, child(path, "type"), one_of_names(allowed) + " for this metric source");
  }
  if (m.target != TargetType::utilization && m.milli <= 0) {
    throw FieldError(child(path, m.target == TargetType::value ? "value" : "averageValue"), "must be positive");
  }
}

std::string metric_name(const Json& source, const std::string& path) {
  const std::string mpath = child(path, "metric");
  const Json& metric = object(required(source, path, "metric"), mpath);
  only_keys(metric, mpath, {"name", "selector"});
  return text(required(metric, mpath, "name"), child(mpath, "name"));
}

MetricSpec parse_metric(const Json& j, const std::string& path) {
  object(j, path);
  MetricSpec m;
  const std::string type = one_of(required(j, path, "type"), child(path, "type"),
                                  {"Resource", "ContainerResource", "Pods", "Object", "External"});
  if (type == "Resource" || type == "ContainerResource") {
    const bool container = type == "ContainerResource";
    const char* key = container ? "containerResource" : "resource";
    only_keys(j, path, {"type", key});
    const std::string spath = child(path, key);
    const Json& s = object(required(j, path, key), spath);
    if (container) {
      only_keys(s, spath, {"name", "container", "target"});
      m.container = text(required(s, spath, "container"), child(spath, "container"));
    } else {
      only_keys(s, spath, {"name", "target"});
    }
    m.source = container ? SourceType::container_resource : SourceType::resource;
    m.name = text(required(s, spath, "name"), child(spath, "name"));
    parse_target(required(s, spath, "target"), child(spath, "target"), m, true, false, true);
  } else if (type == "Pods") {
    only_keys(j, path, {"type", "pods"});
    const std::string spath = child(path, "pods");
    const Json& s = object(required(j, path, "pods"), spath);
    only_keys(s, spath, {"metric", "target"});
    m.source = SourceType::pods;
    m.name = metric_name(s, spath);
    parse_target(required(s, spath, "target"), child(spath, "target"), m, false, false, true);
  } else if (type == "Object") {
    only_keys(j, path, {"type", "object"});
    const std::string spath = child(path, "object");
    const Json& s = object(required(j, path, "object"), spath);
    only_keys(s, spath, {"describedObject", "metric", "target"});
    const std::string opath = child(spath, "describedObject");
    const Json& described = object(required(s, spath, "describedObject"), opath);
    only_keys(described, opath, {"apiVersion", "kind", "name"});
    m.object = text(required(described, opath, "kind"), child(opath, "kind")) + "/" +
               text(required(described, opath, "name"), child(opath, "name"));
    m.source = SourceType::object;
    m.name = metric_name(s, spath);
    parse_target(required(s, spath, "target"), child(spath, "target"), m, false, true, true);
  } else {  // External
    only_keys(j, path, {"type", "external"});
    const std::string spath = child(path, "external");
    const Json& s = object(required(j, path, "external"), spath);
    only_keys(s, spath, {"metric", "target"});
    m.source = SourceType::external;
    m.name = metric_name(s, spath);
    parse_target(required(s, spath, "target"), child(spath, "target"), m, false, true, true);
  }
  return m;
}

}  // namespace

HpaSpec parse_spec(const Json& j, double tolerance, const std::string& path) {
  object(j, path);
  only_keys(j, path, {"scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior"});
  HpaSpec spec;
  spec.tolerance = tolerance;
  if (const Json* v = optional(j, "minReplicas")) {
    // 0 is allowed as with the HPAScaleToZero feature gate (it needs an Object or External metric).
    spec.min_replicas = static_cast<std::int32_t>(integer(*v, child(path, "minReplicas"), 0, kInt32Max));
  }
  spec.max_replicas =
      static_cast<std::int32_t>(integer(required(j, path, "maxReplicas"), child(path, "maxReplicas"), 1, kInt32Max));
  if (spec.max_replicas < spec.min_replicas) {
    throw FieldError(child(path, "maxReplicas"), "must be greater than or equal to minReplicas (" +
                                                     std::to_string(spec.min_replicas) + ")");
  }
  const std::string mpath = child(path, "metrics");
  if (const Json* m = optional(j, "metrics")) {
    array(*m, mpath);
    for (std::size_t i = 0; i < m->size(); ++i) {
      spec.metrics.push_back(parse_metric((*m)[i], item(mpath, i)));
    }
  }
  if (spec.metrics.empty()) {
    // SetDefaults_HorizontalPodAutoscaler: no metrics means 80% average CPU utilization.
    spec.metrics.push_back(MetricSpec{SourceType::resource, "cpu", "", "", TargetType::utilization, 80, 0});
  }
  if (spec.min_replicas == 0) {
    bool object_or_external = false;
    for (const MetricSpec& m : spec.metrics) {
      object_or_external = object_or_external || m.source == SourceType::object || m.source == SourceType::external;
    }
    if (!object_or_external) {
      throw FieldError(child(path, "minReplicas"),
                       "0 requires at least one Object or External metric (HPAScaleToZero)");
    }
  }
  // SetDefaults_HorizontalPodAutoscalerBehavior: defaults only for a behavior that is given (even {}).
  if (const Json* behavior = optional(j, "behavior")) {
    spec.behavior = parse_behavior(*behavior, child(path, "behavior"));
  }
  return spec;
}

}  // namespace phasekit::hpa
