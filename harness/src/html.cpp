// render_html: one self-contained page (inline CSS and SVG; no script, no fetch) that opens offline.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "html_page.hpp"
#include "report.hpp"

namespace phasekit::load {
namespace {

using html::escape;
using html::number;
using html::Series;

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
  std::string page = html::page_start("phasekit-load report");
  page += fmt::format("<h1>phasekit-load report</h1><p class=\"muted\">{} → {} · started {} · {:.1f} s · {} thread(s)",
                      meta("scenario"), meta("target"), meta("startedAt"), r.duration_s, meta("threads"));
  if (r.meta.contains("generators")) {
    page += fmt::format(" · merged from {} generators", meta("generators"));
  }
  page += "</p>\n";
  const MetricSet& t = r.total;
  page += "<h2>Summary</h2><table>";
  const auto row = [&](std::string_view k, const std::string& v) {
    page += fmt::format("<tr><td>{}</td><td>{}</td></tr>", k, v);
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
  page += "</table>\n";

  page += "<h2>Latency (ms)</h2><table><tr><th>metric</th><th>count</th><th>p50</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>";
  for (const auto& [name, h] : t.histograms) {
    const auto v = [&, &metric = name](const char* stat) { return cell(metric_value(t, r.duration_s, metric + "." + stat)); };
    page += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(name), h.count(), v("p50"), v("p95"), v("p99"), v("p999"), v("max"));
  }
  page += "</table>\n";

  if (!r.checks.empty()) {
    page += "<h2>Checks</h2><table><tr><th>threshold</th><th>actual</th><th>result</th></tr>";
    for (const CheckResult& c : r.checks) {
      page += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>", escape(c.threshold.text),
                          c.actual ? number(*c.actual) : "no samples", c.ok ? "ok" : "fail", c.ok ? "pass" : "FAIL");
    }
    page += "</table>\n";
  }

  const auto interval_s = r.meta.contains("intervalSeconds") && r.meta["intervalSeconds"].is_number()
                              ? fmt::format(" (one point per {} s interval)", number(r.meta["intervalSeconds"].get<double>()))
                              : std::string();
  page += fmt::format("<h2>Over time</h2><p class=\"muted\">{} intervals{}</p>\n", r.intervals.size(), interval_s);
  const std::string elapsed = "elapsed (s)";
  page += html::render({.id = "latency",
                        .title = "Response time percentiles (socketio.response_time)",
                        .y_title = "ms",
                        .x_title = elapsed,
                        .x = x,
                        .series = {p50, p95, p99}});
  page += html::render(
      {.id = "throughput", .title = "Throughput", .y_title = "per second", .x_title = elapsed, .x = x, .series = {rate, arrivals}});
  page += html::render(
      {.id = "users", .title = "Users", .y_title = "users", .x_title = elapsed, .x = x, .series = {users}, .counts = true});
  if (!error_series.empty()) {
    page += html::render({.id = "errors",
                          .title = "Errors per interval, by code",
                          .y_title = "errors",
                          .x_title = elapsed,
                          .x = x,
                          .series = error_series,
                          .counts = true});
  } else {
    page += "<p class=\"muted\">No errors.</p>\n";
  }
  const auto errors_total = t.errors();
  if (!errors_total.empty()) {
    const nlohmann::json details = r.meta.value("errorDetails", nlohmann::json::object());
    page += "<h2>Errors</h2><table><tr><th>code</th><th>count</th><th>first</th></tr>";
    for (const auto& [code, n] : errors_total) {
      const auto d = details.find(code);
      const std::string first = d != details.end() && d->is_string() ? d->get<std::string>() : "";
      page += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", escape(code), n, escape(first));
    }
    page += "</table>\n";
  }
  page += html::page_end();
  return page;
}

}  // namespace phasekit::load
