#include "live_metrics.hpp"

#include "phasekit/prometheus_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

namespace phasekit::load {
namespace {

constexpr std::string_view kPrefix = "phasekit_load_";
constexpr std::string_view kChannelHistogram = "phasekit_load_socketio_channel_response_time_seconds";

constexpr std::array<double, 26> kBucketsS{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.075,  0.1,     0.15,   0.2,   0.25,   0.3,   0.4,  0.5,   0.75,
                                           1,      1.5,     2,      2.5,   5,      10,    30,   60};

struct Help {
  std::string_view metric;
  std::string_view text;
};
constexpr std::array<Help, 15> kHelp{{
    {kVusersCreated, "Virtual users that started (arrivals)."},
    {kVusersCompleted, "Virtual users that ran their flow to the end."},
    {kVusersFailed, "Virtual users stopped by an error."},
    {kVusersSkipped, "Arrivals not started because maxVusers was reached."},
    {kArrivalsLate, "Users that started later than --late-ms after their intended time."},
    {kArrivalsDropped, "Arrivals the harness could not start (open-file limit): the load was lower than asked."},
    {kEmits, "Socket.IO events sent."},
    {kAcks, "Acknowledgements received."},
    {kResponses, "Awaited response events received."},
    {kEventsReceived, "Socket.IO events received."},
    {kFlowsCompleted, "Flows run to the end (users repeat flows in capacity steps)."},
    {kResponseTime, "Emit to its awaited response and/or ack, from the intended send time."},
    {kConnectTime, "Intended arrival to namespace joined."},
    {kSessionLength, "Arrival to flow finished."},
    {kArrivalLag, "Actual minus intended start of a user."},
}};

std::string_view help_of(std::string_view metric) {
  for (const Help& h : kHelp) {
    if (h.metric == metric) {
      return h.text;
    }
  }
  return {};
}

// "socketio.response_time" → "phasekit_load_socketio_response_time"
std::string family_name(std::string_view metric) {
  std::string out(kPrefix);
  for (const char c : metric) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : '_';
  }
  return out;
}


std::string label(std::string_view name, std::string_view value) {
  std::string out = fmt::format("{}=\"", name);
  prometheus::append_label_value(out, value);
  return out + '"';
}


void header(std::string& out, std::string_view family, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", family, help, family, type);
}

void histogram_series(std::string& out, std::string_view family, const std::string& labels, const Histogram& h) {
  static const std::array<std::uint64_t, kBucketsS.size()> kBoundsUs = [] {
    std::array<std::uint64_t, kBucketsS.size()> us{};
    for (std::size_t i = 0; i < kBucketsS.size(); ++i) {
      us[i] = static_cast<std::uint64_t>(std::llround(kBucketsS[i] * 1e6));
    }
    return us;
  }();
  const std::vector<std::uint64_t> cumulative = h.count_at_or_below(kBoundsUs);
  const std::string sep = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < kBucketsS.size(); ++i) {
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", family, labels, sep, prometheus::format_number(kBucketsS[i]),
                       cumulative[i]);
  }
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", family, labels, sep, h.count());
  const std::string braces = labels.empty() ? "" : fmt::format("{{{}}}", labels);
  out += fmt::format("{}_sum{} {}\n", family, braces, prometheus::format_number(static_cast<double>(h.sum()) / 1e6));
  out += fmt::format("{}_count{} {}\n", family, braces, h.count());
}

}  // namespace

std::span<const double> exposition_buckets_s() noexcept { return kBucketsS; }

LiveMetrics::LiveMetrics(ExpositionInfo info) : info_(std::move(info)) { store(LiveSnapshot{}); }

void LiveMetrics::begin_step(std::uint64_t users) { step_users_ = users; }

void LiveMetrics::begin_run() {
  LiveSnapshot s;
  s.total = completed_;
  s.runs_completed = runs_completed_;
  s.step_users = step_users_;
  s.running = true;
  store(std::move(s));
}

void LiveMetrics::publish(const MetricSet& run_total, const MetricSet& pending, std::uint64_t users_active,
                          double elapsed_s, const std::string& phase) {
  LiveSnapshot s;
  s.total = completed_;
  s.total.merge(run_total);
  s.total.merge(pending);
  s.users_active = users_active;
  s.runs_completed = runs_completed_;
  s.step_users = step_users_;
  s.run_elapsed_s = elapsed_s;
  s.phase = phase;
  s.running = true;
  store(std::move(s));
}

void LiveMetrics::end_run(const MetricSet& run_total) {
  completed_.merge(run_total);
  ++runs_completed_;
  LiveSnapshot s;
  s.total = completed_;
  s.runs_completed = runs_completed_;
  s.step_users = step_users_;
  store(std::move(s));
}

void LiveMetrics::store(LiveSnapshot&& s) {
  auto next = std::make_shared<const LiveSnapshot>(std::move(s));
  std::shared_ptr<const LiveSnapshot> previous;  // freed outside the lock
  const std::lock_guard lock(mutex_);
  previous = std::exchange(current_, std::move(next));
}

std::shared_ptr<const LiveSnapshot> LiveMetrics::snapshot() const {
  const std::lock_guard lock(mutex_);
  return current_;
}

std::string LiveMetrics::render() const { return render_prometheus(*snapshot(), info_); }

std::string render_prometheus(const LiveSnapshot& s, const ExpositionInfo& info) {
  std::string out;
  out.reserve(16384);
  header(out, "phasekit_load_info", "gauge", "The scenario phasekit-load replays and its target.");
  out += fmt::format("phasekit_load_info{{{},{}}} 1\n", label("scenario", info.scenario), label("target", info.target));
  header(out, "phasekit_load_phase_info", "gauge", "The phase of the running run.");
  if (s.running) {
    out += fmt::format("phasekit_load_phase_info{{{}}} 1\n", label("phase", s.phase));
  }
  header(out, "phasekit_load_running", "gauge", "1 while a run (a capacity step) is running.");
  out += fmt::format("phasekit_load_running {}\n", s.running ? 1 : 0);
  header(out, "phasekit_load_vusers_active", "gauge", "Virtual users running now.");
  out += fmt::format("phasekit_load_vusers_active {}\n", s.users_active);
  header(out, "phasekit_load_run_elapsed_seconds", "gauge", "Seconds since the running run started.");
  out += fmt::format("phasekit_load_run_elapsed_seconds {}\n", prometheus::format_number(s.run_elapsed_s));
  header(out, "phasekit_load_capacity_step_users", "gauge", "Users of the running capacity step (0: none).");
  out += fmt::format("phasekit_load_capacity_step_users {}\n", s.step_users);
  header(out, "phasekit_load_runs_completed_total", "counter", "Runs (capacity steps) that ended.");
  out += fmt::format("phasekit_load_runs_completed_total {}\n", s.runs_completed);

  // Counters: the known ones always (a rate needs the zero before the first increment), then any other.
  for (const std::string_view name : kKnownCounters) {
    const std::string family = family_name(name) + "_total";
    header(out, family, "counter", help_of(name));
    out += fmt::format("{} {}\n", family, s.total.counter(name));
  }
  const auto errors = s.total.errors();
  header(out, "phasekit_load_errors_total", "counter", "Errors by code (docs/load.md lists the codes).");
  for (const auto& [code, n] : errors) {
    out += fmt::format("phasekit_load_errors_total{{{}}} {}\n", label("code", code), n);
  }
  for (const auto& [name, n] : s.total.counters) {
    const bool known = std::find(kKnownCounters.begin(), kKnownCounters.end(), name) != kKnownCounters.end();
    if (known || name.starts_with(kErrorPrefix)) {
      continue;
    }
    const std::string family = family_name(name) + "_total";
    header(out, family, "counter", fmt::format("phasekit-load counter {}.", name));
    out += fmt::format("{} {}\n", family, n);
  }

  // Histograms: the known ones always, then the per-channel response times as one family.
  static const Histogram kEmpty;
  for (const std::string_view name : kKnownHistograms) {
    const std::string family = family_name(name) + "_seconds";
    header(out, family, "histogram", help_of(name));
    const Histogram* h = s.total.histogram(name);
    histogram_series(out, family, "", h != nullptr ? *h : kEmpty);
  }
  const std::string channel_prefix = fmt::format("{}.", kResponseTime);
  header(out, kChannelHistogram, "histogram", "Response time by emitted channel.");
  for (const auto& [name, h] : s.total.histograms) {
    if (name.starts_with(channel_prefix)) {
      histogram_series(out, kChannelHistogram, label("channel", std::string_view(name).substr(channel_prefix.size())), h);
    }
  }
  for (const auto& [name, h] : s.total.histograms) {
    const bool known = std::find(kKnownHistograms.begin(), kKnownHistograms.end(), name) != kKnownHistograms.end();
    if (known || name.starts_with(channel_prefix)) {
      continue;
    }
    const std::string family = family_name(name) + "_seconds";
    header(out, family, "histogram", fmt::format("phasekit-load histogram {}.", name));
    histogram_series(out, family, "", h);
  }
  return out;
}

}  // namespace phasekit::load
