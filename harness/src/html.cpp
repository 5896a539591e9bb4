// render_html: one self-contained page (inline CSS and SVG; no script, no fetch) that opens offline.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "report.hpp"

namespace phasekit::load {
namespace {

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

struct Series {
  std::string name;
  std::string color;
  std::vector<std::optional<double>> values;
};

double nice_ceiling(double v) {
  if (v <= 0) {
    return 1;
  }
  const double magnitude = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (v <= m * magnitude) {
      return m * magnitude;
    }
  }
  return 10 * magnitude;
}

std::string number(double v) { return v >= 100 || v == std::floor(v) ? fmt::format("{:.0f}", v) : fmt::format("{:.2f}", v); }

std::string line_chart(std::string_view title, std::string_view unit, const std::vector<double>& x,
                       const std::vector<Series>& series) {
  constexpr double kW = 720, kH = 240, kLeft = 56, kRight = 12, kTop = 28, kBottom = 30;
  double y_max = 0;
  for (const Series& s : series) {
    for (const auto& v : s.values) {
      y_max = std::max(y_max, v.value_or(0));
    }
  }
  y_max = nice_ceiling(y_max);
  const double x_max = x.empty() ? 1 : std::max(1e-9, x.back());
  const auto px = [&](double v) { return kLeft + v / x_max * (kW - kLeft - kRight); };
  const auto py = [&](double v) { return kTop + (1 - v / y_max) * (kH - kTop - kBottom); };
  std::string svg = fmt::format(
      R"(<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}"><text x="{}" y="16" class="title">{}</text>)",
      kW, kH, escape(title), kLeft, escape(title));
  for (int i = 0; i <= 4; ++i) {
    const double v = y_max * i / 4;
    svg += fmt::format(R"(<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="grid"/><text x="{}" y="{:.1f}" class="axis" text-anchor="end">{}</text>)",
                       kLeft, kW - kRight, py(v), py(v), kLeft - 6, py(v) + 4, number(v));
  }
  for (int i = 0; i <= 4; ++i) {
    const double v = x_max * i / 4;
    svg += fmt::format(R"(<text x="{:.1f}" y="{}" class="axis" text-anchor="middle">{} s</text>)", px(v), kH - 8, number(v));
  }
  svg += fmt::format(R"(<text x="{}" y="{}" class="axis">{}</text>)", 4, kTop - 10, escape(unit));
  double legend_x = kLeft + 200;
  for (const Series& s : series) {
    std::string points;
    for (std::size_t i = 0; i < x.size() && i < s.values.size(); ++i) {
      if (s.values[i]) {
        points += fmt::format("{:.1f},{:.1f} ", px(x[i]), py(*s.values[i]));
      }
    }
    svg += fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>)", s.color, points);
    for (std::size_t i = 0; i < x.size() && i < s.values.size(); ++i) {
      if (s.values[i]) {
        svg += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"><title>{}: {} at {} s</title></circle>)",
                           px(x[i]), py(*s.values[i]), s.color, escape(s.name), number(*s.values[i]), number(x[i]));
      }
    }
    svg += fmt::format(R"(<rect x="{:.0f}" y="8" width="10" height="10" fill="{}"/><text x="{:.0f}" y="17" class="axis">{}</text>)",
                       legend_x, s.color, legend_x + 14, escape(s.name));
    legend_x += 24 + 7.0 * static_cast<double>(s.name.size());
  }
  return svg + "</svg>\n";
}

std::string cell(std::optional<double> v) { return v ? number(*v) : "–"; }

}  // namespace

std::string render_html(const Report& r) {
  std::vector<double> x;
  Series p50{"p50", "#2b6cb0", {}}, p95{"p95", "#dd6b20", {}}, p99{"p99", "#c53030", {}};
  Series rate{"emits/s", "#2f855a", {}}, users{"users active", "#6b46c1", {}}, arrivals{"arrivals/s", "#718096", {}};
  std::map<std::string, Series> errors;
  static constexpr const char* kPalette[] = {"#c53030", "#dd6b20", "#b7791f", "#805ad5", "#2c7a7b", "#4a5568"};
  for (const Interval& i : r.intervals) {
    for (const auto& [code, n] : i.metrics.errors()) {
      if (errors.count(code) == 0) {
        errors.emplace(code, Series{code, kPalette[errors.size() % 6], {}});
      }
    }
  }
  for (const Interval& i : r.intervals) {
    const double seconds = std::max(1e-9, i.end_s - i.start_s);
    x.push_back(i.end_s);
    p50.values.push_back(metric_value(i.metrics, seconds, "socketio.response_time.p50"));
    p95.values.push_back(metric_value(i.metrics, seconds, "socketio.response_time.p95"));
    p99.values.push_back(metric_value(i.metrics, seconds, "socketio.response_time.p99"));
    rate.values.push_back(static_cast<double>(i.metrics.counter(kEmits)) / seconds);
    arrivals.values.push_back(static_cast<double>(i.metrics.counter(kVusersCreated)) / seconds);
    users.values.push_back(static_cast<double>(i.users_active));
    const auto by_code = i.metrics.errors();
    for (auto& [code, s] : errors) {
      const auto it = by_code.find(code);
      s.values.push_back(it == by_code.end() ? 0.0 : static_cast<double>(it->second));
    }
  }
  std::vector<Series> error_series;
  for (auto& [code, s] : errors) {
    error_series.push_back(s);
  }

  const auto meta = [&](const char* key) {
    return r.meta.contains(key) ? escape(r.meta[key].is_string() ? r.meta[key].get<std::string>() : r.meta[key].dump())
                                : std::string("–");
  };
  std::string html = R"(<!doctype html><html lang="en"><head><meta charset="utf-8"><title>phasekit-load report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:780px;color:#1a202c}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #e2e8f0;text-align:right}
td:first-child,th:first-child{text-align:left}.ok{color:#2f855a;font-weight:600}.fail{color:#c53030;font-weight:600}
.chart{width:100%;height:auto;margin:8px 0}.chart .grid{stroke:#e2e8f0}.chart .axis{font-size:11px;fill:#4a5568}
.chart .title{font-size:13px;font-weight:600;fill:#1a202c}.muted{color:#718096}
</style></head><body>
)";
  html += fmt::format("<h1>phasekit-load report</h1><p class=\"muted\">{} → {} · started {} · {:.1f} s · {} thread(s)",
                      meta("scenario"), meta("target"), meta("startedAt"), r.duration_s, meta("threads"));
  if (r.meta.contains("generators")) {
    html += fmt::format(" · merged from {} generators", meta("generators"));
  }
  html += "</p>\n";
  const MetricSet& t = r.total;
  html += "<h2>Summary</h2><table>";
  const auto row = [&](std::string_view k, const std::string& v) {
    html += fmt::format("<tr><td>{}</td><td>{}</td></tr>", k, v);
  };
  row("peak users", std::to_string(r.peak_users));
  row("virtual users created / completed / failed / skipped",
      fmt::format("{} / {} / {} / {}", t.counter(kVusersCreated), t.counter(kVusersCompleted), t.counter(kVusersFailed),
                  t.counter(kVusersSkipped)));
  row("error rate", cell(metric_value(t, r.duration_s, kErrorRate)) + " %");
  row("emits (per second)", fmt::format("{} ({})", t.counter(kEmits), cell(metric_value(t, r.duration_s, kEmitRate))));
  row("acks / responses / events received",
      fmt::format("{} / {} / {}", t.counter(kAcks), t.counter(kResponses), t.counter(kEventsReceived)));
  row("arrivals late / dropped", fmt::format("{} / {}", t.counter(kArrivalsLate), t.counter(kArrivalsDropped)));
  html += "</table>\n";

  html += "<h2>Latency (ms)</h2><table><tr><th>metric</th><th>count</th><th>p50</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>";
  for (const auto& [name, h] : t.histograms) {
    const auto v = [&, &metric = name](const char* stat) { return cell(metric_value(t, r.duration_s, metric + "." + stat)); };
    html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(name), h.count(), v("p50"), v("p95"), v("p99"), v("p999"), v("max"));
  }
  html += "</table>\n";

  if (!r.checks.empty()) {
    html += "<h2>Checks</h2><table><tr><th>threshold</th><th>actual</th><th>result</th></tr>";
    for (const CheckResult& c : r.checks) {
      html += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>", escape(c.threshold.text),
                          c.actual ? number(*c.actual) : "no samples", c.ok ? "ok" : "fail", c.ok ? "pass" : "FAIL");
    }
    html += "</table>\n";
  }

  html += "<h2>Over time</h2>\n";
  html += line_chart("Response time percentiles (socketio.response_time)", "ms", x, {p50, p95, p99});
  html += line_chart("Throughput", "per second", x, {rate, arrivals});
  html += line_chart("Users", "users", x, {users});
  if (!error_series.empty()) {
    html += line_chart("Errors per interval, by code", "errors", x, error_series);
  } else {
    html += "<p class=\"muted\">No errors.</p>\n";
  }
  const auto errors_total = t.errors();
  if (!errors_total.empty()) {
    const nlohmann::json details = r.meta.value("errorDetails", nlohmann::json::object());
    html += "<h2>Errors</h2><table><tr><th>code</th><th>count</th><th>first</th></tr>";
    for (const auto& [code, n] : errors_total) {
      const auto d = details.find(code);
      const std::string first = d != details.end() && d->is_string() ? d->get<std::string>() : "";
      html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", escape(code), n, escape(first));
    }
    html += "</table>\n";
  }
  html += "</body></html>\n";
  return html;
}

}  // namespace phasekit::load
