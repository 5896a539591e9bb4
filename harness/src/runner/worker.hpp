#pragma once
// The state of one run inside the runner: a Worker per thread (its io_context, its users, its share
// of the metrics) and the RunState all workers share.
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <unordered_set>
#include <vector>

#include "driver/driver.hpp"
#include "metrics.hpp"
#include "runner/run.hpp"
#include "scenario.hpp"
#include "schedule.hpp"

namespace phasekit::load {

inline std::uint64_t micros(SteadyClock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us < 0 ? 0 : static_cast<std::uint64_t>(us);
}

/// One thread, its io_context, its users and its share of the metrics.
class Worker final : public MetricSink {
 public:
  void add(std::string_view counter, std::uint64_t by = 1) override {
    const std::lock_guard lock(mutex_);
    metrics_.add(counter, by);
  }
  void record(std::string_view histogram, std::uint64_t us) override {
    const std::lock_guard lock(mutex_);
    metrics_.record(histogram, us);
  }
  /// Keeps the first detail of each error code: the report's meta.errorDetails, why users failed.
  void note_error(std::string_view code, const std::string& detail) {
    const std::lock_guard lock(mutex_);
    if (!detail.empty() && error_details_.size() < 64) {
      error_details_.try_emplace(std::string(code), detail);
    }
  }
  std::map<std::string, std::string, std::less<>> error_details() {
    const std::lock_guard lock(mutex_);
    return error_details_;
  }
  MetricSet take() {
    MetricSet out;
    const std::lock_guard lock(mutex_);
    std::swap(out, metrics_);
    return out;
  }

  std::mt19937_64 rng;
  std::atomic<std::int64_t> active{0};
  std::atomic<bool> scheduled_all{false};
  std::unordered_set<Connection*> live;  // the running users' connections; touched on ioc's thread only

 private:
  std::mutex mutex_;
  MetricSet metrics_;
  std::map<std::string, std::string, std::less<>> error_details_;

 public:
  // Last, so it is destroyed first: coroutine frames still inside it (users that never ended) are
  // destroyed while everything they touch on the way out still exists.
  boost::asio::io_context ioc{1};
};

/// What all workers share for one run.
struct RunState {
  RunState(const Scenario& sc, const RunOptions& o, Driver& d)
      : scenario(sc), options(o), driver(d), schedule(sc.phases), phase_active(sc.phases.size()) {}

  const Scenario& scenario;
  const RunOptions& options;
  Driver& driver;
  Schedule schedule;
  TimePoint start;
  std::vector<std::atomic<std::int64_t>> phase_active;
  std::atomic<std::int64_t> users{0};
  std::atomic<std::int64_t> peak_users{0};
  std::atomic<std::uint64_t> next_vu{0};
  std::atomic<std::uint64_t> log_lines{0};
  std::atomic<bool> stop_arrivals{false};
  std::vector<double> flow_weights;  // cumulative
  // What every user reads and none writes, set before the first arrival: $env values, loadAll
  // payloads, the before flow's variables. A user's own variables hide these.
  Vars shared;
};

}  // namespace phasekit::load
