#include "runner/run.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <random>
#include <thread>
#include <utility>

#include "runner/arrivals.hpp"
#include "runner/virtual_user.hpp"
#include "runner/worker.hpp"

namespace phasekit::load {
namespace {

namespace asio = boost::asio;
using nlohmann::json;

/// How the run's connections reach the server: the scenario's target and transports, the command
/// line's network options.
ClientOptions client_options(const Scenario& scenario, const RunOptions& options) {
  ClientOptions c;
  c.target = scenario.target;
  c.path = scenario.socket.path;
  c.polling = scenario.socket.polling;
  c.websocket = scenario.socket.websocket;
  c.connect_timeout_s = options.connect_timeout_s;
  c.request_timeout_s = scenario.timeout_s;
  c.source_addresses = options.source_addresses;
  c.auto_source_addresses = options.auto_source_addresses;
  c.allow_remote = options.allow_remote;
  c.ca_file = options.ca_file.empty() ? scenario.tls.ca_file : options.ca_file;
  c.insecure = options.insecure || (options.ca_file.empty() && scenario.tls.insecure);  // --ca verifies
  c.cookies = options.cookies;
  return c;
}

/// Runs a before or after flow as one user on a worker of its own (its metrics are not the run's), on
/// this thread, until it ends or its deadline: the connect timeout, the flow's bound and 5 s.
HookResult run_hook(RunState& run, const Flow& flow, std::uint64_t seed) {
  Worker w;
  w.rng.seed(seed);
  HookResult result;
  const TimePoint now = SteadyClock::now();
  const TimePoint deadline = now + seconds(run.options.connect_timeout_s + run.scenario.flow_bound_s(flow) + 5);
  asio::co_spawn(w.ioc, VirtualUser::run_hook(std::make_shared<VirtualUser>(w, run, 0, now), &flow, &result),
                 asio::detached);
  const auto interrupted = [&] { return run.options.interrupted != nullptr && *run.options.interrupted >= 2; };
  while (!result.done && !w.ioc.stopped() && SteadyClock::now() < deadline && !interrupted()) {
    w.ioc.run_for(std::chrono::milliseconds(50));
  }
  if (!result.done) {
    const std::vector<Connection*> live(w.live.begin(), w.live.end());
    for (Connection* c : live) {
      c->abort(interrupted() ? "interrupted" : fmt::format("the {} flow ran past its deadline", flow.name));
    }
    w.ioc.restart();
    const TimePoint give_up = SteadyClock::now() + std::chrono::seconds(10);
    while (!result.done && !w.ioc.stopped() && SteadyClock::now() < give_up) {
      w.ioc.run_for(std::chrono::milliseconds(50));
    }
    if (!result.done) {
      result.outcome = ConnError{ConnErrc::aborted, fmt::format("the {} flow did not end", flow.name)};
    }
  }
  return result;
}

/// A hook that failed, as a check of the report (the run fails with it).
CheckResult hook_failed(std::string_view hook, const Outcome& o) {
  CheckResult c;
  c.threshold.metric = fmt::format("hooks.{}.failed", hook);
  c.threshold.op = Op::eq;
  c.threshold.value = 0;
  c.threshold.text = fmt::format("{} flow: errors.{} {:.80}", hook, o.code(), o.detail());
  c.actual = 1;
  c.ok = false;
  return c;
}

// How often the figures so far go to RunOptions::live: what a scrape sees is at most this old.
constexpr auto kLiveEvery = std::chrono::seconds(1);

std::string iso_now() {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())));
}

}  // namespace

Report run_scenario(const Scenario& scenario, const RunOptions& options, const DriverFactory& make_driver,
                    const ProgressFn& progress) {
  const std::vector<Phase>& phases = scenario.phases;
  // Before the run state and the workers, so that it outlives every connection it made.
  const DriverPtr driver = make_driver(client_options(scenario, options));
  RunState run(scenario, options, *driver);
  double cumulative = 0;
  for (const Flow& f : scenario.flows) {
    cumulative += f.weight;
    run.flow_weights.push_back(cumulative);
  }
  for (const Payload& p : scenario.payloads) {
    if (!p.name.empty()) {
      run.shared[p.name] = p.all;
    }
  }
  for (const auto& [name, value] : scenario.environment) {
    run.shared[name] = value;
  }

  const unsigned threads = options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<Worker>> workers;
  std::random_device entropy;
  const std::uint64_t seed = options.seed != 0 ? options.seed : (std::uint64_t{entropy()} << 32) ^ entropy();
  for (unsigned i = 0; i < threads; ++i) {
    workers.push_back(std::make_unique<Worker>());
    workers.back()->rng.seed(seed + i);
  }

  const double last_arrival_s = run.schedule.total() == 0 ? 0 : run.schedule.at(run.schedule.total() - 1).at_s;
  double end_of_arrivals = std::max(last_arrival_s, options.repeat_until_s);
  if (options.max_duration_s > 0) {
    end_of_arrivals = std::min(end_of_arrivals, options.max_duration_s);
  }
  // The phases' length when arrivals end sooner (a last phase of pauses, or one that starts nobody).
  double expected_s = end_of_arrivals;
  if (options.max_duration_s <= 0) {
    expected_s = std::max(expected_s, scenario.duration_s());
  }
  const double interval_s = options.progress_s > 0 ? options.progress_s : auto_interval_s(expected_s);

  Report report;
  report.meta = {{"scenario", scenario.file},
                 {"target", scenario.target.url()},
                 {"startedAt", iso_now()},
                 {"generator", "phasekit-load"},
                 {"threads", threads},
                 {"intervalSeconds", interval_s},
                 {"transports", scenario.socket.polling ? (scenario.socket.websocket ? "polling+websocket" : "polling")
                                                        : "websocket"},
                 {"phases", json::array()}};
  for (std::size_t i = 0; i < phases.size(); ++i) {
    report.meta["phases"].push_back({{"name", phases[i].name},
                                     {"start", run.schedule.phase_start(i)},
                                     {"duration", phases[i].duration_s}});
  }

  if (scenario.before) {
    const TimePoint started = SteadyClock::now();
    HookResult before = run_hook(run, *scenario.before, seed ^ 0x6265666f7265ULL);
    report.meta["before"] = {{"ok", before.outcome.ok()},
                             {"seconds", std::chrono::duration<double>(SteadyClock::now() - started).count()}};
    if (!before.outcome.ok()) {
      // As Artillery: no load without what the before flow was to set up.
      report.meta["before"]["error"] = fmt::format("{}: {}", before.outcome.code(), before.outcome.detail());
      report.checks.push_back(hook_failed("before", before.outcome));
      return report;
    }
    for (auto& [name, value] : before.vars) {
      run.shared.emplace(name, std::move(value));  // a loadAll payload of the same name stays: Artillery's order
    }
  }

  run.start = SteadyClock::now() + std::chrono::milliseconds(20);
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i) {
    Worker* w = workers[i].get();
    asio::co_spawn(w->ioc, arrivals(w, &run, i, threads), asio::detached);
    pool.emplace_back([w] {
      auto guard = asio::make_work_guard(w->ioc);
      w->ioc.run();
    });
  }

  const double drain_s = options.drain_s >= 0 ? options.drain_s
                                               : options.connect_timeout_s + scenario.flow_bound_s() + 5;
  report.meta["drainSeconds"] = drain_s;
  // Brought forward by a first signal (see RunOptions::interrupted).
  TimePoint drain_deadline = run.start + seconds(end_of_arrivals + drain_s);
  const auto interval = seconds(interval_s);
  TimePoint next_tick = run.start + interval;
  TimePoint last_tick = run.start;
  TimePoint next_live = run.start + kLiveEvery;
  MetricSet pending;  // taken from the workers since the last interval ended
  if (options.live != nullptr) {
    options.live->begin_run();
  }
  bool aborted = false;
  bool stopping = false;  // a first signal came
  const auto end_arrivals = [&] {
    run.stop_arrivals = true;
    for (const auto& w : workers) {
      Worker* wp = w.get();
      asio::post(wp->ioc, [wp] { wp->scheduled_all = true; });
    }
  };
  TimePoint abort_started = TimePoint::max() - std::chrono::hours(1);
  const auto all_done = [&] {
    for (const auto& w : workers) {
      if (!w->scheduled_all || w->active.load() != 0) {
        return false;
      }
    }
    return true;
  };
  // Each worker's share is swapped out under its own lock (a swap of two maps), so neither an
  // interval nor a live sample holds a worker up for longer than that.
  const auto take_from_workers = [&] {
    for (const auto& w : workers) {
      pending.merge(w->take());
    }
  };
  const auto active_users = [&] { return static_cast<std::uint64_t>(std::max<std::int64_t>(0, run.users.load())); };
  const auto phase_name = [&](double at_s) {
    const std::size_t phase = run.schedule.phase_at(std::max(0.0, at_s - 1e-6));
    return phase < phases.size() ? (phases[phase].name.empty() ? fmt::format("phase {}", phase + 1) : phases[phase].name)
                                 : std::string();
  };
  const auto take_interval = [&](TimePoint now) {
    Interval i;
    i.start_s = std::chrono::duration<double>(last_tick - run.start).count();
    i.end_s = std::chrono::duration<double>(now - run.start).count();
    take_from_workers();
    i.metrics = std::exchange(pending, MetricSet());
    i.users_active = active_users();
    i.phase = phase_name(i.end_s);
    last_tick = now;
    return i;
  };
  const auto publish_live = [&](TimePoint now) {
    const double elapsed = std::chrono::duration<double>(now - run.start).count();
    options.live->publish(report.total, pending, active_users(), elapsed, phase_name(elapsed));
    next_live = now + kLiveEvery;
  };
  while (true) {
    const bool done = all_done();
    const TimePoint now = SteadyClock::now();
    if (now >= next_tick || done) {
      Interval i = take_interval(now);
      if (i.end_s - i.start_s > 1e-3 || !i.metrics.empty()) {
        if (progress) {
          progress(i, i.end_s - i.start_s);
        }
        report.total.merge(i.metrics);
        report.intervals.push_back(std::move(i));
      }
      next_tick += interval;
      if (options.live != nullptr) {
        publish_live(now);
      }
    } else if (options.live != nullptr && now >= next_live) {
      take_from_workers();
      publish_live(now);
    }
    if (done) {
      break;
    }
    const int signals = options.interrupted != nullptr ? *options.interrupted : 0;
    if (signals == 1 && !stopping) {
      // The first signal: no arrival, no next flow; users end the one they are in, as if the
      // arrivals had ended now.
      stopping = true;
      end_arrivals();
      drain_deadline = std::min(drain_deadline, now + seconds(drain_s));
      if (!options.quiet) {
        std::cerr << fmt::format("phasekit-load: stopping: running users end their flow within {:.0f} s (again to "
                                 "stop at once)\n",
                                 drain_s);
      }
    }
    if (!aborted && (now >= drain_deadline || signals >= 2)) {
      aborted = true;
      abort_started = now;
      end_arrivals();
      for (const auto& w : workers) {
        Worker* wp = w.get();
        asio::post(wp->ioc, [wp] {
          const std::vector<Connection*> live(wp->live.begin(), wp->live.end());
          for (Connection* c : live) {
            c->abort("still running when the drain period ended");
          }
        });
      }
    }
    if (aborted && now >= std::max(drain_deadline, abort_started) + std::chrono::seconds(10)) {
      break;  // users that do not end even when their sockets close: give up on them
    }
    std::this_thread::sleep_until(std::min(next_tick, now + std::chrono::milliseconds(20)));
  }
  for (const auto& w : workers) {
    w->ioc.stop();
  }
  for (std::thread& t : pool) {
    t.join();
  }
  json details = json::object();
  for (const auto& w : workers) {
    for (const auto& [code, detail] : w->error_details()) {
      if (!details.contains(code)) {
        details[code] = detail;
      }
    }
  }
  if (!details.empty()) {
    report.meta["errorDetails"] = std::move(details);  // the first of each code, for a person
  }
  // What users that were given up on measured after the last interval (or a live sample took).
  if (Interval last = take_interval(SteadyClock::now()); !last.metrics.empty()) {
    if (progress) {
      progress(last, last.end_s - last.start_s);
    }
    report.total.merge(last.metrics);
    report.intervals.push_back(std::move(last));
  }
  report.duration_s = std::chrono::duration<double>(SteadyClock::now() - run.start).count();
  report.peak_users = static_cast<std::uint64_t>(run.peak_users.load());
  report.checks = evaluate(scenario.thresholds, report.total, report.duration_s);
  if (scenario.after && !(options.interrupted != nullptr && *options.interrupted >= 2)) {
    const TimePoint started = SteadyClock::now();
    const HookResult after = run_hook(run, *scenario.after, seed ^ 0x6166746572ULL);
    report.meta["after"] = {{"ok", after.outcome.ok()},
                            {"seconds", std::chrono::duration<double>(SteadyClock::now() - started).count()}};
    if (!after.outcome.ok()) {
      report.meta["after"]["error"] = fmt::format("{}: {}", after.outcome.code(), after.outcome.detail());
      report.checks.push_back(hook_failed("after", after.outcome));
    }
  }
  if (options.live != nullptr) {
    options.live->end_run(report.total);
  }
  return report;
}

}  // namespace phasekit::load
