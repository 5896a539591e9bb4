#pragma once
// Pass/fail checks over a run's metrics, in the three forms users write them: Artillery's
// config.ensure (p95: 200, maxErrorRate: 1, thresholds: [{metric: value}]), k6's thresholds
// ({"socketio.response_time": ["p(95)<200"]}) and the --slo shorthand ("p95<200ms,errors<1%").
// Every form names metrics through the MetricCatalog: an unknown name is an error, never a pass.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metrics.hpp"

namespace phasekit::load {

enum class Op { lt, le, gt, ge, eq };
std::string_view op_text(Op op);

struct Threshold {
  std::string metric;  // full name: "socketio.response_time.p95"
  Op op = Op::lt;
  double value = 0;    // ms for times, percent for error_rate
  std::string text;    // as the user wrote it, for messages
};

struct CheckResult {
  Threshold threshold;
  std::optional<double> actual;  // nullopt: no samples (a failure)
  bool ok = false;
};

/// Throws std::invalid_argument with a one-line reason.
Threshold parse_slo_term(std::string_view term, const MetricCatalog& catalog);
std::vector<Threshold> parse_slo(std::string_view list, const MetricCatalog& catalog);
Threshold parse_k6_threshold(std::string_view metric, std::string_view expression, const MetricCatalog& catalog);
Threshold make_threshold(std::string metric, Op op, double value, std::string text, const MetricCatalog& catalog);

std::vector<CheckResult> evaluate(const std::vector<Threshold>& thresholds, const MetricSet& set, double duration_s);
bool all_ok(const std::vector<CheckResult>& results);

}  // namespace phasekit::load
