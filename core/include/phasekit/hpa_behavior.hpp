#pragma once
// The autoscaling/v2 HorizontalPodAutoscalerBehavior object (spec.behavior of an HPA): its scaling
// rules, read with the API server's defaults for what is left out and refused as its validation
// refuses it, each error naming the field ("scaleUp.policies[0].periodSeconds: 2000: expected an
// integer in 1..1800").
//
// Header-only, like json_fields.hpp: the hpa plugin reads spec.behavior with it, and core checks
// AUTOSCALER_BEHAVIOR / AUTOSCALER_WORKER_BEHAVIOR with the same code at start-up, so a setting the
// plugin would refuse stops the process with exit 2 before any plugin is loaded.
//
// Upstream (kubernetes/kubernetes):
//   pkg/apis/autoscaling/v2/defaults.go   GenerateHPAScaleUpRules, GenerateHPAScaleDownRules, copyHPAScalingRules
//   pkg/apis/autoscaling/validation/validation.go   validateBehavior, validateScalingRules, validateScalingPolicy
//                                         (MaxPeriodSeconds 1800, MaxStabilizationWindowSeconds 3600)
//   pkg/controller/podautoscaler/horizontal.go   maybeInitScaleDownStabilizationWindow
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "phasekit/json_fields.hpp"

namespace phasekit::hpa {

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

struct Behavior {
  ScalingRules scale_up;
  ScalingRules scale_down;
};

/// The controller's --horizontal-pod-autoscaler-downscale-stabilization default (5 min): the window
/// of the legacy path (no behavior), and of behavior.scaleDown when its stabilizationWindowSeconds is
/// absent (maybeInitScaleDownStabilizationWindow).
inline constexpr std::int32_t kDefaultDownscaleStabilizationSeconds = 300;
/// validation.go MaxPeriodSeconds and MaxStabilizationWindowSeconds.
inline constexpr std::int64_t kMaxPeriodSeconds = 1800;
inline constexpr std::int64_t kMaxStabilizationWindowSeconds = 3600;

namespace detail {

/// GenerateHPAScaleUpRules / GenerateHPAScaleDownRules: the defaults, then copyHPAScalingRules
/// overwrites each field the object gives. `j` may be null (the direction left out entirely).
inline ScalingRules parse_rules(const json_fields::Json* j, const std::string& path, bool up) {
  namespace jf = json_fields;
  constexpr std::int64_t kInt32Max = 2147483647;
  ScalingRules r;
  r.stabilization_window_seconds = up ? 0 : kDefaultDownscaleStabilizationSeconds;
  r.select = SelectPolicy::max;
  if (up) {
    r.policies = {{false, 4, 15}, {true, 100, 15}};  // +4 pods or +100% per 15 s, whichever is more
  } else {
    r.policies = {{true, 100, 15}};  // -100% per 15 s
  }
  if (j == nullptr) {
    return r;
  }
  jf::only_keys(*j, path, {"stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"});
  if (const jf::Json* w = jf::optional(*j, "stabilizationWindowSeconds")) {
    r.stabilization_window_seconds = static_cast<std::int32_t>(
        jf::integer(*w, jf::child(path, "stabilizationWindowSeconds"), 0, kMaxStabilizationWindowSeconds));
  }
  if (const jf::Json* s = jf::optional(*j, "selectPolicy")) {
    const std::string v = jf::one_of(*s, jf::child(path, "selectPolicy"), {"Max", "Min", "Disabled"});
    r.select = v == "Max" ? SelectPolicy::max : v == "Min" ? SelectPolicy::min : SelectPolicy::disabled;
  }
  if (const jf::Json* t = jf::optional(*j, "tolerance")) {
    r.tolerance = static_cast<double>(jf::quantity(*t, jf::child(path, "tolerance"))) / 1000.0;
    if (*r.tolerance < 0) {
      throw jf::FieldError(jf::child(path, "tolerance"), "must not be negative");
    }
  }
  if (const jf::Json* p = jf::optional(*j, "policies")) {
    const std::string ppath = jf::child(path, "policies");
    jf::array(*p, ppath);
    if (p->empty()) {
      throw jf::FieldError(ppath, "must specify at least one Policy");
    }
    r.policies.clear();
    for (std::size_t i = 0; i < p->size(); ++i) {
      const std::string ipath = jf::item(ppath, i);
      const jf::Json& e = jf::object((*p)[i], ipath);
      jf::only_keys(e, ipath, {"type", "value", "periodSeconds"});
      ScalingPolicy policy;
      policy.percent =
          jf::one_of(jf::required(e, ipath, "type"), jf::child(ipath, "type"), {"Pods", "Percent"}) == "Percent";
      policy.value = static_cast<std::int32_t>(
          jf::integer(jf::required(e, ipath, "value"), jf::child(ipath, "value"), 1, kInt32Max));
      policy.period_seconds = static_cast<std::int32_t>(jf::integer(
          jf::required(e, ipath, "periodSeconds"), jf::child(ipath, "periodSeconds"), 1, kMaxPeriodSeconds));
      r.policies.push_back(policy);
    }
  }
  return r;
}

}  // namespace detail

/// `j` is the behavior object ({"scaleUp": {...}, "scaleDown": {...}}, either may be left out);
/// `path` prefixes field names in errors ("spec.behavior" in a spec, "" for a setting). Throws
/// json_fields::FieldError naming the first bad field.
inline Behavior parse_behavior(const json_fields::Json& j, const std::string& path) {
  namespace jf = json_fields;
  jf::object(j, path);
  jf::only_keys(j, path, {"scaleUp", "scaleDown"});
  return Behavior{detail::parse_rules(jf::optional(j, "scaleUp"), jf::child(path, "scaleUp"), true),
                  detail::parse_rules(jf::optional(j, "scaleDown"), jf::child(path, "scaleDown"), false)};
}

}  // namespace phasekit::hpa
