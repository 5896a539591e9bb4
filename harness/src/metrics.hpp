#pragma once
// What one load run measures: named counters and latency histograms, the names a threshold, an SLO
// or `compare` may use, and how a name turns into a number.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "histogram.hpp"

namespace phasekit::load {

// Counters.
inline constexpr std::string_view kVusersCreated = "vusers.created";      // arrivals that started
inline constexpr std::string_view kVusersCompleted = "vusers.completed";  // ran their flow to the end
inline constexpr std::string_view kVusersFailed = "vusers.failed";        // stopped by an error
inline constexpr std::string_view kVusersSkipped = "vusers.skipped";      // not started: maxVusers reached
inline constexpr std::string_view kArrivalsLate = "arrivals.late";        // started later than --late-ms
inline constexpr std::string_view kArrivalsDropped = "arrivals.dropped";  // could not start: harness limits
inline constexpr std::string_view kEmits = "socketio.emit";
inline constexpr std::string_view kAcks = "socketio.ack";
inline constexpr std::string_view kResponses = "socketio.response";
inline constexpr std::string_view kEventsReceived = "socketio.events_received";
inline constexpr std::string_view kFlowsCompleted = "flows.completed";
inline constexpr std::string_view kReconnects = "socketio.reconnects";  // reconnection: connections made again
inline constexpr std::string_view kFlowsFailed = "flows.failed";  // --keep-going or reconnection: flows that failed
inline constexpr std::string_view kErrorPrefix = "errors.";  // errors.<code>
// Histograms (µs inside, milliseconds wherever a person or a threshold sees them).
inline constexpr std::string_view kResponseTime = "socketio.response_time";  // emit → awaited ack/response
inline constexpr std::string_view kConnectTime = "socketio.connect_time";    // intended arrival → namespace joined
inline constexpr std::string_view kTlsHandshake = "socketio.tls_handshake";  // TCP connected → TLS established
inline constexpr std::string_view kSessionLength = "vusers.session_length";
inline constexpr std::string_view kArrivalLag = "harness.arrival_lag";       // actual − intended start of a VU
// Every counter but errors.<code>, and every histogram but the per-channel response times: what a
// report or a scrape shows even before the first sample.
inline constexpr std::array<std::string_view, 11> kKnownCounters{
    kVusersCreated, kVusersCompleted, kVusersFailed,   kVusersSkipped,  kArrivalsLate,  kArrivalsDropped,
    kEmits,         kAcks,            kResponses,      kEventsReceived, kFlowsCompleted};
inline constexpr std::array<std::string_view, 4> kKnownHistograms{kResponseTime, kConnectTime, kSessionLength,
                                                                  kArrivalLag};
// Derived.
inline constexpr std::string_view kErrorRate = "error_rate";  // percent of vusers.created that failed
inline constexpr std::string_view kEmitRate = "socketio.emit_rate";  // emits per second

struct MetricSet {
  std::map<std::string, std::uint64_t, std::less<>> counters;
  std::map<std::string, Histogram, std::less<>> histograms;

  void add(std::string_view counter, std::uint64_t by = 1);
  void record(std::string_view histogram, std::uint64_t micros);
  void merge(const MetricSet& other);
  [[nodiscard]] std::uint64_t counter(std::string_view name) const;
  [[nodiscard]] const Histogram* histogram(std::string_view name) const;
  /// Errors by code ("response_timeout" → 3), from the errors.<code> counters.
  [[nodiscard]] std::map<std::string, std::uint64_t> errors() const;
  [[nodiscard]] bool empty() const { return counters.empty() && histograms.empty(); }
};

/// Where a running load's measurements go as they are taken (a worker thread's share of the run's
/// metrics).
class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void add(std::string_view counter, std::uint64_t by = 1) = 0;
  virtual void record(std::string_view histogram, std::uint64_t micros) = 0;
};

/// The names thresholds may use. channels: the emit channels of the scenario, each of which has its
/// own socketio.response_time.<channel> histogram.
class MetricCatalog {
 public:
  explicit MetricCatalog(const std::set<std::string>& channels = {});
  /// nullopt when fine, else why the name is unknown (listing what is known).
  [[nodiscard]] std::optional<std::string> check(std::string_view metric) const;
  [[nodiscard]] bool is_time(std::string_view metric) const;  // milliseconds

 private:
  std::set<std::string, std::less<>> histograms_;
};

/// The value of a metric name over a metric set measured for duration_s seconds:
/// "<histogram>.p95" (ms), ".p50" ".p75" ".p90" ".p99" ".p999" ".min" ".max" ".mean" ".median" ".count";
/// a counter by its name; "<counter>.rate" per second; error_rate (percent); socketio.emit_rate.
/// nullopt when the metric has no samples (a histogram with count 0, error_rate with no VUs).
std::optional<double> metric_value(const MetricSet& set, double duration_s, std::string_view metric);

}  // namespace phasekit::load
