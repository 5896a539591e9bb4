#pragma once
// The JSON report of a run: per-interval and total metrics (histograms with their buckets, so that
// `merge` is exact), the phases, the checks; plus the text a person reads at the end and the
// comparison against a baseline that CI uses.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "metrics.hpp"
#include "thresholds.hpp"

namespace phasekit::load {

inline constexpr std::string_view kReportSchema = "phasekit-load/report@1";

// The report interval when the user chose none: enough points for every chart, never a sub-second
// interval (a second is the grain of the progress lines and of a Prometheus scrape).
inline constexpr double kMinChartPoints = 60;
inline constexpr double kMinIntervalSeconds = 1;

/// The interval of a run expected to last run_s seconds: at most run_s / kMinChartPoints (so every
/// chart has at least 60 points), at least kMinIntervalSeconds, rounded down to a round length
/// (1, 2, 3, 5, 10, 15, 20, 30 s; 1, 2, 3, 5, 10, 15, 20, 30 min; then whole hours).
double auto_interval_s(double run_s);

struct Interval {
  double start_s = 0;  // from the start of the run
  double end_s = 0;
  std::string phase;
  std::uint64_t users_active = 0;  // at the end of the interval
  MetricSet metrics;
};

struct Report {
  nlohmann::json meta = nlohmann::json::object();  // scenario, target, startedAt, harness, threads, sources
  double duration_s = 0;
  std::uint64_t peak_users = 0;
  std::vector<Interval> intervals;
  MetricSet total;
  std::vector<CheckResult> checks;

  [[nodiscard]] nlohmann::json to_json() const;
  /// Throws std::invalid_argument naming the path of what is wrong.
  static Report from_json(const nlohmann::json& j);
  static Report load(const std::string& path);
  void save(const std::string& path) const;
};

/// Reports of several load generators that ran the same scenario at the same time: counters add,
/// histograms merge bucket by bucket, interval i of each lands in interval i. Throws when they
/// cannot be combined (another schema).
Report merge_reports(const std::vector<Report>& reports);

/// One line of --output jsonl: the interval's time (wall clock, RFC 3339 with milliseconds), its
/// start and end in seconds of the run, phase, users active, counters (this interval's increments),
/// and per histogram count, p50, p95, p99, max and mean in ms; plus "step" (users) in a capacity search.
nlohmann::json interval_line(const Interval& interval, std::string_view time,
                             std::optional<std::uint64_t> step_users = std::nullopt);

/// --output jsonl=FILE: a line per interval, written and flushed as each interval ends. Times come
/// from the wall clock when the log opened plus the steady clock since, so they never go backwards.
class IntervalLog {
 public:
  /// Throws std::runtime_error naming the file when it cannot be opened.
  explicit IntervalLog(std::string path);
  /// On a failed write, says so once on stderr and keeps the run going.
  void write(const Interval& interval, std::optional<std::uint64_t> step_users = std::nullopt);

 private:
  std::string path_;
  std::ofstream out_;
  std::chrono::system_clock::time_point wall_start_;
  std::chrono::steady_clock::time_point steady_start_;
  bool failed_ = false;
};

/// The end-of-run text: totals, latency table, errors, checks.
std::string render_summary(const Report& report);
/// One progress line for an interval.
std::string render_progress(const Interval& interval, double interval_s);

struct CompareOptions {
  double max_regression = 0.10;      // latency up, or throughput down, by more than this fraction
  double min_delta_ms = 1.0;         // latency changes smaller than this never count (timer noise)
  double max_error_increase = 0.5;   // error_rate may rise by this many percentage points
  std::vector<std::string> metrics;  // empty: the default set
};

struct CompareRow {
  std::string metric;
  std::optional<double> baseline;
  std::optional<double> current;
  bool regressed = false;
  std::string verdict;
};

std::vector<CompareRow> compare_reports(const Report& baseline, const Report& current, const CompareOptions& options);
std::string render_compare(const std::vector<CompareRow>& rows, const CompareOptions& options);

/// A self-contained HTML page (inline SVG charts, no scripts or fetches) of the report.
std::string render_html(const Report& report);

}  // namespace phasekit::load
