#include "hpa_autoscaler.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

namespace phasekit::hpa {
namespace {

using plugin::MetricProposal;
using plugin::PodPhase;
using plugin::ScaleInput;
using plugin::ScalePod;
using PodMetrics = std::map<std::string, std::int64_t>;  // pod name -> milli-value
using PodSet = std::set<std::string>;

/// A metric that cannot be computed (Kubernetes returns an error for it).
struct MetricError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- Arithmetic at the integer limits ----------------------------------------------------------------
//
// Go defines integer overflow (it wraps) and leaves a float→int conversion out of range
// implementation-defined (amd64 gives MinInt, arm64 saturates); in C++ the first is undefined and so is
// the second. Where upstream decided what a limit gives, we do the same:
//   * replica counts from int32(math.Ceil(x)) saturate at MaxInt32 (kubernetes#126979, #127050, and
//     #141397 which routes every such conversion through a saturating ceilToInt32);
//   * External series summed for a Value target stop at MaxInt64 on a positive overflow (#133888), and
//     for an AverageValue target a running sum that turns negative is taken as MaxInt64 (#127050), as is
//     the per-pod average of a usage at float64(MaxInt64) or above.
// Where upstream wraps silently (sums of pod samples and requests, metricsTotal * 100, a Pods policy
// past MaxInt32), we compute exactly in 128 bits and saturate to the type the value is kept in, the
// direction upstream took wherever it did decide. NaN, which no Kubernetes input produces here, is 0.
__extension__ typedef __int128 Wide;  // NOLINT(modernize-use-using): __extension__ needs typedef

std::int64_t saturate_int64(Wide v) {
  return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : static_cast<std::int64_t>(v);
}

std::int32_t saturate_int32(Wide v) {
  return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : static_cast<std::int32_t>(v);
}

/// Go's int64(x): truncation toward zero, made total (out of range saturates, NaN is 0).
std::int64_t trunc_to_int64(double x) {
  if (std::isnan(x)) {
    return 0;
  }
  if (x >= 0x1p63) {  // 2^63 = float64(math.MaxInt64): not an int64
    return INT64_MAX;
  }
  if (x < -0x1p63) {
    return INT64_MIN;
  }
  return static_cast<std::int64_t>(x);
}

/// Go's int64(math.Ceil(x)), made total.
std::int64_t ceil_to_int64(double x) { return trunc_to_int64(std::ceil(x)); }

/// Go's int32(math.Ceil(x)), made total: upstream's ceilToInt32 (saturates), NaN is 0.
std::int32_t ceil_to_int32(double x) { return saturate_int32(ceil_to_int64(x)); }

struct Tolerances {
  double down;
  double up;
  // replica_calculator.go Tolerances.isWithin
  [[nodiscard]] bool within(double ratio) const { return (1.0 - down) <= ratio && ratio <= (1.0 + up); }
};

struct Groups {
  int ready = 0;
  PodSet unready;
  PodSet missing;
  PodSet ignored;
};

/// groupPods(): deleted or failed pods are ignored; pending pods are unready; pods without a sample
/// are missing; for cpu, a pod not ready or still initializing is unready.
Groups group_pods(const std::vector<ScalePod>& pods, const PodMetrics& metrics, bool cpu) {
  Groups g;
  for (const ScalePod& pod : pods) {
    if (pod.deleting || pod.phase == PodPhase::failed) {
      g.ignored.insert(pod.name);
      continue;
    }
    if (pod.phase == PodPhase::pending) {
      g.unready.insert(pod.name);
      continue;
    }
    if (metrics.count(pod.name) == 0) {
      g.missing.insert(pod.name);
      continue;
    }
    if (cpu && (!pod.ready || pod.cpu_initializing)) {
      g.unready.insert(pod.name);
      continue;
    }
    ++g.ready;
  }
  return g;
}

void remove(PodMetrics& metrics, const PodSet& pods) {
  for (const std::string& name : pods) {
    metrics.erase(name);
  }
}

const plugin::ScaleContainer* find_container(const ScalePod& pod, const std::string& name) {
  for (const auto& c : pod.containers) {
    if (c.name == name) {
      return &c;
    }
  }
  return nullptr;
}

/// metrics-server samples: a pod's resource usage is the sum over its containers (no sample when one
/// container has none), or the named container's usage for ContainerResource.
PodMetrics resource_metrics(const ScaleInput& in, const std::string& resource, const std::string& container) {
  PodMetrics out;
  for (const ScalePod& pod : in.pods) {
    if (!container.empty()) {
      const auto* c = find_container(pod, container);
      if (c == nullptr) {
        throw MetricError("container " + container + " not present in metrics for pod " + pod.name);
      }
      if (c->usage.count(resource) != 0) {
        out[pod.name] = c->usage.at(resource);
      }
      continue;
    }
    if (const auto it = pod.usage.find(resource); it != pod.usage.end()) {
      out[pod.name] = it->second;
      continue;
    }
    Wide sum = 0;  // getPodMetrics: podSum += MilliValue() (Go wraps; we saturate)
    bool complete = !pod.containers.empty();
    for (const auto& c : pod.containers) {
      const auto u = c.usage.find(resource);
      complete = complete && u != c.usage.end();
      sum += complete ? u->second : 0;
    }
    if (complete) {
      out[pod.name] = saturate_int64(sum);
    }
  }
  return out;
}

/// calculateRequests(): every pod of the selector needs a request for the resource.
std::map<std::string, std::int64_t> pod_requests(const ScaleInput& in, const std::string& resource,
                                                 const std::string& container) {
  std::map<std::string, std::int64_t> out;
  for (const ScalePod& pod : in.pods) {
    if (!container.empty()) {
      const auto* c = find_container(pod, container);
      if (c == nullptr) {
        throw MetricError("container " + container + " not found in Pod " + pod.name);
      }
      if (c->requests.count(resource) == 0) {
        throw MetricError("missing request for " + resource + " in container " + container + " of Pod " + pod.name);
      }
      out[pod.name] = c->requests.at(resource);
      continue;
    }
    if (const auto it = pod.requests.find(resource); it != pod.requests.end()) {
      out[pod.name] = it->second;
      continue;
    }
    if (pod.containers.empty()) {
      throw MetricError("missing request for " + resource + " in Pod " + pod.name);
    }
    Wide sum = 0;  // calculatePodRequestsFromContainers: request += MilliValue() (Go wraps; we saturate)
    for (const auto& c : pod.containers) {
      if (c.requests.count(resource) == 0) {
        throw MetricError("missing request for " + resource + " in container " + c.name + " of Pod " + pod.name);
      }
      sum += c.requests.at(resource);
    }
    out[pod.name] = saturate_int64(sum);
  }
  return out;
}

struct Utilization {
  double ratio;
  std::int32_t percent;
};

/// metricsclient.GetResourceUtilizationRatio(): the percentage is rounded down (integer division).
/// int32((metricsTotal * 100) / requestsTotal) is computed exactly and saturated to int32.
Utilization utilization_ratio(const PodMetrics& metrics, const std::map<std::string, std::int64_t>& requests,
                              std::int32_t target) {
  Wide metrics_total = 0;
  Wide requests_total = 0;
  for (const auto& [pod, value] : metrics) {
    const auto r = requests.find(pod);
    if (r == requests.end()) {
      continue;
    }
    metrics_total += value;
    requests_total += r->second;
  }
  if (requests_total == 0) {
    throw MetricError("no metrics returned matched known pods");
  }
  const std::int32_t percent = saturate_int32((metrics_total * 100) / requests_total);
  return {static_cast<double>(percent) / static_cast<double>(target), percent};
}

/// metricsclient.GetMetricUsageRatio(): the average is an integer division of milli-values (the sum
/// exact: an average of int64 values is always an int64).
std::pair<double, std::int64_t> usage_ratio(const PodMetrics& metrics, std::int64_t target) {
  Wide total = 0;
  for (const auto& [pod, value] : metrics) {
    total += value;
  }
  const std::int64_t average = saturate_int64(total / static_cast<Wide>(metrics.size()));
  return {static_cast<double>(average) / static_cast<double>(target), average};
}

/// The shared tail of GetResourceReplicas and calcPlainMetricReplicas: missing and unready pods,
/// tolerance, and "no change if that reverses the direction". `recompute` gives the new ratio.
template <class MissingOnScaleDown, class Recompute>
MetricProposal rebalance(MetricProposal p, std::int32_t current, double ratio, const Groups& g, PodMetrics& metrics,
                         const Tolerances& tol, MissingOnScaleDown missing_on_scale_down, Recompute recompute) {
  const bool scale_up_with_unready = !g.unready.empty() && ratio > 1.0;
  if (!scale_up_with_unready && g.missing.empty()) {
    if (tol.within(ratio)) {
      p.replicas = current;
      p.rule = "tolerance";
    } else {
      p.replicas = ceil_to_int32(ratio * static_cast<double>(g.ready));
      p.rule = "ratio";
    }
    return p;
  }
  if (!g.missing.empty()) {
    for (const std::string& pod : g.missing) {
      // scale-down: missing pods count as using 100% of their request (or the target, if higher)
      // for resources, exactly the target for plain metrics; scale-up: as using nothing.
      if (ratio < 1.0) {
        metrics[pod] = missing_on_scale_down(pod);
      } else if (ratio > 1.0) {
        metrics[pod] = 0;
      }
    }
  }
  if (scale_up_with_unready) {
    for (const std::string& pod : g.unready) {
      metrics[pod] = 0;  // on a scale-up, unready pods count as using nothing
    }
  }
  const double new_ratio = recompute(metrics);
  if (tol.within(new_ratio)) {
    p.replicas = current;
    p.rule = "tolerance";
    return p;
  }
  if ((ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0)) {
    p.replicas = current;
    p.rule = "directionReversal";
    return p;
  }
  const std::int32_t replicas = ceil_to_int32(new_ratio * static_cast<double>(metrics.size()));
  if ((new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current)) {
    p.replicas = current;
    p.rule = "directionReversal";
    return p;
  }
  p.replicas = replicas;
  p.rule = "ratio";
  return p;
}

/// GetResourceReplicas(): Utilization targets of Resource and ContainerResource metrics.
MetricProposal resource_utilization(const ScaleInput& in, const MetricSpec& m, const Tolerances& tol) {
  MetricProposal p;
  PodMetrics metrics = resource_metrics(in, m.name, m.container);
  if (in.pods.empty()) {
    throw MetricError("no pods returned by selector while calculating replica count");
  }
  const Groups g = group_pods(in.pods, metrics, m.name == "cpu");
  remove(metrics, g.ignored);
  remove(metrics, g.unready);
  if (metrics.empty()) {
    throw MetricError("did not receive metrics for targeted pods (pods might be unready)");
  }
  const auto requests = pod_requests(in, m.name, m.container);
  const Utilization u = utilization_ratio(metrics, requests, m.average_utilization);
  p.current = u.percent;
  const std::int64_t fallback_percent = std::max<std::int64_t>(100, m.average_utilization);
  return rebalance(
      p, in.current_replicas, u.ratio, g, metrics, tol,
      [&](const std::string& pod) { return saturate_int64(Wide{requests.at(pod)} * fallback_percent / 100); },
      [&](const PodMetrics& now) { return utilization_ratio(now, requests, m.average_utilization).ratio; });
}

/// calcPlainMetricReplicas(): AverageValue targets of Resource metrics, and Pods metrics.
MetricProposal plain_metric(const ScaleInput& in, PodMetrics metrics, std::int64_t target, bool cpu,
                            const Tolerances& tol) {
  MetricProposal p;
  if (in.pods.empty()) {
    throw MetricError("no pods returned by selector while calculating replica count");
  }
  const Groups g = group_pods(in.pods, metrics, cpu);
  remove(metrics, g.ignored);
  remove(metrics, g.unready);
  if (metrics.empty()) {
    throw MetricError("did not receive metrics for targeted pods (pods might be unready)");
  }
  const auto [ratio, average] = usage_ratio(metrics, target);
  p.current = average;
  return rebalance(
      p, in.current_replicas, ratio, g, metrics, tol, [target](const std::string&) { return target; },
      [target](const PodMetrics& now) { return usage_ratio(now, target).first; });
}

/// getReadyPodsCount(): running and ready.
std::int64_t ready_pods(const ScaleInput& in) {
  if (in.pods.empty()) {
    throw MetricError("unable to calculate ready pods: no pods returned by selector while calculating replica count");
  }
  return std::count_if(in.pods.begin(), in.pods.end(),
                       [](const ScalePod& p) { return p.phase == PodPhase::running && p.ready; });
}

/// getUsageRatioReplicaCount(): Value targets of Object and External metrics.
MetricProposal value_metric(const ScaleInput& in, std::int64_t usage, std::int64_t target, const Tolerances& tol) {
  MetricProposal p;
  p.current = usage;
  const double ratio = static_cast<double>(usage) / static_cast<double>(target);
  if (in.current_replicas != 0) {
    if (tol.within(ratio)) {
      p.replicas = in.current_replicas;
      p.rule = "tolerance";
      return p;
    }
    p.replicas = ceil_to_int32(ratio * static_cast<double>(ready_pods(in)));
  } else {
    p.replicas = ceil_to_int32(ratio);  // scale from zero: ready pods and tolerance do not apply
  }
  p.rule = "ratio";
  return p;
}

/// GetObjectPerPodMetricReplicas / GetExternalPerPodMetricReplicas: AverageValue targets.
MetricProposal per_pod_metric(const ScaleInput& in, std::int64_t usage, std::int64_t target, const Tolerances& tol,
                              bool external) {
  MetricProposal p;
  p.replicas = in.status_replicas;
  const double ratio =
      static_cast<double>(usage) / (static_cast<double>(target) * static_cast<double>(in.status_replicas));
  if (!tol.within(ratio)) {
    p.replicas = ceil_to_int32(static_cast<double>(usage) / static_cast<double>(target));
    p.rule = "ratio";
  } else {
    p.rule = "tolerance";
  }
  // The per-pod average reported. GetExternalPerPodMetricReplicas: "if float64(usage) >=
  // float64(math.MaxInt64) { usage = math.MaxInt64 }" (kubernetes#127050); the Object variant has no
  // such guard, its int64(math.Ceil(...)) saturates here. With no replicas (Go: a division by zero,
  // implementation-defined) the total is shown.
  if (external && static_cast<double>(usage) >= static_cast<double>(INT64_MAX)) {
    p.current = INT64_MAX;
  } else if (in.status_replicas == 0) {
    p.current = usage;
  } else {
    p.current = ceil_to_int64(static_cast<double>(usage) / static_cast<double>(in.status_replicas));
  }
  return p;
}

/// GetExternalMetricReplicas (Value target): the series summed; a positive overflow stops the sum at
/// math.MaxInt64 (kubernetes#133888). Below math.MinInt64 Go wraps; we saturate.
std::int64_t external_total_for_value(const std::vector<std::int64_t>& series) {
  std::int64_t usage = 0;
  for (const std::int64_t v : series) {
    if (v > 0 && usage > INT64_MAX - v) {
      return INT64_MAX;
    }
    usage = saturate_int64(Wide{usage} + v);
  }
  return usage;
}

/// GetExternalPerPodMetricReplicas (AverageValue target): "usage = usage + val; if usage < 0 { usage =
/// math.MaxInt64; break }" (kubernetes#127050) — a running sum that turns negative, by overflow or by a
/// negative sample, counts as math.MaxInt64. The sum is never negative before an addition, so only a
/// positive overflow can happen, and Go's wrap of it is negative: the same MaxInt64.
std::int64_t external_total_for_average(const std::vector<std::int64_t>& series) {
  std::int64_t usage = 0;
  for (const std::int64_t v : series) {
    if (v > 0 && usage > INT64_MAX - v) {
      return INT64_MAX;
    }
    usage += v;
    if (usage < 0) {
      return INT64_MAX;
    }
  }
  return usage;
}

MetricProposal compute(const ScaleInput& in, const MetricSpec& m, const Tolerances& tol) {
  switch (m.source) {
    case SourceType::resource:
    case SourceType::container_resource: {
      const bool container = m.source == SourceType::container_resource;
      if (m.target == TargetType::average_value) {
        MetricProposal p = plain_metric(in, resource_metrics(in, m.name, m.container), m.milli, m.name == "cpu", tol);
        p.metric = m.name + (container ? " container resource" : " resource");
        return p;
      }
      MetricProposal p = resource_utilization(in, m, tol);
      p.metric = m.name + (container ? " container" : "") + " resource utilization (percentage of request)";
      return p;
    }
    case SourceType::pods: {
      PodMetrics metrics;
      for (const ScalePod& pod : in.pods) {
        if (const auto it = pod.usage.find(m.name); it != pod.usage.end()) {
          metrics[pod.name] = it->second;
        }
      }
      MetricProposal p = plain_metric(in, std::move(metrics), m.milli, false, tol);
      p.metric = "pods metric " + m.name;
      return p;
    }
    case SourceType::object: {
      const auto it = in.object_metrics.find(m.name);
      if (it == in.object_metrics.end()) {
        throw MetricError("unable to get metric " + m.name + " on " + m.object);
      }
      MetricProposal p = m.target == TargetType::value ? value_metric(in, it->second, m.milli, tol)
                                                       : per_pod_metric(in, it->second, m.milli, tol, false);
      p.metric = m.object.substr(0, m.object.find('/')) + " metric " + m.name;
      return p;
    }
    case SourceType::external: {
      const auto it = in.external_metrics.find(m.name);
      if (it == in.external_metrics.end()) {
        throw MetricError("unable to get external metric " + m.name);
      }
      MetricProposal p =
          m.target == TargetType::value
              ? value_metric(in, external_total_for_value(it->second), m.milli, tol)
              : per_pod_metric(in, external_total_for_average(it->second), m.milli, tol, true);
      p.metric = "external metric " + m.name;
      return p;
    }
  }
  throw MetricError("unknown metric source");
}

/// getReplicasChangePerPeriod(): the change of events younger than the period (strictly after),
/// summed in 64 bits (Go's int32 sum wraps).
std::int64_t replicas_changed_in(const std::vector<ScaleEvent>& events, std::int64_t now_ms,
                                 std::int32_t period_seconds) {
  const std::int64_t cutoff = now_ms - std::int64_t{period_seconds} * 1000;
  std::int64_t replicas = 0;
  for (const ScaleEvent& e : events) {
    if (e.at_ms > cutoff) {
      replicas += e.change;
    }
  }
  return replicas;
}

/// calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors.
std::int32_t scale_limit(bool up, std::int32_t current, const std::vector<ScaleEvent>& up_events,
                         const std::vector<ScaleEvent>& down_events, const ScalingRules& rules, std::int64_t now_ms) {
  if (rules.select == SelectPolicy::disabled) {
    return current;
  }
  // Scaling up, "Max" picks the largest limit; scaling down, the smallest (the biggest change).
  const bool pick_larger = up == (rules.select == SelectPolicy::max);
  std::int64_t result = pick_larger ? INT32_MIN : INT32_MAX;
  for (const ScalingPolicy& policy : rules.policies) {
    const std::int64_t added = replicas_changed_in(up_events, now_ms, policy.period_seconds);
    const std::int64_t deleted = replicas_changed_in(down_events, now_ms, policy.period_seconds);
    const std::int64_t start = current - added + deleted;
    std::int64_t proposed = 0;
    // Pods: start ± value; Percent: rounded up on the way up ("the proposed change might not increase
    // the replica count"), truncated on the way down — each saturating, never wrapping.
    if (up) {
      proposed = policy.percent ? ceil_to_int64(static_cast<double>(start) * (1 + policy.value / 100.0))
                                : start + policy.value;
    } else {
      proposed = policy.percent ? trunc_to_int64(static_cast<double>(start) * (1 - policy.value / 100.0))
                                : start - policy.value;
    }
    result = pick_larger ? std::max(result, proposed) : std::min(result, proposed);
  }
  return static_cast<std::int32_t>(std::clamp<std::int64_t>(result, INT32_MIN, INT32_MAX));
}

std::int32_t longest_period(const ScalingRules& rules) {
  std::int32_t longest = 0;
  for (const ScalingPolicy& p : rules.policies) {
    longest = std::max(longest, p.period_seconds);
  }
  return longest;
}

/// calculateScaleUpLimit(): int32(math.Max(scaleUpLimitFactor*float64(currentReplicas),
/// scaleUpLimitMinimum)) with scaleUpLimitFactor 2.0 and scaleUpLimitMinimum 4.0 — the legacy path's
/// only rate limit, per evaluation (no periods, no scale events). Saturates at MaxInt32.
std::int32_t legacy_scale_up_limit(std::int32_t current) {
  return ceil_to_int32(std::max(2.0 * static_cast<double>(current), 4.0));
}

}  // namespace

plugin::ScaleDecision HpaAutoscaler::evaluate(const plugin::ScaleInput& input) noexcept {
  try {
    return reconcile(input);
  } catch (const std::exception& e) {
    plugin::ScaleDecision d;
    d.desired_replicas = input.current_replicas;
    d.limited_by = "invalidMetrics";
    d.reason = e.what();
    return d;
  }
}

plugin::ScaleDecision HpaAutoscaler::reconcile(const plugin::ScaleInput& in) {
  plugin::ScaleDecision d;
  const std::int32_t current = in.current_replicas;
  if (recommendations_.empty()) {
    recommendations_.push_back({current, in.now_ms});  // recordInitialRecommendation()
  }
  d.metric_replicas = current;
  if (current == 0 && spec_.min_replicas != 0) {
    d.desired_replicas = 0;
    d.limited_by = "scalingDisabled";
    d.reason = "scaling is disabled since the replica count of the target is zero";
    return d;
  }
  if (current > spec_.max_replicas || current < spec_.min_replicas) {
    const bool above = current > spec_.max_replicas;
    d.desired_replicas = above ? spec_.max_replicas : spec_.min_replicas;
    d.limited_by = above ? "max" : "min";
    d.reason = above ? "Current number of replicas above Spec.MaxReplicas"
                     : "Current number of replicas below Spec.MinReplicas";
    store_scale_event(in.now_ms, current, d.desired_replicas);
    return d;
  }

  // computeReplicasForMetrics(): every metric proposes; the highest valid proposal wins.
  const Tolerances tol =
      spec_.behavior ? Tolerances{spec_.behavior->scale_down.tolerance.value_or(spec_.tolerance),
                                  spec_.behavior->scale_up.tolerance.value_or(spec_.tolerance)}
                     : Tolerances{spec_.tolerance, spec_.tolerance};
  std::int32_t replicas = 0;
  std::optional<std::size_t> winner;  // index of the highest valid proposal
  std::size_t invalid = 0;
  std::string first_error;
  for (const MetricSpec& m : spec_.metrics) {
    try {
      d.proposals.push_back(compute(in, m, tol));
    } catch (const MetricError& e) {
      MetricProposal p;
      p.metric = m.name;
      p.error = e.what();
      d.proposals.push_back(std::move(p));
      if (invalid++ == 0) {
        first_error = d.proposals.back().error;
      }
      continue;
    }
    if (replicas == 0 || d.proposals.back().replicas > replicas) {
      replicas = d.proposals.back().replicas;
      winner = d.proposals.size() - 1;
    }
  }
  if (invalid >= spec_.metrics.size() || (invalid > 0 && replicas < current)) {
    d.desired_replicas = current;
    d.metric_replicas = current;
    d.limited_by = "invalidMetrics";
    d.reason = "invalid metrics (" + std::to_string(invalid) + " invalid out of " +
               std::to_string(spec_.metrics.size()) + "), first error is: " + first_error;
    return d;
  }
  const std::int32_t metric_desired = std::max(replicas, 0);
  d.metric_replicas = metric_desired;

  // reconcileAutoscaler(): "if hpa.Spec.Behavior == nil { normalizeDesiredReplicas } else
  // { normalizeDesiredReplicasWithBehaviors }" — each stabilizes, then limits the rate and min/max.
  std::int32_t stabilized = 0;
  std::string rate_limit;
  if (spec_.behavior) {
    stabilized = stabilize(in, metric_desired);
    d.desired_replicas = limit_rate(in, stabilized, rate_limit);
  } else {
    stabilized = stabilize_legacy(in, metric_desired);
    d.desired_replicas = limit_legacy(in, stabilized, rate_limit);
  }
  if (d.desired_replicas != stabilized) {
    d.limited_by = rate_limit;
  } else if (stabilized != metric_desired) {
    d.limited_by = "stabilization";
  } else if (winner && metric_desired == current && d.proposals[*winner].rule != "ratio") {
    d.limited_by = d.proposals[*winner].rule;  // "tolerance" or "directionReversal"
  }
  d.reason = d.desired_replicas > current   ? (winner ? d.proposals[*winner].metric : "metrics") + " above target"
             : d.desired_replicas < current ? std::string("All metrics below target")
                                            : std::string("no change");
  if (d.desired_replicas != current) {
    store_scale_event(in.now_ms, current, d.desired_replicas);
  }
  return d;
}

std::int32_t HpaAutoscaler::stabilize_legacy(const plugin::ScaleInput& in, std::int32_t desired) {
  // stabilizeRecommendation(): the highest recommendation not older than the downscale window
  // (--horizontal-pod-autoscaler-downscale-stabilization, 5 min). A record exactly at the cutoff still
  // counts ("rec.timestamp.Before(cutoff)" marks the old ones) — one evaluation longer than the
  // behavior path, whose records must be strictly after it. No scale-up window.
  const std::int64_t cutoff = in.now_ms - std::int64_t{kDefaultDownscaleStabilizationSeconds} * 1000;
  std::int32_t highest = desired;
  std::optional<std::size_t> old_sample;
  for (std::size_t i = 0; i < recommendations_.size(); ++i) {
    const Recommendation& rec = recommendations_[i];
    if (rec.at_ms < cutoff) {
      old_sample = i;
    } else if (rec.replicas > highest) {
      highest = rec.replicas;
    }
  }
  if (old_sample) {
    recommendations_[*old_sample] = {desired, in.now_ms};
  } else {
    recommendations_.push_back({desired, in.now_ms});
  }
  return highest;
}

std::int32_t HpaAutoscaler::limit_legacy(const plugin::ScaleInput& in, std::int32_t desired,
                                         std::string& limited_by) const {
  // convertDesiredReplicasWithRules(): at least minReplicas ("TooFewReplicas"), at most the smaller of
  // maxReplicas ("TooManyReplicas") and max(2 × current, 4) ("ScaleUpLimit").
  const std::int32_t limit = legacy_scale_up_limit(in.current_replicas);
  const bool rate = spec_.max_replicas > limit;
  const std::int32_t maximum = rate ? limit : spec_.max_replicas;
  if (desired < spec_.min_replicas) {
    limited_by = "min";
    return spec_.min_replicas;
  }
  if (desired > maximum) {
    limited_by = rate ? "scaleUpLimit" : "max";
    return maximum;
  }
  return desired;
}

std::int32_t HpaAutoscaler::stabilize(const plugin::ScaleInput& in, std::int32_t desired) {
  // stabilizeRecommendationWithBehaviors(): the recommendation stays between the lowest recent one
  // (scale-up window) and the highest recent one (scale-down window).
  const Behavior& b = *spec_.behavior;
  const std::int64_t up_cutoff = in.now_ms - std::int64_t{b.scale_up.stabilization_window_seconds} * 1000;
  const std::int64_t down_cutoff = in.now_ms - std::int64_t{b.scale_down.stabilization_window_seconds} * 1000;
  std::int32_t up = desired;
  std::int32_t down = desired;
  std::optional<std::size_t> old_sample;
  for (std::size_t i = 0; i < recommendations_.size(); ++i) {
    const Recommendation& rec = recommendations_[i];
    if (rec.at_ms > up_cutoff) {
      up = std::min(rec.replicas, up);
    }
    if (rec.at_ms > down_cutoff) {
      down = std::max(rec.replicas, down);
    }
    if (rec.at_ms < up_cutoff && rec.at_ms < down_cutoff) {
      old_sample = i;
    }
  }
  std::int32_t recommendation = in.current_replicas;
  recommendation = std::max(recommendation, up);
  recommendation = std::min(recommendation, down);
  if (old_sample) {
    recommendations_[*old_sample] = {desired, in.now_ms};
  } else {
    recommendations_.push_back({desired, in.now_ms});
  }
  return recommendation;
}

std::int32_t HpaAutoscaler::limit_rate(const plugin::ScaleInput& in, std::int32_t desired,
                                       std::string& limited_by) const {
  // convertDesiredReplicasWithBehaviorRate()
  const Behavior& b = *spec_.behavior;
  const std::int32_t current = in.current_replicas;
  if (desired > current) {
    const std::int32_t limit =
        std::max(current, scale_limit(true, current, up_events_, down_events_, b.scale_up, in.now_ms));
    const bool policy = spec_.max_replicas > limit;
    const std::int32_t allowed = policy ? limit : spec_.max_replicas;
    if (desired > allowed) {
      limited_by = policy ? "policy" : "max";
      return allowed;
    }
  } else if (desired < current) {
    const std::int32_t limit =
        std::min(current, scale_limit(false, current, up_events_, down_events_, b.scale_down, in.now_ms));
    const bool policy = spec_.min_replicas < limit;
    const std::int32_t allowed = policy ? limit : spec_.min_replicas;
    if (desired < allowed) {
      limited_by = policy ? "policy" : "min";
      return allowed;
    }
  }
  return desired;
}

void HpaAutoscaler::store_scale_event(std::int64_t now_ms, std::int32_t from, std::int32_t to) {
  // storeScaleEvent(): "if behavior == nil { return }" — the legacy path keeps no events. Otherwise
  // mark events older than the longest policy period outdated, and reuse the last outdated slot.
  if (!spec_.behavior) {
    return;
  }
  const bool up = to > from;
  std::vector<ScaleEvent>& events = up ? up_events_ : down_events_;
  const std::int64_t cutoff =
      now_ms - std::int64_t{longest_period(up ? spec_.behavior->scale_up : spec_.behavior->scale_down)} * 1000;
  std::optional<std::size_t> old_sample;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i].at_ms < cutoff) {
      events[i].outdated = true;
    }
    if (events[i].outdated) {
      old_sample = i;
    }
  }
  const std::int64_t change = up ? std::int64_t{to} - from : std::int64_t{from} - to;
  const ScaleEvent event{change, now_ms, false};
  if (old_sample) {
    events[*old_sample] = event;
  } else {
    events.push_back(event);
  }
}

}  // namespace phasekit::hpa
