#pragma once
// The Kubernetes HorizontalPodAutoscaler algorithm (autoscaling/v2), as pkg/controller/podautoscaler
// implements it: replica_calculator.go turns each metric into a proposal, horizontal.go
// (reconcileAutoscaler, computeReplicasForMetrics) picks the highest, then normalises it — with a
// `behavior`, normalizeDesiredReplicasWithBehaviors (both stabilization windows, the scaling policies,
// min/max); without one, the legacy normalizeDesiredReplicas (the downscale window, at most
// max(2 × current, 4) per evaluation, min/max). One instance keeps the controller's per-HPA memory:
// recent recommendations and, with a behavior, scale events.
#include <cstdint>
#include <vector>

#include "hpa_spec.hpp"
#include "phasekit/plugin/autoscaler.hpp"

namespace phasekit::hpa {

struct Recommendation {
  std::int32_t replicas;
  std::int64_t at_ms;
};

struct ScaleEvent {
  std::int64_t change;  // replicas added (up events) or removed (down events), always positive
  std::int64_t at_ms;
  bool outdated;
};

class HpaAutoscaler final : public plugin::AutoscalerStrategy {
 public:
  explicit HpaAutoscaler(HpaSpec spec) : spec_(std::move(spec)) {}
  plugin::ScaleDecision evaluate(const plugin::ScaleInput& input) noexcept override;
  [[nodiscard]] const HpaSpec& spec() const noexcept { return spec_; }

 private:
  plugin::ScaleDecision reconcile(const plugin::ScaleInput& in);
  std::int32_t stabilize(const plugin::ScaleInput& in, std::int32_t desired);
  std::int32_t limit_rate(const plugin::ScaleInput& in, std::int32_t desired, std::string& limited_by) const;
  std::int32_t stabilize_legacy(const plugin::ScaleInput& in, std::int32_t desired);
  std::int32_t limit_legacy(const plugin::ScaleInput& in, std::int32_t desired, std::string& limited_by) const;
  void store_scale_event(std::int64_t now_ms, std::int32_t from, std::int32_t to);

  HpaSpec spec_;
  std::vector<Recommendation> recommendations_;
  std::vector<ScaleEvent> up_events_;
  std::vector<ScaleEvent> down_events_;
};

}  // namespace phasekit::hpa
