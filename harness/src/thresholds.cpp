#include "thresholds.hpp"

#include <fmt/format.h>

#include <charconv>
#include <stdexcept>
#include "phasekit/text.hpp"

namespace phasekit::load {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }


std::optional<double> parse_number(std::string_view s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

// Finds the comparison operator: returns {position, length, op}.
std::optional<std::tuple<std::size_t, std::size_t, Op>> find_op(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const char next = i + 1 < s.size() ? s[i + 1] : '\0';
    if (c == '<') {
      return next == '=' ? std::tuple{i, std::size_t{2}, Op::le} : std::tuple{i, std::size_t{1}, Op::lt};
    }
    if (c == '>') {
      return next == '=' ? std::tuple{i, std::size_t{2}, Op::ge} : std::tuple{i, std::size_t{1}, Op::gt};
    }
    if (c == '=' && next == '=') {
      return std::tuple{i, std::size_t{2}, Op::eq};
    }
  }
  return std::nullopt;
}

std::string shorthand(std::string_view name) {
  static constexpr std::string_view kStats[] = {"p50", "p75", "p90", "p95", "p99", "p999", "min", "max", "mean", "median"};
  for (std::string_view s : kStats) {
    if (name == s) {
      return fmt::format("{}.{}", kResponseTime, s);
    }
  }
  if (name == "errors") {
    return std::string(kErrorRate);
  }
  return std::string(name);
}

}  // namespace

std::string_view op_text(Op op) {
  switch (op) {
    case Op::lt: return "<";
    case Op::le: return "<=";
    case Op::gt: return ">";
    case Op::ge: return ">=";
    case Op::eq: return "==";
  }
  return "?";
}

Threshold make_threshold(std::string metric, Op op, double value, std::string text, const MetricCatalog& catalog) {
  if (auto why = catalog.check(metric)) {
    fail(fmt::format("threshold \"{}\": {}", text, *why));
  }
  return Threshold{std::move(metric), op, value, std::move(text)};
}

Threshold parse_slo_term(std::string_view term, const MetricCatalog& catalog) {
  term = text::trim_ows(term);
  const auto op = find_op(term);
  if (!op) {
    fail(fmt::format("SLO term \"{}\": expected <metric><op><value> such as p95<200ms or errors<1%", term));
  }
  const auto [pos, len, which] = *op;
  const std::string metric = shorthand(text::trim_ows(term.substr(0, pos)));
  std::string_view value = text::trim_ows(term.substr(pos + len));
  double scale = 1.0;
  bool percent = false;
  bool has_time_unit = false;
  if (value.ends_with("ms")) {
    value.remove_suffix(2);
    has_time_unit = true;
  } else if (value.ends_with("us")) {
    value.remove_suffix(2);
    scale = 0.001;
    has_time_unit = true;
  } else if (value.ends_with("s")) {
    value.remove_suffix(1);
    scale = 1000.0;
    has_time_unit = true;
  } else if (value.ends_with("%")) {
    value.remove_suffix(1);
    percent = true;
  }
  const auto number = parse_number(text::trim_ows(value));
  if (!number) {
    fail(fmt::format("SLO term \"{}\": \"{}\" is not a number", term, text::trim_ows(value)));
  }
  Threshold t = make_threshold(metric, which, *number * scale, std::string(term), catalog);
  if (has_time_unit && !catalog.is_time(metric)) {
    fail(fmt::format("SLO term \"{}\": {} is not a time, so it takes no ms/s/us unit", term, metric));
  }
  if (percent && metric != kErrorRate) {
    fail(fmt::format("SLO term \"{}\": only {} (or errors) is a percentage", term, kErrorRate));
  }
  return t;
}

std::vector<Threshold> parse_slo(std::string_view list, const MetricCatalog& catalog) {
  std::vector<Threshold> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view term = text::trim_ows(list.substr(0, comma));
    if (!term.empty()) {
      out.push_back(parse_slo_term(term, catalog));
    }
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  if (out.empty()) {
    fail("--slo is empty: give terms such as p95<200ms,errors<1%");
  }
  return out;
}

Threshold parse_k6_threshold(std::string_view metric, std::string_view expression, const MetricCatalog& catalog) {
  const std::string text = fmt::format("{}: {}", metric, expression);
  const auto op = find_op(expression);
  if (!op) {
    fail(fmt::format("threshold \"{}\": expected <aggregation><op><value> such as p(95)<200", text));
  }
  const auto [pos, len, which] = *op;
  const std::string_view agg = text::trim_ows(expression.substr(0, pos));
  const auto number = parse_number(text::trim_ows(expression.substr(pos + len)));
  if (!number) {
    fail(fmt::format("threshold \"{}\": \"{}\" is not a number", text, text::trim_ows(expression.substr(pos + len))));
  }
  std::string full;
  if (agg.starts_with("p(") && agg.ends_with(")")) {
    const std::string_view p = agg.substr(2, agg.size() - 3);
    static constexpr std::pair<std::string_view, std::string_view> kPercentiles[] = {
        {"50", "p50"}, {"75", "p75"}, {"90", "p90"}, {"95", "p95"}, {"99", "p99"}, {"99.9", "p999"}};
    for (const auto& [k, name] : kPercentiles) {
      if (p == k) {
        full = fmt::format("{}.{}", metric, name);
      }
    }
    if (full.empty()) {
      fail(fmt::format("threshold \"{}\": percentile {} is not one of 50, 75, 90, 95, 99, 99.9", text, p));
    }
  } else if (agg == "avg") {
    full = fmt::format("{}.mean", metric);
  } else if (agg == "med") {
    full = fmt::format("{}.median", metric);
  } else if (agg == "min" || agg == "max") {
    full = fmt::format("{}.{}", metric, agg);
  } else if (agg == "count") {
    full = catalog.is_time(fmt::format("{}.p50", metric)) ? fmt::format("{}.count", metric) : std::string(metric);
  } else if (agg == "rate") {
    full = fmt::format("{}.rate", metric);
  } else if (agg == "value") {
    full = std::string(metric);
  } else {
    fail(fmt::format("threshold \"{}\": aggregation \"{}\" is not one of p(N), avg, med, min, max, count, rate, value",
                     text, agg));
  }
  return make_threshold(std::move(full), which, *number, text, catalog);
}

std::vector<CheckResult> evaluate(const std::vector<Threshold>& thresholds, const MetricSet& set, double duration_s) {
  std::vector<CheckResult> out;
  for (const Threshold& t : thresholds) {
    CheckResult r{t, metric_value(set, duration_s, t.metric), false};
    if (r.actual) {
      const double a = *r.actual;
      switch (t.op) {
        case Op::lt: r.ok = a < t.value; break;
        case Op::le: r.ok = a <= t.value; break;
        case Op::gt: r.ok = a > t.value; break;
        case Op::ge: r.ok = a >= t.value; break;
        case Op::eq: r.ok = a == t.value; break;
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

bool all_ok(const std::vector<CheckResult>& results) {
  for (const CheckResult& r : results) {
    if (!r.ok) {
      return false;
    }
  }
  return true;
}

}  // namespace phasekit::load
