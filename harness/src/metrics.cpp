#include "metrics.hpp"

#include <fmt/format.h>

#include <array>

namespace phasekit::load {
namespace {

struct Stat {
  std::string_view suffix;
  double quantile;  // < 0: not a quantile
};
constexpr std::array<Stat, 11> kStats{{{"p50", 0.50},
                                       {"median", 0.50},
                                       {"p75", 0.75},
                                       {"p90", 0.90},
                                       {"p95", 0.95},
                                       {"p99", 0.99},
                                       {"p999", 0.999},
                                       {"min", -1},
                                       {"max", -2},
                                       {"mean", -3},
                                       {"count", -4}}};

// "socketio.response_time.p95" → {"socketio.response_time", stat}
std::pair<std::string_view, const Stat*> split_stat(std::string_view metric) {
  const auto dot = metric.rfind('.');
  if (dot == std::string_view::npos) {
    return {metric, nullptr};
  }
  const std::string_view suffix = metric.substr(dot + 1);
  for (const Stat& s : kStats) {
    if (s.suffix == suffix) {
      return {metric.substr(0, dot), &s};
    }
  }
  return {metric, nullptr};
}

bool is_counter(std::string_view name) {
  for (std::string_view c : kKnownCounters) {
    if (c == name) {
      return true;
    }
  }
  return name.starts_with(kErrorPrefix) && name.size() > kErrorPrefix.size();
}

}  // namespace

void MetricSet::add(std::string_view counter, std::uint64_t by) {
  auto it = counters.find(counter);
  if (it == counters.end()) {
    it = counters.emplace(std::string(counter), 0).first;
  }
  it->second += by;
}

void MetricSet::record(std::string_view name, std::uint64_t micros) {
  auto it = histograms.find(name);
  if (it == histograms.end()) {
    it = histograms.emplace(std::string(name), Histogram()).first;
  }
  it->second.record(micros);
}

void MetricSet::merge(const MetricSet& other) {
  for (const auto& [name, value] : other.counters) {
    add(name, value);
  }
  for (const auto& [name, h] : other.histograms) {
    auto it = histograms.find(name);
    if (it == histograms.end()) {
      histograms.emplace(name, h);
    } else {
      it->second.merge(h);
    }
  }
}

std::uint64_t MetricSet::counter(std::string_view name) const {
  const auto it = counters.find(name);
  return it == counters.end() ? 0 : it->second;
}

const Histogram* MetricSet::histogram(std::string_view name) const {
  const auto it = histograms.find(name);
  return it == histograms.end() ? nullptr : &it->second;
}

std::map<std::string, std::uint64_t> MetricSet::errors() const {
  std::map<std::string, std::uint64_t> out;
  for (const auto& [name, value] : counters) {
    if (name.starts_with(kErrorPrefix)) {
      out.emplace(name.substr(kErrorPrefix.size()), value);
    }
  }
  return out;
}

MetricCatalog::MetricCatalog(const std::set<std::string>& channels)
    : histograms_{std::string(kResponseTime), std::string(kConnectTime), std::string(kTlsHandshake),
                  std::string(kSessionLength), std::string(kArrivalLag)} {
  for (const std::string& c : channels) {
    histograms_.insert(fmt::format("{}.{}", kResponseTime, c));
  }
}

std::optional<std::string> MetricCatalog::check(std::string_view metric) const {
  if (metric == kErrorRate || metric == kEmitRate || is_counter(metric)) {
    return std::nullopt;
  }
  if (metric.ends_with(".rate") && is_counter(metric.substr(0, metric.size() - 5))) {
    return std::nullopt;
  }
  const auto [base, stat] = split_stat(metric);
  if (stat != nullptr && histograms_.count(base) != 0) {
    return std::nullopt;
  }
  std::string known;
  for (const std::string& h : histograms_) {
    known += fmt::format("{}{}.p95", known.empty() ? "" : ", ", h);
  }
  return fmt::format(
      "unknown metric \"{}\" (known: {} and .p50 .p75 .p90 .p99 .p999 .min .max .mean .median .count of each; "
      "{}, {}; the counters vusers.created|completed|failed|skipped, socketio.emit|ack|response, errors.<code>, "
      "each also as <counter>.rate)",
      metric, known, kErrorRate, kEmitRate);
}

bool MetricCatalog::is_time(std::string_view metric) const {
  const auto [base, stat] = split_stat(metric);
  return stat != nullptr && stat->quantile != -4 && histograms_.count(base) != 0;
}

std::optional<double> metric_value(const MetricSet& set, double duration_s, std::string_view metric) {
  if (metric == kErrorRate) {
    const auto created = set.counter(kVusersCreated);
    if (created == 0) {
      return std::nullopt;
    }
    return 100.0 * static_cast<double>(set.counter(kVusersFailed)) / static_cast<double>(created);
  }
  if (metric == kEmitRate) {
    return duration_s > 0 ? static_cast<double>(set.counter(kEmits)) / duration_s : 0.0;
  }
  if (is_counter(metric)) {
    return static_cast<double>(set.counter(metric));
  }
  if (metric.ends_with(".rate") && is_counter(metric.substr(0, metric.size() - 5))) {
    return duration_s > 0 ? static_cast<double>(set.counter(metric.substr(0, metric.size() - 5))) / duration_s : 0.0;
  }
  const auto [base, stat] = split_stat(metric);
  const Histogram* h = stat == nullptr ? nullptr : set.histogram(base);
  if (stat != nullptr && stat->quantile == -4) {
    return h == nullptr ? 0.0 : static_cast<double>(h->count());
  }
  if (h == nullptr || h->count() == 0) {
    return std::nullopt;
  }
  const auto ms = [](double us) { return us / 1000.0; };
  if (stat->quantile >= 0) {
    return ms(static_cast<double>(h->quantile(stat->quantile)));
  }
  if (stat->quantile == -1) {
    return ms(static_cast<double>(h->min()));
  }
  if (stat->quantile == -2) {
    return ms(static_cast<double>(h->max()));
  }
  return ms(h->mean());
}

}  // namespace phasekit::load
