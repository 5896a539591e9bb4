// The HPA algorithm against cases derived from Kubernetes' pkg/controller/podautoscaler
// (replica_calculator.go, horizontal.go and their tests) and the HPA documentation. Each test names the
// rule it pins. Time is the input's now_ms: nothing sleeps.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "hpa_autoscaler.hpp"
#include "hpa_spec.hpp"
#include "phasekit/json_fields.hpp"
#include "phasekit/quantity.hpp"

namespace phasekit::hpa {
namespace {

using nlohmann::json;
using plugin::PodPhase;
using plugin::ScaleDecision;
using plugin::ScaleInput;
using plugin::ScalePod;

constexpr std::int64_t kSecond = 1000;

std::string resource_spec(const std::string& resource, int utilization, const std::string& extra = "",
                          int max_replicas = 100) {
  return R"({"maxReplicas":)" + std::to_string(max_replicas) + R"(,"metrics":[{"type":"Resource","resource":{"name":")" +
         resource + R"(","target":{"type":"Utilization","averageUtilization":)" + std::to_string(utilization) +
         "}}}]" + extra + "}";
}

HpaAutoscaler make(const std::string& spec, double tolerance = 0.1) {
  return HpaAutoscaler(parse_spec(json::parse(spec), tolerance));
}

/// A running, ready pod with a request and (unless nullopt: no sample) a usage of `resource`.
ScalePod pod(const std::string& name, std::int64_t request, std::optional<std::int64_t> usage,
             const std::string& resource = "cpu") {
  ScalePod p;
  p.name = name;
  p.requests[resource] = request;
  if (usage) {
    p.usage[resource] = *usage;
  }
  return p;
}

/// Pods p0..pn-1 each requesting `request` and using the given amounts.
std::vector<ScalePod> pods(std::int64_t request, const std::vector<std::int64_t>& usage,
                           const std::string& resource = "cpu") {
  std::vector<ScalePod> out;
  for (std::size_t i = 0; i < usage.size(); ++i) {
    out.push_back(pod("p" + std::to_string(i), request, usage[i], resource));
  }
  return out;
}

ScaleInput input(std::int32_t current, std::vector<ScalePod> pod_list, std::int64_t now_ms = 0) {
  ScaleInput in;
  in.now_ms = now_ms;
  in.current_replicas = current;
  in.status_replicas = current;
  in.pods = std::move(pod_list);
  return in;
}

// ---- Resource utilization (GetResourceReplicas) ---------------------------------------------------

// TestReplicaCalcScaleUp: usage 300/500/700 of 1 cpu, target 30% → 50% → ceil(5/3 * 3) = 5.
TEST(HpaResource, ScaleUpIsCeilOfRatioTimesReadyPods) {
  auto hpa = make(resource_spec("cpu", 30));
  const ScaleDecision d = hpa.evaluate(input(3, pods(1000, {300, 500, 700})));
  EXPECT_EQ(d.proposals.at(0).current, 50);
  EXPECT_EQ(d.proposals.at(0).replicas, 5);
  EXPECT_EQ(d.desired_replicas, 5);
}

// TestReplicaCalcScaleDown: 100/300/500/250/250 of 1 cpu, target 50% → 28% → ceil(0.56 * 5) = 3.
TEST(HpaResource, ScaleDownProposal) {
  auto hpa = make(resource_spec("cpu", 50));
  const ScaleDecision d = hpa.evaluate(input(5, pods(1000, {100, 300, 500, 250, 250})));
  EXPECT_EQ(d.proposals.at(0).current, 28);
  EXPECT_EQ(d.metric_replicas, 3);
}

// Tolerance: |ratio - 1| <= 0.1 keeps the current count (105% of a 100% target).
TEST(HpaResource, WithinToleranceKeepsCurrent) {
  auto hpa = make(resource_spec("cpu", 100));
  const ScaleDecision d = hpa.evaluate(input(3, pods(1000, {1050, 1050, 1050})));
  EXPECT_EQ(d.desired_replicas, 3);
  EXPECT_EQ(d.proposals.at(0).rule, "tolerance");
  EXPECT_EQ(d.limited_by, "tolerance");
}

// Tolerances.isWithin is inclusive: 110% of a 100% target is still within 0.1.
TEST(HpaResource, ToleranceUpperBoundIsInclusive) {
  auto hpa = make(resource_spec("cpu", 100));
  EXPECT_EQ(hpa.evaluate(input(3, pods(1000, {1100, 1100, 1100}))).desired_replicas, 3);
}

// Just past the upper bound: 111% → ceil(1.11 * 3) = 4.
TEST(HpaResource, JustAboveToleranceScalesUp) {
  auto hpa = make(resource_spec("cpu", 100));
  EXPECT_EQ(hpa.evaluate(input(3, pods(1000, {1110, 1110, 1110}))).desired_replicas, 4);
}

// Lower bound inclusive: 90% stays; 89% over 10 pods proposes ceil(8.9) = 9.
TEST(HpaResource, ToleranceLowerBound) {
  auto hpa = make(resource_spec("cpu", 100));
  EXPECT_EQ(hpa.evaluate(input(10, pods(1000, std::vector<std::int64_t>(10, 900)))).metric_replicas, 10);
  auto hpa2 = make(resource_spec("cpu", 100));
  EXPECT_EQ(hpa2.evaluate(input(10, pods(1000, std::vector<std::int64_t>(10, 890)))).metric_replicas, 9);
}

// GetResourceUtilizationRatio: the percentage is an integer division (29.99% → 29%), so
// 10 pods at target 10% propose ceil(2.9 * 10) = 29, not 30.
TEST(HpaResource, UtilizationPercentIsRoundedDown) {
  auto hpa = make(resource_spec("cpu", 10));
  std::vector<std::int64_t> usage(10, 300);
  usage[0] = 299;  // total 2999 of 10000
  const ScaleDecision d = hpa.evaluate(input(10, pods(1000, usage)));
  EXPECT_EQ(d.proposals.at(0).current, 29);
  EXPECT_EQ(d.proposals.at(0).replicas, 29);
}

// Missing pods on a scale-down count as using 100% of their request: 10% → with the missing pod at
// 100% → 32% → ceil(0.64 * 4) = 3.
TEST(HpaResource, MissingPodsOnScaleDownCountAsFullRequest) {
  auto hpa = make(resource_spec("cpu", 50));
  auto list = pods(1000, {100, 100, 100});
  list.push_back(pod("missing", 1000, std::nullopt));
  EXPECT_EQ(hpa.evaluate(input(4, list)).metric_replicas, 3);
}

// ... or the target, when the target is above 100% (fallbackUtilization = max(100, target)).
TEST(HpaResource, MissingPodsOnScaleDownUseTargetAbove100Percent) {
  auto hpa = make(resource_spec("cpu", 200));
  auto list = pods(1000, {100, 100, 100});
  list.push_back(pod("missing", 1000, std::nullopt));
  EXPECT_EQ(hpa.evaluate(input(4, list)).metric_replicas, 2);  // 2300/4000 = 57% → 0.285 * 4
}

// Missing pods on a scale-up count as using nothing: 100% → with the missing at 0 → 75% → ceil(1.5*4) = 6.
TEST(HpaResource, MissingPodsOnScaleUpCountAsZero) {
  auto hpa = make(resource_spec("cpu", 50));
  auto list = pods(1000, {1000, 1000, 1000});
  list.push_back(pod("missing", 1000, std::nullopt));
  EXPECT_EQ(hpa.evaluate(input(4, list)).desired_replicas, 6);
}

// "no change if that reverses the direction": 60% says scale up, but with three missing pods at 0 it
// would say scale down → keep the current count.
TEST(HpaResource, MissingPodsThatReverseTheDirectionChangeNothing) {
  auto hpa = make(resource_spec("cpu", 50));
  std::vector<ScalePod> list{pod("a", 1000, 600), pod("b", 1000, std::nullopt), pod("c", 1000, std::nullopt),
                             pod("d", 1000, std::nullopt)};
  const ScaleDecision d = hpa.evaluate(input(4, list));
  EXPECT_EQ(d.desired_replicas, 4);
  EXPECT_EQ(d.proposals.at(0).rule, "directionReversal");
  EXPECT_EQ(d.limited_by, "directionReversal");
}

// After filling in missing pods the new ratio is within tolerance: no change.
TEST(HpaResource, MissingPodsBringingTheRatioWithinToleranceChangeNothing) {
  auto hpa = make(resource_spec("cpu", 75));
  auto list = pods(1000, {1000, 1000, 1000});
  list.push_back(pod("missing", 1000, std::nullopt));
  const ScaleDecision d = hpa.evaluate(input(4, list));
  EXPECT_EQ(d.desired_replicas, 4);  // 3000/4000 = 75% = target
  EXPECT_EQ(d.proposals.at(0).rule, "tolerance");
}

// The replica count itself may reverse the direction: ratio < 1 but ceil(ratio * pods) > current.
TEST(HpaResource, ReplicaCountReversingTheDirectionChangesNothing) {
  auto hpa = make(resource_spec("cpu", 70));
  auto list = pods(1000, {400, 400, 400});
  list.push_back(pod("missing", 1000, std::nullopt));
  const ScaleDecision d = hpa.evaluate(input(2, list));  // 2200/4000 = 55% → 0.79 * 4 pods = 4 > 2
  EXPECT_EQ(d.metric_replicas, 2);
  EXPECT_EQ(d.proposals.at(0).rule, "directionReversal");
}

// TestReplicaCalcScaleUpUnreadyLessScale: an unready pod is left out, then counted at 0 on a scale-up:
// 1200/2000 = 60% → 2.0 → 1200/3000 = 40% → ceil(4/3 * 3) = 4.
TEST(HpaResource, UnreadyPodsCountAsZeroOnScaleUp) {
  auto hpa = make(resource_spec("cpu", 30));
  auto list = pods(1000, {300, 500, 700});
  list[0].ready = false;
  EXPECT_EQ(hpa.evaluate(input(3, list)).desired_replicas, 4);
}

// On a scale-down unready pods are simply left out: 200/2000 = 10% → ceil(0.2 * 2 ready) = 1.
TEST(HpaResource, UnreadyPodsAreLeftOutOnScaleDown) {
  auto hpa = make(resource_spec("cpu", 50));
  auto list = pods(1000, {100, 100, 100});
  list[0].ready = false;
  EXPECT_EQ(hpa.evaluate(input(3, list)).metric_replicas, 1);
}

// A cpu sample from a pod still in its initialization period is not trusted: like unready.
TEST(HpaResource, CpuInitializingPodsAreUnreadyForCpu) {
  auto hpa = make(resource_spec("cpu", 30));
  auto list = pods(1000, {300, 500, 700});
  list[0].cpu_initializing = true;
  EXPECT_EQ(hpa.evaluate(input(3, list)).desired_replicas, 4);
}

// Readiness only matters for cpu: for memory an unready pod's sample counts (50% of a 30% target → 5).
TEST(HpaResource, UnreadyPodsCountForMemory) {
  auto hpa = make(resource_spec("memory", 30));
  auto list = pods(1000, {300, 500, 700}, "memory");
  list[0].ready = false;
  EXPECT_EQ(hpa.evaluate(input(3, list)).desired_replicas, 5);
}

// Pending pods are unready for every resource (memory too): left out, then 0 on a scale-up.
TEST(HpaResource, PendingPodsAreUnreadyForEveryResource) {
  auto hpa = make(resource_spec("memory", 30));
  auto list = pods(1000, {900, 500, 700}, "memory");
  list[0].phase = PodPhase::pending;
  EXPECT_EQ(hpa.evaluate(input(3, list)).desired_replicas, 4);
}

// Pods being deleted and failed pods are ignored entirely: 1200/2000 = 60% → ceil(2.0 * 2 ready) = 4.
TEST(HpaResource, DeletingAndFailedPodsAreIgnored) {
  auto hpa = make(resource_spec("cpu", 30));
  auto list = pods(1000, {5000, 5000, 500, 700});
  list[0].deleting = true;
  list[1].phase = PodPhase::failed;
  EXPECT_EQ(hpa.evaluate(input(4, list)).desired_replicas, 4);
}

// No usable sample at all is an error: the HPA keeps the current count (ScalingActive false).
TEST(HpaResource, AllPodsUnreadyIsAnInvalidMetric) {
  auto hpa = make(resource_spec("cpu", 50));
  auto list = pods(1000, {100, 100});
  list[0].ready = false;
  list[1].ready = false;
  const ScaleDecision d = hpa.evaluate(input(2, list));
  EXPECT_EQ(d.desired_replicas, 2);
  EXPECT_EQ(d.limited_by, "invalidMetrics");
  EXPECT_NE(d.reason.find("did not receive metrics"), std::string::npos);
}

// "no pods returned by selector while calculating replica count"
TEST(HpaResource, NoPodsIsAnInvalidMetric) {
  auto hpa = make(resource_spec("cpu", 50));
  const ScaleDecision d = hpa.evaluate(input(2, {}));
  EXPECT_EQ(d.desired_replicas, 2);
  EXPECT_EQ(d.limited_by, "invalidMetrics");
}

// calculateRequests: a pod without a request for the resource makes the metric invalid.
TEST(HpaResource, MissingRequestIsAnInvalidMetric) {
  auto hpa = make(resource_spec("cpu", 50));
  auto list = pods(1000, {100, 100});
  list[1].requests.clear();
  const ScaleDecision d = hpa.evaluate(input(2, list));
  EXPECT_EQ(d.desired_replicas, 2);
  EXPECT_NE(d.proposals.at(0).error.find("missing request for cpu"), std::string::npos);
}

// SetDefaults_HorizontalPodAutoscaler: no metrics means cpu at 80%; 160% doubles the pods.
TEST(HpaResource, NoMetricsDefaultsToCpu80Percent) {
  auto hpa = make(R"({"maxReplicas":10})");
  EXPECT_EQ(hpa.evaluate(input(2, pods(1000, {1600, 1600}))).desired_replicas, 4);
}

// AverageValue on a Resource metric (GetRawResourceReplicas): average 800m of a 500m target → ceil(1.6*3) = 5.
TEST(HpaResource, AverageValueTarget) {
  auto hpa = make(R"({"maxReplicas":10,"metrics":[{"type":"Resource","resource":{"name":"cpu",
      "target":{"type":"AverageValue","averageValue":"500m"}}}]})");
  const ScaleDecision d = hpa.evaluate(input(3, pods(1000, {600, 800, 1000})));
  EXPECT_EQ(d.proposals.at(0).current, 800);
  EXPECT_EQ(d.desired_replicas, 5);
}

// The sample of a pod is the sum over its containers (metrics-server), the request too.
TEST(HpaResource, PodSampleAndRequestSumTheContainers) {
  auto hpa = make(resource_spec("cpu", 50));
  ScalePod p;
  p.name = "p";
  p.containers = {{"app", {{"cpu", 500}}, {{"cpu", 500}}}, {"sidecar", {{"cpu", 500}}, {{"cpu", 500}}}};
  EXPECT_EQ(hpa.evaluate(input(1, {p})).desired_replicas, 2);  // 1000/1000 = 100% of 50%
}

// ---- ContainerResource ----------------------------------------------------------------------------

std::vector<ScalePod> two_container_pods() {
  std::vector<ScalePod> out;
  for (const char* name : {"a", "b"}) {
    ScalePod p;
    p.name = name;
    p.containers = {{"app", {{"cpu", 500}}, {{"cpu", 500}}}, {"sidecar", {{"cpu", 500}}, {{"cpu", 0}}}};
    out.push_back(p);
  }
  return out;
}

// Resource sees the whole pod (50% of 50% target: no change) ...
TEST(HpaContainerResource, ResourceMetricSeesTheWholePod) {
  auto hpa = make(resource_spec("cpu", 50));
  EXPECT_EQ(hpa.evaluate(input(2, two_container_pods())).desired_replicas, 2);
}

// ... ContainerResource only the named container (100% of 50% → 4).
TEST(HpaContainerResource, OnlyTheNamedContainerCounts) {
  auto hpa = make(R"({"maxReplicas":10,"metrics":[{"type":"ContainerResource","containerResource":{"name":"cpu",
      "container":"app","target":{"type":"Utilization","averageUtilization":50}}}]})");
  const ScaleDecision d = hpa.evaluate(input(2, two_container_pods()));
  EXPECT_EQ(d.desired_replicas, 4);
  EXPECT_EQ(d.proposals.at(0).metric, "cpu container resource utilization (percentage of request)");
}

// getContainerMetrics: "container %s not present in metrics for pod %s"
TEST(HpaContainerResource, UnknownContainerIsAnInvalidMetric) {
  auto hpa = make(R"({"maxReplicas":10,"metrics":[{"type":"ContainerResource","containerResource":{"name":"cpu",
      "container":"nope","target":{"type":"Utilization","averageUtilization":50}}}]})");
  const ScaleDecision d = hpa.evaluate(input(2, two_container_pods()));
  EXPECT_EQ(d.desired_replicas, 2);
  EXPECT_NE(d.proposals.at(0).error.find("container nope not present in metrics for pod a"), std::string::npos);
}

// ---- Pods metrics (calcPlainMetricReplicas) --------------------------------------------------------

std::string pods_spec(const std::string& target) {
  return R"({"maxReplicas":100,"metrics":[{"type":"Pods","pods":{"metric":{"name":"sessions"},
      "target":{"type":"AverageValue","averageValue":")" + target + R"("}}}]})";
}

std::vector<ScalePod> metric_pods(const std::vector<std::optional<std::int64_t>>& values) {
  std::vector<ScalePod> out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    ScalePod p;
    p.name = "p" + std::to_string(i);
    if (values[i]) {
      p.usage["sessions"] = *values[i];
    }
    out.push_back(p);
  }
  return out;
}

// Average 15 of a target 10 → ceil(1.5 * 3) = 5.
TEST(HpaPods, AverageValueScalesUp) {
  auto hpa = make(pods_spec("10"));
  const ScaleDecision d = hpa.evaluate(input(3, metric_pods({15000, 15000, 15000})));
  EXPECT_EQ(d.desired_replicas, 5);
  EXPECT_EQ(d.proposals.at(0).metric, "pods metric sessions");
}

// GetMetricUsageRatio: the average is an integer division of milli-values (4m / 3 = 1m → ratio 1).
TEST(HpaPods, AverageIsAnIntegerDivisionOfMilliValues) {
  auto hpa = make(pods_spec("1m"));
  const ScaleDecision d = hpa.evaluate(input(3, metric_pods({1, 1, 2})));
  EXPECT_EQ(d.proposals.at(0).current, 1);
  EXPECT_EQ(d.desired_replicas, 3);
}

// On a scale-down, missing pods count as using exactly the target: (5+5+5+10)/4 = 6.25 → ceil(0.625*4) = 3.
TEST(HpaPods, MissingPodsOnScaleDownUseTheTarget) {
  auto hpa = make(pods_spec("10"));
  EXPECT_EQ(hpa.evaluate(input(4, metric_pods({5000, 5000, 5000, std::nullopt}))).metric_replicas, 3);
}

// On a scale-up, missing pods count as 0: (20+20+20+0)/4 = 15 → ceil(1.5 * 4) = 6.
TEST(HpaPods, MissingPodsOnScaleUpCountAsZero) {
  auto hpa = make(pods_spec("10"));
  EXPECT_EQ(hpa.evaluate(input(4, metric_pods({20000, 20000, 20000, std::nullopt}))).desired_replicas, 6);
}

// Readiness does not matter for Pods metrics (resource ""), pending does.
TEST(HpaPods, UnreadyPodsCountButPendingOnesDoNot) {
  auto hpa = make(pods_spec("10"));
  auto list = metric_pods({20000, 20000, 20000});
  list[0].ready = false;
  EXPECT_EQ(hpa.evaluate(input(3, list)).desired_replicas, 6);
  auto hpa2 = make(pods_spec("10"));
  list[0].ready = true;
  list[0].phase = PodPhase::pending;
  EXPECT_EQ(hpa2.evaluate(input(3, list)).desired_replicas, 4);  // 40/2 = 20 → 2.0 → 40/3 = 13.3 → ceil(1.333*3)
}

// ---- Object metrics ----------------------------------------------------------------------------

std::string object_spec(const std::string& type, const std::string& key, const std::string& value) {
  return R"({"maxReplicas":100,"metrics":[{"type":"Object","object":{"describedObject":{"kind":"Service",
      "name":"web","apiVersion":"v1"},"metric":{"name":"requests"},"target":{"type":")" +
         type + R"(",")" + key + R"(":")" + value + R"("}}}]})";
}

ScaleInput object_input(std::int32_t current, std::int64_t value, int ready_pods, int unready_pods = 0) {
  std::vector<ScalePod> list;
  for (int i = 0; i < ready_pods + unready_pods; ++i) {
    ScalePod p;
    p.name = "p" + std::to_string(i);
    p.ready = i < ready_pods;
    list.push_back(p);
  }
  ScaleInput in = input(current, list);
  in.object_metrics["requests"] = value;
  return in;
}

// Value target: ratio 3 times the ready pods → 6 (no behavior: the legacy limit max(2 × 2, 4) = 4 applies).
TEST(HpaObject, ValueTargetUsesReadyPods) {
  auto hpa = make(object_spec("Value", "value", "10"));
  const ScaleDecision d = hpa.evaluate(object_input(2, 30000, 2));
  EXPECT_EQ(d.metric_replicas, 6);
  EXPECT_EQ(d.desired_replicas, 4);
  EXPECT_EQ(d.proposals.at(0).metric, "Service metric requests");
}

// getReadyPodsCount: only running and ready pods count (2 of 3 → ceil(2 * 2) = 4).
TEST(HpaObject, ValueTargetIgnoresUnreadyPods) {
  auto hpa = make(object_spec("Value", "value", "10"));
  EXPECT_EQ(hpa.evaluate(object_input(3, 20000, 2, 1)).desired_replicas, 4);
}

// Tolerance on the value ratio.
TEST(HpaObject, ValueWithinToleranceKeepsCurrent) {
  auto hpa = make(object_spec("Value", "value", "10"));
  EXPECT_EQ(hpa.evaluate(object_input(3, 10500, 3)).desired_replicas, 3);
}

// AverageValue (GetObjectPerPodMetricReplicas): ceil(usage / target) = ceil(50/10) = 5.
TEST(HpaObject, AverageValueIsUsageOverTarget) {
  auto hpa = make(object_spec("AverageValue", "averageValue", "10"));
  EXPECT_EQ(hpa.evaluate(object_input(3, 50000, 3)).desired_replicas, 5);
}

// AverageValue tolerance is judged against statusReplicas: 31 / (10 * 3) → within → 3.
TEST(HpaObject, AverageValueToleranceUsesStatusReplicas) {
  auto hpa = make(object_spec("AverageValue", "averageValue", "10"));
  const ScaleDecision d = hpa.evaluate(object_input(3, 31000, 3));
  EXPECT_EQ(d.desired_replicas, 3);
  EXPECT_EQ(d.proposals.at(0).current, 10334);  // ceil(31000 / 3)
}

// A metric the source does not return is an error: no change.
TEST(HpaObject, MissingObjectMetricIsInvalid) {
  auto hpa = make(object_spec("Value", "value", "10"));
  ScaleInput in = object_input(3, 0, 3);
  in.object_metrics.clear();
  const ScaleDecision d = hpa.evaluate(in);
  EXPECT_EQ(d.desired_replicas, 3);
  EXPECT_EQ(d.limited_by, "invalidMetrics");
}

// ---- External metrics ----------------------------------------------------------------------------

std::string external_spec(const std::string& type, const std::string& key, const std::string& value,
                          const std::string& min = "1") {
  return R"({"minReplicas":)" + min + R"(,"maxReplicas":100,"metrics":[{"type":"External","external":{
      "metric":{"name":"queue_depth"},"target":{"type":")" + type + R"(",")" + key + R"(":")" + value + R"("}}}]})";
}

// Value target: the series are summed (10 + 20) → ratio 3 → 3 × 1 ready pod.
TEST(HpaExternal, ValueSumsTheSeries) {
  auto hpa = make(external_spec("Value", "value", "10"));
  ScaleInput in = object_input(1, 0, 1);
  in.external_metrics["queue_depth"] = {10000, 20000};
  EXPECT_EQ(hpa.evaluate(in).desired_replicas, 3);
}

// AverageValue: ceil(45 / 10) = 5 (the legacy limit from 2 is 4).
TEST(HpaExternal, AverageValueIsSumOverTarget) {
  auto hpa = make(external_spec("AverageValue", "averageValue", "10"));
  ScaleInput in = object_input(2, 0, 2);
  in.external_metrics["queue_depth"] = {45000};
  const ScaleDecision d = hpa.evaluate(in);
  EXPECT_EQ(d.metric_replicas, 5);
  EXPECT_EQ(d.desired_replicas, 4);
}

// Scale from zero (minReplicas 0): with 0 replicas the proposal is ceil(ratio), no pods needed.
TEST(HpaExternal, ScaleFromZero) {
  auto hpa = make(external_spec("Value", "value", "10", "0"));
  ScaleInput in = input(0, {});
  in.external_metrics["queue_depth"] = {25000};
  EXPECT_EQ(hpa.evaluate(in).desired_replicas, 3);
}

// Scale to zero needs the scale-down window to pass: a zero queue proposes 0 at once, applied when the
// 300 s window no longer holds a higher recommendation (legacy path: the initial 2 of t=0 still counts
// at exactly t=300, not at t=301).
TEST(HpaExternal, ScaleToZeroAfterTheStabilizationWindow) {
  auto hpa = make(external_spec("Value", "value", "10", "0"));
  ScaleInput in = object_input(2, 0, 2);
  in.external_metrics["queue_depth"] = {0};
  const ScaleDecision first = hpa.evaluate(in);
  EXPECT_EQ(first.metric_replicas, 0);
  EXPECT_EQ(first.desired_replicas, 2);
  EXPECT_EQ(first.limited_by, "stabilization");
  in.now_ms = 300 * kSecond;
  EXPECT_EQ(hpa.evaluate(in).desired_replicas, 2);
  in.now_ms = 301 * kSecond;
  EXPECT_EQ(hpa.evaluate(in).desired_replicas, 0);
}

// ---- Several metrics (computeReplicasForMetrics) ---------------------------------------------------

std::string cpu_and_object_spec() {
  return R"({"maxReplicas":100,"behavior":{"scaleDown":{"stabilizationWindowSeconds":0}},"metrics":[
      {"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":30}}},
      {"type":"Object","object":{"describedObject":{"kind":"Service","name":"web"},"metric":{"name":"requests"},
       "target":{"type":"Value","value":"10"}}}]})";
}

// The highest proposal wins: cpu says 5, the object metric 6.
TEST(HpaMetrics, HighestProposalWins) {
  auto hpa = make(cpu_and_object_spec());
  ScaleInput in = input(3, pods(1000, {300, 500, 700}));
  in.object_metrics["requests"] = 20000;  // ratio 2 × 3 ready pods
  const ScaleDecision d = hpa.evaluate(in);
  ASSERT_EQ(d.proposals.size(), 2u);
  EXPECT_EQ(d.proposals[0].replicas, 5);
  EXPECT_EQ(d.proposals[1].replicas, 6);
  EXPECT_EQ(d.desired_replicas, 6);
}

// One invalid metric does not stop a scale-up that the valid ones ask for ...
TEST(HpaMetrics, InvalidMetricDoesNotBlockAScaleUp) {
  auto hpa = make(cpu_and_object_spec());
  const ScaleDecision d = hpa.evaluate(input(3, pods(1000, {300, 500, 700})));  // no object metric
  EXPECT_EQ(d.desired_replicas, 5);
  EXPECT_FALSE(d.proposals[1].error.empty());
}

// ... but blocks a scale-down ("some are invalid and we would scale down").
TEST(HpaMetrics, InvalidMetricBlocksAScaleDown) {
  auto hpa = make(cpu_and_object_spec());
  const ScaleDecision d = hpa.evaluate(input(5, pods(1000, {100, 100, 100, 100, 100})));
  EXPECT_EQ(d.desired_replicas, 5);
  EXPECT_EQ(d.limited_by, "invalidMetrics");
  EXPECT_NE(d.reason.find("1 invalid out of 2"), std::string::npos);
}

// ---- min/max (reconcileAutoscaler, convertDesiredReplicasWithBehaviorRate) -------------------------

// Above maxReplicas: the count goes to max at once, metrics unread.
TEST(HpaBounds, CurrentAboveMaxGoesToMax) {
  auto hpa = make(resource_spec("cpu", 50, "", 10));
  const ScaleDecision d = hpa.evaluate(input(12, {}));
  EXPECT_EQ(d.desired_replicas, 10);
  EXPECT_EQ(d.limited_by, "max");
}

// Below minReplicas: to min at once.
TEST(HpaBounds, CurrentBelowMinGoesToMin) {
  auto hpa = make(R"({"minReplicas":3,"maxReplicas":10})");
  const ScaleDecision d = hpa.evaluate(input(1, {}));
  EXPECT_EQ(d.desired_replicas, 3);
  EXPECT_EQ(d.limited_by, "min");
}

// A target scaled to 0 with minReplicas != 0: autoscaling is disabled.
TEST(HpaBounds, ZeroReplicasWithNonZeroMinDisablesScaling) {
  auto hpa = make(resource_spec("cpu", 50));
  const ScaleDecision d = hpa.evaluate(input(0, pods(1000, {1000})));
  EXPECT_EQ(d.desired_replicas, 0);
  EXPECT_EQ(d.limited_by, "scalingDisabled");
}

// A proposal above maxReplicas is capped ("TooManyReplicas").
TEST(HpaBounds, ProposalAboveMaxIsCapped) {
  auto hpa = make(resource_spec("cpu", 50, "", 10));
  const ScaleDecision d = hpa.evaluate(input(8, pods(1000, std::vector<std::int64_t>(8, 1000))));
  EXPECT_EQ(d.metric_replicas, 16);
  EXPECT_EQ(d.desired_replicas, 10);
  EXPECT_EQ(d.limited_by, "max");
}

// A proposal below minReplicas is raised ("TooFewReplicas").
TEST(HpaBounds, ProposalBelowMinIsRaised) {
  auto hpa = make(R"({"minReplicas":2,"maxReplicas":10,"behavior":{"scaleDown":{"stabilizationWindowSeconds":0}}})");
  const ScaleDecision d = hpa.evaluate(input(4, pods(1000, {100, 100, 100, 100})));  // 10% of 80%
  EXPECT_EQ(d.metric_replicas, 1);
  EXPECT_EQ(d.desired_replicas, 2);
  EXPECT_EQ(d.limited_by, "min");
}

// ---- Stabilization (stabilizeRecommendationWithBehaviors) ---------------------------------------

// recordInitialRecommendation + the default 300 s scale-down window: a new HPA does not scale down
// before 300 s have passed since its first evaluation. With a behavior (stabilizeRecommendationWithBehaviors
// keeps records strictly after the cutoff) the initial record has left at exactly 300 s ...
TEST(HpaStabilization, DefaultScaleDownWindowIs300Seconds) {
  auto hpa = make(resource_spec("cpu", 50, R"(,"behavior":{})"));
  const auto list = pods(1000, {100, 100, 100, 100, 100});
  ScaleDecision d = hpa.evaluate(input(5, list, 0));
  EXPECT_EQ(d.desired_replicas, 5);
  EXPECT_EQ(d.limited_by, "stabilization");
  d = hpa.evaluate(input(5, list, 299 * kSecond));
  EXPECT_EQ(d.desired_replicas, 5);
  d = hpa.evaluate(input(5, list, 300 * kSecond));
  EXPECT_EQ(d.desired_replicas, 1);
}

// ... without one (stabilizeRecommendation: only records *before* the cutoff are old) it still counts
// at 300 s, and the scale-down comes one evaluation later. 10% of a 50% target: ceil(0.2 × 5) = 1.
TEST(HpaStabilization, LegacyScaleDownWindowIncludesItsCutoff) {
  auto hpa = make(resource_spec("cpu", 50));
  const auto list = pods(1000, {100, 100, 100, 100, 100});
  ScaleDecision d = hpa.evaluate(input(5, list, 0));
  EXPECT_EQ(d.desired_replicas, 5);
  EXPECT_EQ(d.limited_by, "stabilization");
  d = hpa.evaluate(input(5, list, 300 * kSecond));
  EXPECT_EQ(d.desired_replicas, 5);
  EXPECT_EQ(d.limited_by, "stabilization");
  d = hpa.evaluate(input(5, list, 301 * kSecond));
  EXPECT_EQ(d.metric_replicas, 1);
  EXPECT_EQ(d.desired_replicas, 1);
  EXPECT_EQ(d.limited_by, "");
}

// The scale-down window applies the highest recommendation still inside it.
TEST(HpaStabilization, ScaleDownTakesTheHighestRecentRecommendation) {
  auto hpa = make(pods_spec("10").insert(1, R"("behavior":{"scaleDown":{"stabilizationWindowSeconds":120}},)"));
  auto at = [&](std::int64_t s, std::int64_t per_pod) {
    return hpa.evaluate(input(10, metric_pods(std::vector<std::optional<std::int64_t>>(10, per_pod)), s * kSecond));
  };
  EXPECT_EQ(at(0, 10000).desired_replicas, 10);
  EXPECT_EQ(at(30, 6000).desired_replicas, 10);  // 6 proposed, 10 recorded at t=0
  EXPECT_EQ(at(60, 7000).desired_replicas, 10);
  const ScaleDecision d = at(121, 5000);  // t=0 has left: max(5, 6, 7) = 7
  EXPECT_EQ(d.metric_replicas, 5);
  EXPECT_EQ(d.desired_replicas, 7);
  EXPECT_EQ(d.limited_by, "stabilization");
}

// A scale-up window applies the lowest recommendation inside it.
TEST(HpaStabilization, ScaleUpWindowTakesTheLowestRecentRecommendation) {
  auto hpa = make(pods_spec("10").insert(1, R"("behavior":{"scaleUp":{"stabilizationWindowSeconds":60}},)"));
  auto at = [&](std::int64_t s, std::int32_t current, std::int64_t per_pod) {
    return hpa.evaluate(
        input(current, metric_pods(std::vector<std::optional<std::int64_t>>(current, per_pod)), s * kSecond));
  };
  EXPECT_EQ(at(0, 2, 10000).desired_replicas, 2);
  const ScaleDecision held = at(10, 2, 30000);  // proposes 6, but 2 was recommended within 60 s
  EXPECT_EQ(held.metric_replicas, 6);
  EXPECT_EQ(held.desired_replicas, 2);
  EXPECT_EQ(held.limited_by, "stabilization");
  EXPECT_EQ(at(61, 2, 30000).desired_replicas, 6);  // t=0 left; lowest of {6 at 10 s, 6 now}
}

// Without a scale-up window (default 0; the legacy path has none) a scale-up is immediate.
TEST(HpaStabilization, DefaultScaleUpIsImmediate) {
  auto with_behavior = make(pods_spec("10").insert(1, R"("behavior":{},)"));
  EXPECT_EQ(with_behavior.evaluate(input(2, metric_pods({20000, 20000}))).desired_replicas, 4);
  auto legacy = make(pods_spec("10"));
  EXPECT_EQ(legacy.evaluate(input(2, metric_pods({20000, 20000}))).desired_replicas, 4);
}

// ---- Scaling policies (calculateScale{Up,Down}Limit…) ----------------------------------------------

/// The Pods-metric spec with `"behavior": {}`: every rule at its default (GenerateHPAScale{Up,Down}Rules).
std::string default_behavior_spec() { return pods_spec("10").insert(1, R"("behavior":{},)"); }

// Default scale-up: max(+4 pods, +100%) per 15 s: from 2, at most 6.
TEST(HpaPolicies, DefaultScaleUpFromTwoIsFourPods) {
  auto hpa = make(default_behavior_spec());
  const ScaleDecision d = hpa.evaluate(input(2, metric_pods({100000, 100000})));
  EXPECT_EQ(d.metric_replicas, 20);
  EXPECT_EQ(d.desired_replicas, 6);
  EXPECT_EQ(d.limited_by, "policy");
}

// From 10, +100% (20) beats +4 (14).
TEST(HpaPolicies, DefaultScaleUpFromTenIsDoubling) {
  auto hpa = make(default_behavior_spec());
  EXPECT_EQ(hpa.evaluate(input(10, metric_pods(std::vector<std::optional<std::int64_t>>(10, 50000))))
                .desired_replicas,
            20);
}

// Scale events inside the period count against it: after 10 → 20 at t=0, at t=10 the period started
// at 10 replicas, so the limit is still 20; at t=15 the event has left (strictly after the cutoff).
TEST(HpaPolicies, ScaleUpEventsInsideThePeriodCount) {
  auto hpa = make(default_behavior_spec());
  auto at = [&](std::int64_t s, std::int32_t current) {
    return hpa.evaluate(
        input(current, metric_pods(std::vector<std::optional<std::int64_t>>(current, 50000)), s * kSecond));
  };
  EXPECT_EQ(at(0, 10).desired_replicas, 20);
  const ScaleDecision held = at(10, 20);
  EXPECT_EQ(held.desired_replicas, 20);
  EXPECT_EQ(held.limited_by, "policy");
  EXPECT_EQ(at(15, 20).desired_replicas, 40);
}

// selectPolicy Min on a scale-up: the smaller change (+4 rather than +100%).
TEST(HpaPolicies, SelectPolicyMinOnScaleUp) {
  auto hpa = make(pods_spec("10").insert(1, R"("behavior":{"scaleUp":{"selectPolicy":"Min"}},)"));
  EXPECT_EQ(hpa.evaluate(input(10, metric_pods(std::vector<std::optional<std::int64_t>>(10, 50000))))
                .desired_replicas,
            14);
}

// selectPolicy Disabled: no scale-up at all.
TEST(HpaPolicies, SelectPolicyDisabledBlocksScaleUp) {
  auto hpa = make(pods_spec("10").insert(1, R"("behavior":{"scaleUp":{"selectPolicy":"Disabled"}},)"));
  const ScaleDecision d = hpa.evaluate(input(2, metric_pods({50000, 50000})));
  EXPECT_EQ(d.desired_replicas, 2);
  EXPECT_EQ(d.limited_by, "policy");
}

// A Percent policy is rounded up on a scale-up: +10% of 3 is ceil(3.3) = 4.
TEST(HpaPolicies, PercentScaleUpRoundsUp) {
  auto hpa = make(pods_spec("10").insert(
      1, R"("behavior":{"scaleUp":{"policies":[{"type":"Percent","value":10,"periodSeconds":60}]}},)"));
  EXPECT_EQ(hpa.evaluate(input(3, metric_pods({50000, 50000, 50000}))).desired_replicas, 4);
}

std::string down_spec(const std::string& rules) {
  return pods_spec("10").insert(1, R"("behavior":{"scaleDown":{"stabilizationWindowSeconds":0,)" + rules + "}},");
}

// A Percent policy is truncated on a scale-down: -25% of 10 → int(7.5) = 7.
TEST(HpaPolicies, PercentScaleDownTruncates) {
  auto hpa = make(down_spec(R"("policies":[{"type":"Percent","value":25,"periodSeconds":60}])"));
  const ScaleDecision d = hpa.evaluate(input(10, metric_pods(std::vector<std::optional<std::int64_t>>(10, 1000))));
  EXPECT_EQ(d.desired_replicas, 7);
  EXPECT_EQ(d.limited_by, "policy");
}

// A Pods policy on a scale-down: at most 2 fewer per period.
TEST(HpaPolicies, PodsScaleDown) {
  auto hpa = make(down_spec(R"("policies":[{"type":"Pods","value":2,"periodSeconds":60}])"));
  EXPECT_EQ(hpa.evaluate(input(10, metric_pods(std::vector<std::optional<std::int64_t>>(10, 1000))))
                .desired_replicas,
            8);
}

// Scale-down with Pods 2 and Percent 50: Max picks the biggest change (5), Min the smallest (8).
TEST(HpaPolicies, SelectPolicyOnScaleDown) {
  const std::string policies =
      R"("policies":[{"type":"Pods","value":2,"periodSeconds":60},{"type":"Percent","value":50,"periodSeconds":60}])";
  auto max_hpa = make(down_spec(policies + R"(,"selectPolicy":"Max")"));
  auto min_hpa = make(down_spec(policies + R"(,"selectPolicy":"Min")"));
  const auto in = input(10, metric_pods(std::vector<std::optional<std::int64_t>>(10, 1000)));
  EXPECT_EQ(max_hpa.evaluate(in).desired_replicas, 5);
  EXPECT_EQ(min_hpa.evaluate(in).desired_replicas, 8);
}

// Scale-down events inside the period count: after 10 → 8 at t=0, at t=30 the period started at 10,
// so nothing more; at t=60 the event has left and 8 → 6.
TEST(HpaPolicies, ScaleDownEventsInsideThePeriodCount) {
  auto hpa = make(down_spec(R"("policies":[{"type":"Pods","value":2,"periodSeconds":60}])"));
  auto at = [&](std::int64_t s, std::int32_t current) {
    return hpa.evaluate(
        input(current, metric_pods(std::vector<std::optional<std::int64_t>>(current, 1000)), s * kSecond));
  };
  EXPECT_EQ(at(0, 10).desired_replicas, 8);
  EXPECT_EQ(at(30, 8).desired_replicas, 8);
  EXPECT_EQ(at(60, 8).desired_replicas, 6);
}

// selectPolicy Disabled on scale-down.
TEST(HpaPolicies, SelectPolicyDisabledBlocksScaleDown) {
  auto hpa = make(down_spec(R"("selectPolicy":"Disabled")"));
  const ScaleDecision d = hpa.evaluate(input(10, metric_pods(std::vector<std::optional<std::int64_t>>(10, 1000))));
  EXPECT_EQ(d.desired_replicas, 10);
  EXPECT_EQ(d.limited_by, "policy");
}

// The default scale-down policy (-100% per 15 s) lets a scale-down go all the way to the proposal.
TEST(HpaPolicies, DefaultScaleDownPolicyAllowsEverything) {
  auto hpa = make(down_spec(R"("selectPolicy":"Max")"));
  EXPECT_EQ(hpa.evaluate(input(10, metric_pods(std::vector<std::optional<std::int64_t>>(10, 1000))))
                .desired_replicas,
            1);
}

// A policy limit above maxReplicas leaves max as the binding rule.
TEST(HpaPolicies, MaxBindsBeforeALooserPolicy) {
  auto hpa = make(default_behavior_spec().replace(default_behavior_spec().find("100"), 3, "12"));
  const ScaleDecision d = hpa.evaluate(input(10, metric_pods(std::vector<std::optional<std::int64_t>>(10, 50000))));
  EXPECT_EQ(d.desired_replicas, 12);
  EXPECT_EQ(d.limited_by, "max");
}

// ---- No behavior: the legacy normalisation (normalizeDesiredReplicas) ---------------------------------
//
// reconcileAutoscaler: "if hpa.Spec.Behavior == nil { normalizeDesiredReplicas } else
// { normalizeDesiredReplicasWithBehaviors }". The legacy path stabilizes only downward (the 300 s
// downscale window) and limits a scale-up to calculateScaleUpLimit = max(2 × current, 4) per
// evaluation — no periods, no scale events, no scale-down limit. A behavior, even {}, takes the other
// path with every missing rule at its default: +4 pods or +100% per 15 s up, -100% per 15 s down.

/// External AverageValue 1 per replica: the metric proposes exactly `proposal`, whatever the pods.
std::string proposal_spec(const std::string& behavior, std::int32_t min_replicas = 1,
                          std::int32_t max_replicas = 100) {
  return R"({"minReplicas":)" + std::to_string(min_replicas) + R"(,"maxReplicas":)" + std::to_string(max_replicas) +
         behavior + R"(,"metrics":[{"type":"External","external":{"metric":{"name":"queue_depth"},
         "target":{"type":"AverageValue","averageValue":"1"}}}]})";
}

ScaleInput proposal_input(std::int32_t current, std::int64_t proposal, std::int64_t now_ms = 0) {
  ScaleInput in = input(current, {}, now_ms);
  in.external_metrics["queue_depth"] = {proposal * 1000};
  return in;
}

struct ScaleUpRow {
  std::int32_t current;
  std::int32_t proposal;
  std::int32_t max_replicas;
  std::int32_t legacy;             // min(proposal, maxReplicas, max(2 × current, 4))
  std::string legacy_limited_by;
  std::int32_t with_behavior;      // behavior {}: min(proposal, maxReplicas, max(current + 4, 2 × current))
  std::string behavior_limited_by;
};

TEST(HpaLegacy, ScaleUpLimitIsTwiceCurrentOrFour_VersusTheDefaultBehavior) {
  const std::vector<ScaleUpRow> rows = {
      {1, 20, 100, 4, "scaleUpLimit", 5, "policy"},    // max(2, 4) = 4;    max(1 + 4, 2) = 5
      {2, 20, 100, 4, "scaleUpLimit", 6, "policy"},    // max(4, 4) = 4;    max(6, 4) = 6
      {3, 20, 100, 6, "scaleUpLimit", 7, "policy"},    // max(6, 4) = 6;    max(7, 6) = 7
      {4, 20, 100, 8, "scaleUpLimit", 8, "policy"},    // 8 either way from 4 on
      {10, 20, 100, 20, "", 20, ""},                   // the proposal is within both limits
      {10, 50, 100, 20, "scaleUpLimit", 20, "policy"}, // doubling
      {10, 50, 15, 15, "max", 15, "max"},              // maxReplicas below the rate limit binds
      {3, 5, 100, 5, "", 5, ""},                       // a small step is never limited
  };
  for (const ScaleUpRow& r : rows) {
    auto legacy = make(proposal_spec("", 1, r.max_replicas));
    const ScaleDecision l = legacy.evaluate(proposal_input(r.current, r.proposal));
    EXPECT_EQ(l.metric_replicas, r.proposal) << "current=" << r.current;
    EXPECT_EQ(l.desired_replicas, r.legacy) << "legacy, current=" << r.current << " proposal=" << r.proposal;
    EXPECT_EQ(l.limited_by, r.legacy_limited_by) << "legacy, current=" << r.current;
    auto with_behavior = make(proposal_spec(R"(,"behavior":{})", 1, r.max_replicas));
    const ScaleDecision b = with_behavior.evaluate(proposal_input(r.current, r.proposal));
    EXPECT_EQ(b.desired_replicas, r.with_behavior) << "behavior {}, current=" << r.current << " proposal=" << r.proposal;
    EXPECT_EQ(b.limited_by, r.behavior_limited_by) << "behavior {}, current=" << r.current;
  }
}

// Scale from zero (minReplicas 0): the legacy limit from 0 is max(0, 4) = 4; the default behavior's
// is max(0 + 4, 0 × 200%) = 4 as well.
TEST(HpaLegacy, ScaleFromZeroIsLimitedToFour) {
  auto legacy = make(proposal_spec("", 0));
  const ScaleDecision d = legacy.evaluate(proposal_input(0, 25));
  EXPECT_EQ(d.metric_replicas, 25);
  EXPECT_EQ(d.desired_replicas, 4);
  EXPECT_EQ(d.limited_by, "scaleUpLimit");
}

// The limit is per evaluation: no scale events are kept, so 10 s after 10 → 20 the next evaluation may
// double again to 40. With a behavior, the +100% per 15 s period started at 10 and holds 20 (see
// HpaPolicies.ScaleUpEventsInsideThePeriodCount).
TEST(HpaLegacy, NoPeriodsEachEvaluationMayDouble) {
  auto legacy = make(proposal_spec(""));
  EXPECT_EQ(legacy.evaluate(proposal_input(10, 80, 0)).desired_replicas, 20);
  EXPECT_EQ(legacy.evaluate(proposal_input(20, 80, 10 * kSecond)).desired_replicas, 40);
  EXPECT_EQ(legacy.evaluate(proposal_input(40, 80, 11 * kSecond)).desired_replicas, 80);

  auto with_behavior = make(proposal_spec(R"(,"behavior":{})"));
  EXPECT_EQ(with_behavior.evaluate(proposal_input(10, 80, 0)).desired_replicas, 20);
  const ScaleDecision held = with_behavior.evaluate(proposal_input(20, 80, 10 * kSecond));
  EXPECT_EQ(held.desired_replicas, 20);
  EXPECT_EQ(held.limited_by, "policy");
}

// Scale-down has no rate limit on the legacy path: once the window has passed (t=301 s; the records
// of t=0 count until t=300 inclusive) 10 goes to the proposal 2 in one step; a proposal of 0 is raised
// to minReplicas ("TooFewReplicas").
TEST(HpaLegacy, ScaleDownIsOnlyStabilizedThenBoundedByMin) {
  auto legacy = make(proposal_spec("", 2));
  ScaleDecision d = legacy.evaluate(proposal_input(10, 3, 0));
  EXPECT_EQ(d.desired_replicas, 10);
  EXPECT_EQ(d.limited_by, "stabilization");
  d = legacy.evaluate(proposal_input(10, 3, 300 * kSecond));
  EXPECT_EQ(d.desired_replicas, 10);
  d = legacy.evaluate(proposal_input(10, 3, 301 * kSecond));
  EXPECT_EQ(d.desired_replicas, 3);  // highest of {3 at t=0, 3 at t=300, 3 now}
  d = legacy.evaluate(proposal_input(3, 0, 700 * kSecond));
  EXPECT_EQ(d.desired_replicas, 2);
  EXPECT_EQ(d.limited_by, "min");
}

// The downscale window keeps the highest recommendation of the last 300 s, also when it was the
// metric's and never applied: 10, 30 (limited to 20), 5 → the window holds 30, and 30 is then limited by
// max(2 × 20, 4) = 40, so desired is 30, not 5.
TEST(HpaLegacy, TheWindowHoldsTheHighestProposalNotTheHighestApplied) {
  auto legacy = make(proposal_spec(""));
  EXPECT_EQ(legacy.evaluate(proposal_input(10, 10, 0)).desired_replicas, 10);
  EXPECT_EQ(legacy.evaluate(proposal_input(10, 30, 15 * kSecond)).desired_replicas, 20);
  const ScaleDecision d = legacy.evaluate(proposal_input(20, 5, 30 * kSecond));
  EXPECT_EQ(d.metric_replicas, 5);
  EXPECT_EQ(d.desired_replicas, 30);
  EXPECT_EQ(d.limited_by, "stabilization");
}

// max(2 × current, 4) in float64 is 3e9 from 1.5e9 replicas: past int32, it saturates (Go's int32()
// gave MinInt32 on amd64 and a limit below current); maxReplicas then binds, the proposal MaxInt32 fits.
TEST(HpaLegacy, ScaleUpLimitSaturatesAtMaxInt32) {
  auto legacy = make(proposal_spec("", 1, INT32_MAX));
  const ScaleDecision d = legacy.evaluate(proposal_input(1500000000, INT32_MAX));
  EXPECT_EQ(d.desired_replicas, INT32_MAX);
  EXPECT_EQ(d.limited_by, "");
}

// A partial behavior takes the behavior path, the rest at its defaults: only a scale-down window
// given, the scale-up from 1 follows the default policies (max(1 + 4, 2) = 5, not the legacy 4) ...
TEST(HpaLegacy, APartialBehaviorTakesTheBehaviorPathWithDefaults) {
  auto down_only = make(proposal_spec(R"(,"behavior":{"scaleDown":{"stabilizationWindowSeconds":0}})"));
  ScaleDecision d = down_only.evaluate(proposal_input(1, 20));
  EXPECT_EQ(d.desired_replicas, 5);
  EXPECT_EQ(d.limited_by, "policy");
  // ... and only scaleUp given, the scale-down window is the default 300 s, its cutoff excluded.
  auto up_only = make(proposal_spec(R"(,"behavior":{"scaleUp":{"selectPolicy":"Max"}})"));
  EXPECT_EQ(up_only.evaluate(proposal_input(10, 3, 0)).desired_replicas, 10);
  EXPECT_EQ(up_only.evaluate(proposal_input(10, 3, 299 * kSecond)).desired_replicas, 10);
  EXPECT_EQ(up_only.evaluate(proposal_input(10, 3, 300 * kSecond)).desired_replicas, 3);
  // "behavior": null is no behavior (Kubernetes reads null as absent): the legacy path.
  auto null_behavior = make(proposal_spec(R"(,"behavior":null)"));
  d = null_behavior.evaluate(proposal_input(1, 20));
  EXPECT_EQ(d.desired_replicas, 4);
  EXPECT_EQ(d.limited_by, "scaleUpLimit");
}

// The scale-up the 50 users/s ramp needs (docs/operations.md "Following a ramp"): 750 sessions per 15 s
// with one session per replica. From 1 replica, the legacy path allows 4, the default behavior 5; a
// behavior with a Pods 1500 per 15 s policy allows 1501, and the next period (the +749 event left at
// exactly 15 s) 750 + 1500.
TEST(HpaLegacy, APodsPolicyFollowsARampTheLegacyLimitDoesNot) {
  const std::string fast = R"(,"behavior":{"scaleUp":{"stabilizationWindowSeconds":0,
      "policies":[{"type":"Pods","value":1500,"periodSeconds":15}],"selectPolicy":"Max"}})";
  auto follows = make(proposal_spec(fast, 1, 10000));
  auto legacy = make(proposal_spec("", 1, 10000));
  std::int32_t current_fast = 1;
  std::int32_t current_legacy = 1;
  for (int k = 1; k <= 4; ++k) {
    const std::int64_t sessions = 750 * k;
    current_fast = follows.evaluate(proposal_input(current_fast, sessions, k * 15 * kSecond)).desired_replicas;
    current_legacy = legacy.evaluate(proposal_input(current_legacy, sessions, k * 15 * kSecond)).desired_replicas;
    EXPECT_EQ(current_fast, sessions) << "t=" << k * 15;
  }
  EXPECT_EQ(current_legacy, 32);  // 4, 8, 16, 32
}

// ---- Tolerance settings ----------------------------------------------------------------------------

// --horizontal-pod-autoscaler-tolerance: 0.2 keeps 115% still.
TEST(HpaTolerance, GlobalToleranceIsConfigurable) {
  auto hpa = make(resource_spec("cpu", 100), 0.2);
  EXPECT_EQ(hpa.evaluate(input(3, pods(1000, {1150, 1150, 1150}))).desired_replicas, 3);
  auto strict = make(resource_spec("cpu", 100), 0.0);
  EXPECT_EQ(strict.evaluate(input(3, pods(1000, {1010, 1010, 1010}))).desired_replicas, 4);
}

// behavior.scaleUp.tolerance overrides the tolerance for scale-ups only.
TEST(HpaTolerance, PerDirectionTolerance) {
  const std::string spec = resource_spec("cpu", 100, R"(,"behavior":{"scaleUp":{"tolerance":"0.5"},
      "scaleDown":{"stabilizationWindowSeconds":0}})");
  auto hpa = make(spec);
  EXPECT_EQ(hpa.evaluate(input(4, pods(1000, {1400, 1400, 1400, 1400}))).desired_replicas, 4);
  auto hpa2 = make(spec);
  EXPECT_EQ(hpa2.evaluate(input(4, pods(1000, {850, 850, 850, 850}))).desired_replicas, 4);  // ceil(0.85*4)
  auto hpa3 = make(spec);
  EXPECT_EQ(hpa3.evaluate(input(10, pods(1000, std::vector<std::int64_t>(10, 850)))).desired_replicas, 9);
}

// ---- Metric values at the int64 limits ------------------------------------------------------------
//
// No undefined behaviour whatever the samples: each of these overflowed a signed integer or converted an
// out-of-range double in the C++ before, which the asan preset (UBSan, float-cast-overflow included)
// stops at. The expected values follow upstream where it decided (MaxInt32 for replica counts,
// MaxInt64 for External sums and per-pod averages) and saturation where Go merely wraps.

constexpr std::int64_t kMax64 = INT64_MAX;
constexpr std::int64_t kMin64 = INT64_MIN;
constexpr std::int32_t kMax32 = INT32_MAX;

// GetObjectPerPodMetricReplicas with usage math.MaxInt64 and 1 replica: the per-pod average is
// ceil(2^63 / 1) = 2^63, one past int64 (was a cast of 2^63 to int64); it saturates. The proposal
// ceil(MaxInt64 / 1000) ≈ 9.2e15 saturates at MaxInt32, then maxReplicas (5) binds.
TEST(HpaInt64Limits, ObjectAverageValueAtMaxInt64) {
  auto hpa = make(object_spec("AverageValue", "averageValue", "1").replace(15, 3, "5"));
  const ScaleDecision d = hpa.evaluate(object_input(3, kMax64, 3));
  EXPECT_EQ(d.proposals.at(0).replicas, kMax32);
  EXPECT_EQ(d.desired_replicas, 5);
  EXPECT_EQ(d.limited_by, "max");
  ScaleInput one = object_input(1, kMax64, 1);
  auto hpa1 = make(object_spec("AverageValue", "averageValue", "1"));
  EXPECT_EQ(hpa1.evaluate(one).proposals.at(0).current, kMax64);
  // Over 2 replicas the Object variant has no guard: ceil(2^63 / 2) = 2^62.
  auto hpa2 = make(object_spec("AverageValue", "averageValue", "1"));
  EXPECT_EQ(hpa2.evaluate(object_input(2, kMax64, 2)).proposals.at(0).current, std::int64_t{1} << 62);
}

// GetExternalPerPodMetricReplicas: "if float64(usage) >= float64(math.MaxInt64) { usage = math.MaxInt64 }"
// — the average reported is MaxInt64 over any number of replicas (2 here, where Object gives 2^62).
TEST(HpaInt64Limits, ExternalAverageValueAtMaxInt64) {
  for (const std::int32_t replicas : {1, 2}) {
    auto hpa = make(external_spec("AverageValue", "averageValue", "1"));
    ScaleInput in = object_input(replicas, 0, replicas);
    in.external_metrics["queue_depth"] = {kMax64};
    const ScaleDecision d = hpa.evaluate(in);
    EXPECT_EQ(d.proposals.at(0).current, kMax64) << replicas;
    EXPECT_EQ(d.proposals.at(0).replicas, kMax32) << replicas;
  }
}

// GetExternalPerPodMetricReplicas sums the series and takes a sum that turns negative as an overflow:
// 5 - 6 = -1 < 0 → MaxInt64 (upstream's rule, applied to a negative sample too), so ceil(MaxInt64 / 1000)
// saturates at MaxInt32. Two samples of MaxInt64 overflow for real: the same.
TEST(HpaInt64Limits, ExternalAverageValueNegativeOrOverflowingSumIsMaxInt64) {
  for (const std::vector<std::int64_t>& series :
       {std::vector<std::int64_t>{5000, -6000, 3000}, std::vector<std::int64_t>{kMax64, kMax64}}) {
    auto hpa = make(external_spec("AverageValue", "averageValue", "1"));
    ScaleInput in = object_input(2, 0, 2);
    in.external_metrics["queue_depth"] = series;
    const ScaleDecision d = hpa.evaluate(in);
    EXPECT_EQ(d.proposals.at(0).current, kMax64);
    EXPECT_EQ(d.proposals.at(0).replicas, kMax32);
  }
}

// GetExternalMetricReplicas (Value): a positive overflow stops the sum at MaxInt64 — the -MaxInt64
// after it is not added (kubernetes#133888). ratio ≈ 9.2e15 × 1 ready pod → MaxInt32.
TEST(HpaInt64Limits, ExternalValueSumStopsAtMaxInt64) {
  auto hpa = make(external_spec("Value", "value", "1"));
  ScaleInput in = object_input(1, 0, 1);
  in.external_metrics["queue_depth"] = {kMax64, 1, -kMax64};
  const ScaleDecision d = hpa.evaluate(in);
  EXPECT_EQ(d.proposals.at(0).current, kMax64);
  EXPECT_EQ(d.proposals.at(0).replicas, kMax32);
}

// Below MinInt64 Go wraps (MinInt64 - 1 would become MaxInt64 and scale up); we saturate at MinInt64:
// the ratio is hugely negative, the proposal saturates at MinInt32, and the metric asks for 0.
TEST(HpaInt64Limits, ExternalValueSumSaturatesAtMinInt64) {
  auto hpa = make(external_spec("Value", "value", "1"));
  ScaleInput in = object_input(1, 0, 1);
  in.external_metrics["queue_depth"] = {kMin64, -1};
  const ScaleDecision d = hpa.evaluate(in);
  EXPECT_EQ(d.proposals.at(0).current, kMin64);
  EXPECT_EQ(d.proposals.at(0).replicas, INT32_MIN);
  EXPECT_EQ(d.metric_replicas, 0);
}

// GetMetricUsageRatio: two pods at MaxInt64 overflow the sum; the average is exactly MaxInt64, the
// ratio ≈ 9.2e15, and ceil(ratio × 2) saturates at MaxInt32.
TEST(HpaInt64Limits, PodsMetricSumPastMaxInt64) {
  auto hpa = make(pods_spec("1"));
  const ScaleDecision d = hpa.evaluate(input(2, metric_pods({kMax64, kMax64})));
  EXPECT_EQ(d.proposals.at(0).current, kMax64);
  EXPECT_EQ(d.proposals.at(0).replicas, kMax32);
}

// GetResourceUtilizationRatio: metricsTotal * 100 overflows for a sample of MaxInt64 milli-cpu. Exactly,
// MaxInt64 * 100 / 1000 = 922337203685477580 %, saturated to MaxInt32 %; against a 50% target that is
// a ratio of 2147483647 / 50 = 42949672.94 → ceil(42949672.94 × 1 pod) = 42949673.
TEST(HpaInt64Limits, ResourceUtilizationPercentPastInt32) {
  auto hpa = make(resource_spec("cpu", 50));
  const ScaleDecision d = hpa.evaluate(input(1, pods(1000, {kMax64})));
  EXPECT_EQ(d.proposals.at(0).current, kMax32);
  EXPECT_EQ(d.proposals.at(0).replicas, 42949673);
}

// A pod's usage is the sum over its containers (two at MaxInt64: saturates at MaxInt64), and so is its
// request (two at MaxInt64 against usage 2000m: 2000 × 100 / MaxInt64 = 0 %, a ratio of 0 → 0).
TEST(HpaInt64Limits, ContainerSumsPastMaxInt64) {
  ScalePod hot;
  hot.name = "hot";
  hot.containers = {{"a", {{"cpu", 1000}}, {{"cpu", kMax64}}}, {"b", {{"cpu", 1000}}, {{"cpu", kMax64}}}};
  auto hpa = make(resource_spec("cpu", 50));
  EXPECT_EQ(hpa.evaluate(input(1, {hot})).proposals.at(0).current, kMax32);

  ScalePod huge_request;
  huge_request.name = "big";
  huge_request.containers = {{"a", {{"cpu", kMax64}}, {{"cpu", 1000}}}, {"b", {{"cpu", kMax64}}, {{"cpu", 1000}}}};
  auto hpa2 = make(resource_spec("cpu", 50));
  const ScaleDecision d = hpa2.evaluate(input(1, {huge_request}));
  EXPECT_EQ(d.proposals.at(0).current, 0);
  EXPECT_EQ(d.proposals.at(0).replicas, 0);
}

// A missing pod on a scale-down counts as request × max(100, target) / 100: MaxInt64 × 200 overflows;
// it saturates at MaxInt64. Then (100 + MaxInt64) × 100 / (1000 + MaxInt64) = 99 % of a 200 % target
// → ceil(0.495 × 2 pods) = 1.
TEST(HpaInt64Limits, MissingPodFallbackPastMaxInt64) {
  auto hpa = make(resource_spec("cpu", 200));
  std::vector<ScalePod> list{pod("a", 1000, 100), pod("missing", kMax64, std::nullopt)};
  EXPECT_EQ(hpa.evaluate(input(2, list)).metric_replicas, 1);
}

// Scale events inside a policy's period are summed (getReplicasChangePerPeriod); two scale-downs of
// 2147483646 within 1800 s overflow Go's int32 sum. Percent 100 down allows everything whatever the
// period started at, so each evaluation goes from MaxInt32 to minReplicas 1.
TEST(HpaInt64Limits, ScaleEventsSummedPastInt32) {
  auto hpa = make(R"({"minReplicas":1,"maxReplicas":2147483647,"behavior":{"scaleDown":{
      "stabilizationWindowSeconds":0,"policies":[{"type":"Percent","value":100,"periodSeconds":1800}]}},
      "metrics":[{"type":"External","external":{"metric":{"name":"queue_depth"},
      "target":{"type":"AverageValue","averageValue":"1"}}}]})");
  for (int t = 0; t < 3; ++t) {
    ScaleInput in = input(kMax32, {}, t * kSecond);
    in.external_metrics["queue_depth"] = {0};
    const ScaleDecision d = hpa.evaluate(in);
    EXPECT_EQ(d.desired_replicas, 1) << "t=" << t;
    EXPECT_EQ(d.limited_by, "min") << "t=" << t;
  }
}

// A current count of MinInt32 (below minReplicas) goes to minReplicas at once; the scale event's
// change, 1 - MinInt32, does not fit an int32.
TEST(HpaInt64Limits, ScaleEventFromMinInt32) {
  auto hpa = make(pods_spec("10").insert(1, R"("behavior":{},)"));
  const ScaleDecision d = hpa.evaluate(input(INT32_MIN, {}));
  EXPECT_EQ(d.desired_replicas, 1);
  EXPECT_EQ(d.limited_by, "min");
}

// Policies past MaxInt32 saturate rather than wrap: Go's int32 Pods policy 10 + 2147483647 wraps
// negative and Percent's int32(math.Ceil(1000 × 21474837.47)) is out of range — both froze scale-up
// on amd64 (kubernetes#141397). Here the limit is MaxInt32 and the proposal goes through.
TEST(HpaInt64Limits, PoliciesPastInt32Saturate) {
  for (const char* policy : {R"({"type":"Pods","value":2147483647,"periodSeconds":15})",
                             R"({"type":"Percent","value":2147483647,"periodSeconds":15})"}) {
    auto hpa = make(R"({"maxReplicas":2147483647,"behavior":{"scaleUp":{"policies":[)" + std::string(policy) +
                    R"(]}},"metrics":[{"type":"External","external":{"metric":{"name":"queue_depth"},
        "target":{"type":"AverageValue","averageValue":"1"}}}]})");
    ScaleInput in = input(1000, {});
    in.external_metrics["queue_depth"] = {2000000000LL * 1000};
    const ScaleDecision d = hpa.evaluate(in);
    EXPECT_EQ(d.desired_replicas, 2000000000) << policy;
  }
}

// ---- Spec parsing: defaults and validation, each error naming the field ----------------------------

TEST(HpaSpecParse, NoBehaviorWhenAbsent) {
  const HpaSpec s = parse_spec(json::parse(R"({"maxReplicas":5})"), 0.1);
  EXPECT_EQ(s.min_replicas, 1);
  EXPECT_FALSE(s.behavior.has_value());
}

TEST(HpaSpecParse, DefaultsForAnEmptyBehavior) {
  const HpaSpec s = parse_spec(json::parse(R"({"maxReplicas":5,"behavior":{}})"), 0.1);
  ASSERT_TRUE(s.behavior.has_value());
  const Behavior& b = *s.behavior;
  EXPECT_EQ(b.scale_up.stabilization_window_seconds, 0);
  EXPECT_EQ(b.scale_up.select, SelectPolicy::max);
  ASSERT_EQ(b.scale_up.policies.size(), 2u);
  EXPECT_FALSE(b.scale_up.policies[0].percent);
  EXPECT_EQ(b.scale_up.policies[0].value, 4);
  EXPECT_EQ(b.scale_up.policies[0].period_seconds, 15);
  EXPECT_TRUE(b.scale_up.policies[1].percent);
  EXPECT_EQ(b.scale_up.policies[1].value, 100);
  EXPECT_EQ(b.scale_down.stabilization_window_seconds, 300);
  ASSERT_EQ(b.scale_down.policies.size(), 1u);
  EXPECT_TRUE(b.scale_down.policies[0].percent);
  EXPECT_EQ(b.scale_down.policies[0].value, 100);
  EXPECT_FALSE(b.scale_up.tolerance.has_value());
}

// copyHPAScalingRules: a given field replaces the default, the others stay (policies as a whole).
TEST(HpaSpecParse, PartialRulesKeepTheOtherDefaults) {
  const HpaSpec s = parse_spec(json::parse(R"({"maxReplicas":5,"behavior":{"scaleUp":{"selectPolicy":"Min"},
      "scaleDown":{"policies":[{"type":"Pods","value":1,"periodSeconds":60}]}}})"), 0.1);
  const Behavior& b = *s.behavior;
  EXPECT_EQ(b.scale_up.select, SelectPolicy::min);
  EXPECT_EQ(b.scale_up.policies.size(), 2u);
  EXPECT_EQ(b.scale_down.stabilization_window_seconds, 300);
  ASSERT_EQ(b.scale_down.policies.size(), 1u);
  EXPECT_FALSE(b.scale_down.policies[0].percent);
  EXPECT_EQ(b.scale_down.policies[0].period_seconds, 60);
}

void expect_error(const std::string& spec, const std::string& field) {
  try {
    parse_spec(json::parse(spec), 0.1);
    ADD_FAILURE() << "accepted: " << spec;
  } catch (const json_fields::FieldError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(field + ":", 0), 0u) << e.what();
  }
}

TEST(HpaSpecParse, ErrorsNameTheField) {
  expect_error(R"({})", "spec.maxReplicas");
  expect_error(R"({"minReplicas":5,"maxReplicas":2})", "spec.maxReplicas");
  expect_error(R"({"maxReplicas":2,"metrics":[{"type":"Resource","resource":{"name":"cpu","tagret":{}}}]})",
               "spec.metrics[0].resource.tagret");
  expect_error(R"({"maxReplicas":2,"metrics":[{"type":"Pods","pods":{"metric":{"name":"x"},
      "target":{"type":"Utilization","averageUtilization":5}}}]})",
               "spec.metrics[0].pods.target.type");
  expect_error(R"({"maxReplicas":2,"metrics":[{"type":"Pods","pods":{"metric":{"name":"x"},
      "target":{"type":"AverageValue","averageValue":"1x"}}}]})",
               "spec.metrics[0].pods.target.averageValue");
  expect_error(R"({"maxReplicas":2,"behavior":{"scaleUp":{"policies":[]}}})", "spec.behavior.scaleUp.policies");
  expect_error(R"({"maxReplicas":2,"behavior":{"scaleDown":{"policies":[{"type":"Pods","value":1,
      "periodSeconds":1801}]}}})",
               "spec.behavior.scaleDown.policies[0].periodSeconds");
  expect_error(R"({"maxReplicas":2,"behavior":{"scaleDown":{"selectPolicy":"Most"}}})",
               "spec.behavior.scaleDown.selectPolicy");
  expect_error(R"({"minReplicas":0,"maxReplicas":2})", "spec.minReplicas");
  expect_error(R"({"maxReplicas":2,"metrics":[{"type":"Resource","resource":{"name":"cpu",
      "target":{"type":"Utilization","averageUtilization":0}}}]})",
               "spec.metrics[0].resource.target.averageUtilization");
  expect_error(R"({"maxReplicas":2,"metrics":[{"type":"Queue"}]})", "spec.metrics[0].type");
}

// ---- Quantities (resource.Quantity.MilliValue) -------------------------------------------------

std::int64_t milli(const std::string& text) {
  std::int64_t v = 0;
  std::string error;
  EXPECT_TRUE(parse_quantity_milli(text, v, error)) << text << ": " << error;
  return v;
}

TEST(Quantity, SuffixesAndMilliValues) {
  EXPECT_EQ(milli("600m"), 600);
  EXPECT_EQ(milli("1"), 1000);
  EXPECT_EQ(milli("1.5"), 1500);
  EXPECT_EQ(milli("2Gi"), 2147483648000);
  EXPECT_EQ(milli("1k"), 1000000);
  EXPECT_EQ(milli("1e3"), 1000000);
  EXPECT_EQ(milli("0.0001"), 1);  // fractions of a milli round up
  EXPECT_EQ(milli("-1.5"), -1500);
  EXPECT_EQ(milli("100u"), 1);
}

TEST(Quantity, MalformedQuantitiesAreRefused) {
  for (const char* bad : {"", "m", "1.2.3", "5Q", "1E", "12345678901234567890", "1e", "--1"}) {
    std::int64_t v = 0;
    std::string error;
    EXPECT_FALSE(parse_quantity_milli(bad, v, error)) << bad;
  }
}

}  // namespace
}  // namespace phasekit::hpa
