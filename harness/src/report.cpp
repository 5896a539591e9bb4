#include "report.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace phasekit::load {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

json metrics_to_json(const MetricSet& set) {
  json histograms = json::object();
  for (const auto& [name, h] : set.histograms) {
    histograms[name] = h.to_json();
  }
  return {{"counters", set.counters}, {"histograms", std::move(histograms)}};
}

MetricSet metrics_from_json(const json& j, const std::string& where) {
  MetricSet set;
  if (!j.is_object()) {
    fail(where + ": expected an object with counters and histograms");
  }
  if (const auto c = j.find("counters"); c != j.end()) {
    if (!c->is_object()) {
      fail(where + ".counters: expected an object");
    }
    for (const auto& [name, value] : c->items()) {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 0) {
        fail(fmt::format("{}.counters.{}: expected a non-negative integer", where, name));
      }
      set.counters[name] = value.get<std::uint64_t>();
    }
  }
  if (const auto h = j.find("histograms"); h != j.end()) {
    if (!h->is_object()) {
      fail(where + ".histograms: expected an object");
    }
    for (const auto& [name, value] : h->items()) {
      try {
        set.histograms.emplace(name, Histogram::from_json(value));
      } catch (const std::invalid_argument& e) {
        fail(fmt::format("{}.histograms.{}: {}", where, name, e.what()));
      }
    }
  }
  return set;
}

double number_at(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number() || it->get<double>() < 0) {
    fail(fmt::format("{}.{}: expected a non-negative number", where, key));
  }
  return it->get<double>();
}

std::string ms_text(std::optional<double> v) {
  if (!v) {
    return "-";
  }
  return *v >= 100 ? fmt::format("{:.0f}", *v) : fmt::format("{:.2f}", *v);
}

}  // namespace

double auto_interval_s(double run_s) {
  static constexpr std::array<double, 16> kRound{1,   2,   3,   5,   10,  15,  20,   30,
                                                 60,  120, 180, 300, 600, 900, 1200, 1800};
  const double longest = std::isfinite(run_s) ? run_s / kMinChartPoints : 0;
  if (longest >= 3600) {
    return 3600 * std::floor(longest / 3600);
  }
  double chosen = kMinIntervalSeconds;
  for (const double r : kRound) {
    if (r <= longest) {
      chosen = r;
    }
  }
  return std::max(chosen, kMinIntervalSeconds);
}

json Report::to_json() const {
  json intervals_json = json::array();
  for (const Interval& i : intervals) {
    json entry = metrics_to_json(i.metrics);
    entry["start"] = i.start_s;
    entry["end"] = i.end_s;
    entry["phase"] = i.phase;
    entry["usersActive"] = i.users_active;
    intervals_json.push_back(std::move(entry));
  }
  json checks_json = json::array();
  for (const CheckResult& c : checks) {
    checks_json.push_back({{"threshold", c.threshold.text},
                           {"metric", c.threshold.metric},
                           {"op", op_text(c.threshold.op)},
                           {"value", c.threshold.value},
                           {"actual", c.actual ? json(*c.actual) : json(nullptr)},
                           {"ok", c.ok}});
  }
  json summary = json::object();
  for (std::string_view m : {kErrorRate, kEmitRate}) {
    const auto v = metric_value(total, duration_s, m);
    summary[std::string(m)] = v ? json(*v) : json(nullptr);
  }
  return {{"schema", kReportSchema}, {"meta", meta},           {"durationSeconds", duration_s},
          {"peakUsers", peak_users}, {"summary", summary},     {"total", metrics_to_json(total)},
          {"intervals", intervals_json}, {"checks", checks_json}};
}

Report Report::from_json(const json& j) {
  if (!j.is_object() || j.value("schema", std::string()) != kReportSchema) {
    fail(fmt::format("not a phasekit-load report (expected \"schema\": \"{}\")", kReportSchema));
  }
  Report r;
  r.meta = j.value("meta", json::object());
  r.duration_s = number_at(j, "durationSeconds", "report");
  r.peak_users = j.value("peakUsers", std::uint64_t{0});
  r.total = metrics_from_json(j.value("total", json::object()), "report.total");
  const json intervals = j.value("intervals", json::array());
  if (!intervals.is_array()) {
    fail("report.intervals: expected an array");
  }
  for (std::size_t k = 0; k < intervals.size(); ++k) {
    const std::string where = fmt::format("report.intervals[{}]", k);
    Interval i;
    i.start_s = number_at(intervals[k], "start", where);
    i.end_s = number_at(intervals[k], "end", where);
    i.phase = intervals[k].value("phase", std::string());
    i.users_active = intervals[k].value("usersActive", std::uint64_t{0});
    i.metrics = metrics_from_json(intervals[k], where);
    r.intervals.push_back(std::move(i));
  }
  return r;  // checks are not read back: they belong to the run that made them
}

Report Report::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fail(fmt::format("{}: cannot open", path));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const json j = json::parse(buffer.str(), nullptr, false);
  if (j.is_discarded()) {
    fail(fmt::format("{}: not valid JSON", path));
  }
  try {
    return from_json(j);
  } catch (const std::invalid_argument& e) {
    fail(fmt::format("{}: {}", path, e.what()));
  }
}

void Report::save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << to_json().dump() << '\n';
    if (!out.flush()) {
      fail(fmt::format("{}: cannot write", tmp));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    fail(fmt::format("{}: cannot write", path));
  }
}

Report merge_reports(const std::vector<Report>& reports) {
  if (reports.empty()) {
    fail("merge: no reports");
  }
  Report out;
  out.meta = reports.front().meta;
  json sources = json::array();
  for (const Report& r : reports) {
    out.duration_s = std::max(out.duration_s, r.duration_s);
    out.peak_users += r.peak_users;  // peaks of separate generators add (each ran its own users)
    out.total.merge(r.total);
    sources.push_back(r.meta);
    for (std::size_t i = 0; i < r.intervals.size(); ++i) {
      if (out.intervals.size() <= i) {
        out.intervals.push_back(r.intervals[i]);
        continue;
      }
      Interval& into = out.intervals[i];
      into.start_s = std::min(into.start_s, r.intervals[i].start_s);
      into.end_s = std::max(into.end_s, r.intervals[i].end_s);
      into.users_active += r.intervals[i].users_active;
      into.metrics.merge(r.intervals[i].metrics);
    }
  }
  out.meta["mergedFrom"] = std::move(sources);
  out.meta["generators"] = reports.size();
  return out;
}

json interval_line(const Interval& i, std::string_view time, std::optional<std::uint64_t> step_users) {
  json latency = json::object();
  const double seconds = std::max(1e-9, i.end_s - i.start_s);
  for (const auto& [name, h] : i.metrics.histograms) {
    json stats = {{"count", h.count()}};
    for (const char* stat : {"p50", "p95", "p99", "max", "mean"}) {
      const auto v = metric_value(i.metrics, seconds, fmt::format("{}.{}", name, stat));
      stats[stat] = v ? json(*v) : json(nullptr);
    }
    latency[name] = std::move(stats);
  }
  json line = {{"time", time},
               {"start", i.start_s},
               {"end", i.end_s},
               {"phase", i.phase},
               {"usersActive", i.users_active},
               {"counters", i.metrics.counters},
               {"latencyMs", std::move(latency)}};
  if (step_users) {
    line["step"] = *step_users;
  }
  return line;
}

IntervalLog::IntervalLog(std::string path)
    : path_(std::move(path)),
      out_(path_, std::ios::binary | std::ios::trunc),
      wall_start_(std::chrono::system_clock::now()),
      steady_start_(std::chrono::steady_clock::now()) {
  if (!out_) {
    throw std::runtime_error(fmt::format("{}: cannot write", path_));
  }
}

void IntervalLog::write(const Interval& interval, std::optional<std::uint64_t> step_users) {
  const auto since = std::chrono::steady_clock::now() - steady_start_;
  const auto at = std::chrono::time_point_cast<std::chrono::milliseconds>(
      wall_start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(since));
  const auto ms = at.time_since_epoch().count() % 1000;
  const std::string time = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z",
                                       fmt::gmtime(std::chrono::system_clock::to_time_t(at)), ms);
  out_ << interval_line(interval, time, step_users).dump() << '\n';
  out_.flush();
  if (!out_ && !failed_) {
    failed_ = true;
    std::fprintf(stderr, "phasekit-load: %s: cannot write the interval log (the run goes on)\n", path_.c_str());
  }
}

std::string render_progress(const Interval& i, double interval_s) {
  const MetricSet& m = i.metrics;
  const double rate = interval_s > 0 ? static_cast<double>(m.counter(kEmits)) / interval_s : 0;
  std::string errors;
  for (const auto& [code, n] : m.errors()) {
    errors += fmt::format(" {}={}", code, n);
  }
  return fmt::format("[{:>7.1f}s] {:<16} users {:>6} | {:>8.1f} emit/s | p50 {} p95 {} p99 {} ms | vusers +{} ok {} "
                     "failed {} | errors:{}",
                     i.end_s, i.phase.empty() ? "-" : fmt::format("\"{}\"", i.phase), i.users_active, rate,
                     ms_text(metric_value(m, interval_s, "socketio.response_time.p50")),
                     ms_text(metric_value(m, interval_s, "socketio.response_time.p95")),
                     ms_text(metric_value(m, interval_s, "socketio.response_time.p99")), m.counter(kVusersCreated),
                     m.counter(kVusersCompleted), m.counter(kVusersFailed), errors.empty() ? " none" : errors);
}

std::string render_summary(const Report& r) {
  std::string out;
  const MetricSet& t = r.total;
  out += fmt::format("Summary ({:.1f} s, peak {} users)\n", r.duration_s, r.peak_users);
  out += fmt::format("  vusers: created {}, completed {}, failed {}, skipped (maxVusers) {}\n", t.counter(kVusersCreated),
                     t.counter(kVusersCompleted), t.counter(kVusersFailed), t.counter(kVusersSkipped));
  out += fmt::format("  socketio: emits {} ({:.1f}/s), acks {}, responses {}, events received {}\n", t.counter(kEmits),
                     metric_value(t, r.duration_s, kEmitRate).value_or(0), t.counter(kAcks), t.counter(kResponses),
                     t.counter(kEventsReceived));
  out += fmt::format("  harness: arrivals late {}, dropped {}, arrival lag p99 {} ms\n", t.counter(kArrivalsLate),
                     t.counter(kArrivalsDropped), ms_text(metric_value(t, r.duration_s, "harness.arrival_lag.p99")));
  out += fmt::format("  {:<40} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "latency (ms)", "count", "p50", "p95", "p99",
                     "p99.9", "max");
  for (const auto& [name, h] : t.histograms) {
    if (name == kArrivalLag) {
      continue;
    }
    const auto v = [&, &metric = name](const char* stat) { return ms_text(metric_value(t, r.duration_s, metric + "." + stat)); };
    out += fmt::format("  {:<40} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n", name, h.count(), v("p50"), v("p95"), v("p99"),
                       v("p999"), v("max"));
  }
  const auto errors = t.errors();
  if (!errors.empty()) {
    out += "  errors:";
    for (const auto& [code, n] : errors) {
      out += fmt::format(" {}={}", code, n);
    }
    out += "\n";
    // Why, in the words of the first user each code stopped.
    if (const auto details = r.meta.find("errorDetails"); details != r.meta.end() && details->is_object()) {
      for (const auto& [code, text] : details->items()) {
        if (text.is_string()) {
          out += fmt::format("    {}: {}\n", code, text.get<std::string>());
        }
      }
    }
  }
  if (!r.checks.empty()) {
    std::size_t passed = 0;
    out += "Checks\n";
    for (const CheckResult& c : r.checks) {
      passed += c.ok ? 1 : 0;
      out += fmt::format("  {} {:<36} actual {}\n", c.ok ? "ok  " : "FAIL", c.threshold.text,
                         c.actual ? fmt::format("{:.3f}", *c.actual) : std::string("no samples"));
    }
    out += fmt::format("{} passed, {} failed\n", passed, r.checks.size() - passed);
  }
  return out;
}

std::vector<CompareRow> compare_reports(const Report& baseline, const Report& current, const CompareOptions& o) {
  std::vector<std::string> metrics = o.metrics;
  if (metrics.empty()) {
    metrics = {"socketio.response_time.p50", "socketio.response_time.p95", "socketio.response_time.p99",
               "socketio.connect_time.p95", std::string(kErrorRate), std::string(kEmitRate)};
  }
  const MetricCatalog catalog;
  std::vector<CompareRow> rows;
  for (const std::string& m : metrics) {
    CompareRow row{m, metric_value(baseline.total, baseline.duration_s, m),
                   metric_value(current.total, current.duration_s, m), false, ""};
    if (!row.baseline || !row.current) {
      row.regressed = row.baseline.has_value() && !row.current.has_value();
      row.verdict = row.regressed ? "no samples in current" : "no baseline";
    } else if (m == kErrorRate) {
      row.regressed = *row.current > *row.baseline + o.max_error_increase;
      row.verdict = fmt::format("{:+.2f} pp", *row.current - *row.baseline);
    } else if (m == kEmitRate || m.ends_with(".rate") || !catalog.is_time(m)) {
      // throughput: lower is worse
      row.regressed = *row.current < *row.baseline * (1.0 - o.max_regression);
      row.verdict = *row.baseline > 0 ? fmt::format("{:+.1f} %", 100.0 * (*row.current / *row.baseline - 1.0)) : "";
    } else {
      const double delta = *row.current - *row.baseline;
      row.regressed = delta > o.min_delta_ms && *row.current > *row.baseline * (1.0 + o.max_regression);
      row.verdict = *row.baseline > 0 ? fmt::format("{:+.1f} %", 100.0 * (*row.current / *row.baseline - 1.0))
                                      : fmt::format("{:+.3f} ms", delta);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string render_compare(const std::vector<CompareRow>& rows, const CompareOptions& o) {
  std::string out = fmt::format("{:<34} {:>12} {:>12} {:>12}  {}\n", "metric", "baseline", "current", "change",
                                "verdict");
  std::size_t failed = 0;
  for (const CompareRow& r : rows) {
    failed += r.regressed ? 1 : 0;
    out += fmt::format("{:<34} {:>12} {:>12} {:>12}  {}\n", r.metric, ms_text(r.baseline), ms_text(r.current),
                       r.verdict, r.regressed ? "REGRESSION" : "ok");
  }
  out += fmt::format("limits: latency +{:.0f} % (and > {} ms), throughput -{:.0f} %, error rate +{} pp\n",
                     100 * o.max_regression, o.min_delta_ms, 100 * o.max_regression, o.max_error_increase);
  out += fmt::format("{} passed, {} failed\n", rows.size() - failed, failed);
  return out;
}

}  // namespace phasekit::load
