// render_capacity_html: the page of a capacity search (inline CSS and SVG; no script, no fetch).
#include <fmt/format.h>

#include "capacity/capacity.hpp"
#include "html_page.hpp"
#include "metrics.hpp"

namespace phasekit::load {
namespace {

using html::escape;
using html::number;
using html::Rule;
using html::Series;

constexpr const char* kP50 = "#2b6cb0";
constexpr const char* kP95 = "#dd6b20";
constexpr const char* kP99 = "#c53030";
constexpr const char* kOther = "#4a5568";

std::string cell(const std::optional<double>& v) { return v ? number(*v) : "–"; }

/// The SLO's limits on the response time percentiles and on the error rate, as lines across the charts.
void slo_rules(const CapacityResult& r, std::vector<Rule>& latency, std::vector<Rule>& errors) {
  if (r.steps.empty()) {
    return;
  }
  const std::string prefix = fmt::format("{}.", kResponseTime);
  for (const CapacityCheck& c : r.steps.front().checks) {
    const std::string label = fmt::format("SLO {}", c.threshold);
    if (c.metric == kErrorRate) {
      errors.push_back({label, kP99, c.limit});
    } else if (c.metric.starts_with(prefix) && c.metric.find('.', prefix.size()) == std::string::npos &&
               !c.metric.ends_with(".count")) {
      const std::string stat = c.metric.substr(prefix.size());
      const char* color = stat == "p50" || stat == "median" ? kP50 : stat == "p95" ? kP95 : stat == "p99" ? kP99 : kOther;
      latency.push_back({label, color, c.limit});
    }
  }
}

}  // namespace

std::string render_capacity_html(const CapacityResult& r) {
  std::string page = html::page_start("phasekit-load capacity");
  page += fmt::format("<h1>phasekit-load capacity</h1><p class=\"muted\">{} → {} · SLO {} · each step: users arrive "
                      "over {} s, then repeat the flow for {} s</p>\n",
                      escape(r.scenario), escape(r.target), escape(r.slo), number(r.ramp_s), number(r.hold_s));
  const bool met = r.max_users > 0;
  page += fmt::format("<p class=\"verdict\"><span class=\"{}\">{}</span>", met ? "ok" : "fail",
                      met ? fmt::format("{} users meet {}", r.max_users, escape(r.slo))
                          : fmt::format("no step met {}", escape(r.slo)));
  if (r.target_users > 0) {
    page += fmt::format(" · {}target {} users: <span class=\"{}\">{}</span>",
                        r.phase > 0 ? fmt::format("phase {} ", r.phase) : std::string(), r.target_users,
                        r.target_met() ? "ok" : "fail", r.target_met() ? "met" : "NOT met");
  }
  page += "</p>\n";
  if (r.steps.empty()) {
    page += "<p class=\"muted\">No step ran.</p>\n";
    return page + html::page_end();
  }

  std::vector<double> x;
  Series p50{"p50", kP50, {}}, p95{"p95", kP95, {}}, p99{"p99", kP99, {}};
  Series error_rate{"error rate", kOther, {}};
  std::vector<double> failed;
  for (const CapacityStep& s : r.steps) {
    if (!s.pass) {
      failed.push_back(static_cast<double>(s.users));
    }
    x.push_back(static_cast<double>(s.users));
    p50.values.push_back(s.p50_ms);
    p95.values.push_back(s.p95_ms);
    p99.values.push_back(s.p99_ms);
    error_rate.values.push_back(s.error_rate);
  }
  std::vector<Rule> latency_rules;
  std::vector<Rule> error_rules;
  slo_rules(r, latency_rules, error_rules);
  page += "<h2>Latency and errors by step</h2>\n";
  const std::string users = "concurrent users of the step";
  const std::string failed_name = "step that failed";
  page += html::render({.id = "capacity-latency",
                        .title = "Response time by step (socketio.response_time)",
                        .y_title = "ms",
                        .x_title = users,
                        .x = x,
                        .series = {p50, p95, p99},
                        .rules = latency_rules,
                        .bands = failed,
                        .bands_name = failed_name});
  page += html::render({.id = "capacity-errors",
                        .title = "Error rate by step (users that failed)",
                        .y_title = "percent",
                        .x_title = users,
                        .x = x,
                        .series = {error_rate},
                        .rules = error_rules,
                        .bands = failed,
                        .bands_name = failed_name});

  page += "<h2>Steps</h2><table><tr><th>users</th><th>verdict</th><th>peak users</th><th>p50 ms</th><th>p95 ms</th>"
          "<th>p99 ms</th><th>error rate %</th><th class=\"text\">why</th></tr>";
  for (const CapacityStep& s : r.steps) {
    std::string why = s.why();
    if (s.pass) {
      why = "every check met";
    }
    page += fmt::format("<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                        "<td class=\"text\">{}</td></tr>",
                        s.users, s.pass ? "ok" : "fail", s.pass ? "pass" : "FAIL", s.peak_users, cell(s.p50_ms),
                        cell(s.p95_ms), cell(s.p99_ms), cell(s.error_rate), escape(why));
  }
  page += "</table>\n";

  page += "<h2>Checks of every step</h2><table><tr><th>users</th><th class=\"text\">threshold</th><th>actual</th>"
          "<th>result</th></tr>";
  for (const CapacityStep& s : r.steps) {
    for (const CapacityCheck& c : s.checks) {
      page += fmt::format("<tr><td>{}</td><td class=\"text\">{}</td><td>{}</td><td class=\"{}\">{}</td></tr>", s.users,
                          escape(c.threshold), c.actual ? number(*c.actual) : "no samples", c.ok ? "ok" : "fail",
                          c.ok ? "pass" : "FAIL");
    }
  }
  page += "</table>\n";
  bool any_errors = false;
  for (const CapacityStep& s : r.steps) {
    any_errors = any_errors || !s.errors.empty();
  }
  if (any_errors) {
    page += "<h2>Errors by code</h2><table><tr><th>users</th><th class=\"text\">code</th><th>count</th></tr>";
    for (const CapacityStep& s : r.steps) {
      for (const auto& [code, n] : s.errors) {
        page += fmt::format("<tr><td>{}</td><td class=\"text\">{}</td><td>{}</td></tr>", s.users, escape(code), n);
      }
    }
    page += "</table>\n";
  }
  return page + html::page_end();
}

}  // namespace phasekit::load
