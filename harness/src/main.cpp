// phasekit-load: replays Socket.IO scenarios (Artillery's format) against any Socket.IO v4 server,
// reports latency from intended start times, and checks capacity targets for CI.
#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "capacity/capacity.hpp"
#include "client/socketio_driver.hpp"
#include "exporter/metrics_server.hpp"
#include "live_metrics.hpp"
#include "report.hpp"
#include "runner/run.hpp"
#include "scenario.hpp"
#include "schedule.hpp"

namespace po = boost::program_options;
namespace load = phasekit::load;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;  // a threshold, an SLO or a comparison failed; or the harness dropped arrivals
constexpr int kExitUsage = 2;   // bad command line, scenario or report

constexpr const char* kUsage = R"(Usage: phasekit-load <command> [options]

Commands:
  run SCENARIO         run a scenario (Artillery YAML, or the same as JSON) and check its thresholds
  validate SCENARIO…   check scenarios without sending anything; print what each would do
  capacity SCENARIO    raise the number of concurrent users step by step; report the most that meet --slo
  report REPORT.json   write a self-contained HTML page of a report or capacity result (-o FILE.html)
  merge A.json B.json… combine reports of load generators that ran at the same time (-o FILE.json)
  compare BASE.json CURRENT.json
                       fail when CURRENT is worse than BASE by more than --max-regression

Exit codes: 0 pass, 1 a threshold, SLO or comparison failed (or arrivals were dropped),
2 bad command line, scenario or report. `phasekit-load <command> --help` for its options.
)";

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

po::variables_map parse(const std::vector<std::string>& args, const po::options_description& options,
                        const po::positional_options_description& positional) {
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
  po::notify(vm);
  return vm;
}

/// What only `run` takes: users that repeat their flow, and the event log.
po::options_description user_options(load::RunOptions& o, std::string& event_log) {
  po::options_description d("Users");
  d.add_options()
      ("repeat-until", po::value(&o.repeat_until_s)->default_value(0.0),
       "each user repeats its flow until this many seconds into the run (0: runs it once)")
      ("keep-going", po::bool_switch(&o.keep_going),
       "a user whose flow fails counts the error and runs its next flow on the same connection (needs "
       "--repeat-until) instead of leaving")
      ("event-log", po::value(&event_log),
       "write every packet each user sends and receives to FILE, one JSON line each");
  return d;
}

po::options_description run_options(load::RunOptions& o, std::string& target, std::string& sources) {
  po::options_description d("Run options");
  d.add_options()
      ("target,t", po::value(&target), "override config.target (http://host:port[/namespace])")
      ("threads", po::value(&o.threads)->default_value(0), "load threads (0: one per core)")
      ("progress", po::value(&o.progress_s)->default_value(0, "auto"),
       "seconds between progress lines and report intervals (auto: at least 60 per run, never under 1 s)")
      ("late-ms", po::value(&o.late_ms)->default_value(100.0), "a user starting this much after its intended time counts as late")
      ("max-duration", po::value(&o.max_duration_s)->default_value(0.0), "stop arrivals after this many seconds (0: the phases decide)")
      ("drain", po::value(&o.drain_s)->default_value(-1.0, "auto"),
       "seconds users may run on after the last arrival before they are stopped (auto: the longest a flow can take)")
      ("connect-timeout", po::value(&o.connect_timeout_s)->default_value(10.0), "seconds to connect and join the namespace")
      ("source-addresses", po::value(&sources)->default_value("auto"),
       "local addresses to spread connections over: auto (127.0.0.1-8 for loopback targets), none, or a comma list")
      ("allow-remote", po::bool_switch(&o.allow_remote), "allow a target that is not a loopback address")
      ("ca", po::value(&o.ca_file),
       "PEM file of the CA certificates a TLS target's certificate must chain to (default: the system's; "
       "instead of config.tls.ca)")
      ("insecure", po::bool_switch(&o.insecure), "do not verify a TLS target's certificate (as config.tls.insecure)")
      ("no-cookies", po::bool_switch()->notifier([&o](bool off) { o.cookies = !off; }),
       "users keep no cookies (to see what a balancer does without its sticky cookie)")
      ("seed", po::value(&o.seed)->default_value(0), "random seed (0: random)")
      ("quiet,q", po::bool_switch(&o.quiet), "no progress lines");
  return d;
}

std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    out.emplace_back(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return out;
}

void apply_sources(load::RunOptions& o, const std::string& sources) {
  if (sources == "auto") {
    return;
  }
  o.auto_source_addresses = false;
  if (sources == "none") {
    return;
  }
  o.source_addresses = split_commas(sources);
}

void check_run_options(const load::RunOptions& o) {
  if (o.progress_s != 0 && !(o.progress_s >= 0.1 && o.progress_s <= 3600)) {
    throw UsageError(fmt::format("--progress {}: expected 0.1..3600 seconds", o.progress_s));
  }
  if (!(o.drain_s >= -1 && o.drain_s <= 86400) || !(o.max_duration_s >= 0) || !(o.connect_timeout_s > 0) ||
      !(o.late_ms >= 0)) {
    throw UsageError("--drain, --max-duration, --connect-timeout and --late-ms take non-negative seconds");
  }
  if (!o.ca_file.empty() && o.insecure) {
    throw UsageError("--ca and --insecure: one verifies the certificate against FILE, the other not at all; choose one");
  }
  if (!o.ca_file.empty() && !std::ifstream(o.ca_file)) {
    throw UsageError(fmt::format("--ca {}: cannot read the file", o.ca_file));
  }
  if (!(o.repeat_until_s >= 0 && o.repeat_until_s <= 86400)) {
    throw UsageError(fmt::format("--repeat-until {}: expected 0..86400 seconds", o.repeat_until_s));
  }
  if (o.keep_going && o.repeat_until_s <= 0) {
    throw UsageError("--keep-going: a user goes on to its next flow, so it needs --repeat-until");
  }
  if (o.threads > 256) {
    throw UsageError(fmt::format("--threads {}: at most 256", o.threads));
  }
}

// What -o asks for: each kind at most once.
struct Outputs {
  std::string json;   // the JSON report (run) or result (capacity)
  std::string html;   // the same as a page
  std::string jsonl;  // a line per interval, as the run goes
};

// -o FILE and -o KIND=FILE (k6's --out json=FILE); `-o KIND FILE` is joined into KIND=FILE before
// parsing. Without a kind, the extension decides: .html/.htm, .jsonl/.ndjson, anything else JSON.
constexpr std::string_view kOutputKinds[] = {"json", "html", "jsonl"};

std::vector<std::string> join_output_kinds(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const bool output = args[i] == "-o" || args[i] == "--output";
    const bool kind = i + 2 < args.size() &&
                      std::find(std::begin(kOutputKinds), std::end(kOutputKinds), args[i + 1]) != std::end(kOutputKinds);
    if (output && kind) {
      out.push_back(args[i]);
      out.push_back(args[i + 1] + "=" + args[i + 2]);
      i += 2;
      continue;
    }
    out.push_back(args[i]);
  }
  return out;
}

Outputs parse_outputs(const std::vector<std::string>& values) {
  Outputs o;
  for (const std::string& value : values) {
    std::string kind;
    std::string file = value;
    if (const auto eq = value.find('='); eq != std::string::npos &&
        std::find(std::begin(kOutputKinds), std::end(kOutputKinds), value.substr(0, eq)) != std::end(kOutputKinds)) {
      kind = value.substr(0, eq);
      file = value.substr(eq + 1);
    } else {
      const std::string ext = std::filesystem::path(value).extension().string();
      kind = ext == ".html" || ext == ".htm" ? "html" : ext == ".jsonl" || ext == ".ndjson" ? "jsonl" : "json";
    }
    if (file.empty()) {
      throw UsageError(fmt::format("-o {}: which file?", value));
    }
    std::string& slot = kind == "html" ? o.html : kind == "jsonl" ? o.jsonl : o.json;
    if (!slot.empty()) {
      throw UsageError(fmt::format("-o {}: a {} output is already {}", value, kind, slot));
    }
    slot = file;
  }
  return o;
}

struct MetricsArgs {
  unsigned port = 0;
  std::string address = "127.0.0.1";
  bool enabled = false;  // --metrics-port was given
};

po::options_description output_options(std::vector<std::string>& outputs, MetricsArgs& metrics, const char* json_what) {
  po::options_description d("Output options");
  d.add_options()
      ("output,o", po::value(&outputs)->composing(),
       fmt::format("[KIND=]FILE, repeatable: KIND json ({}), html (the same as a page), jsonl (a JSON line per "
                   "interval, flushed as it ends); without KIND the extension decides (.html, .jsonl, else json)",
                   json_what).c_str())
      ("metrics-port", po::value(&metrics.port)->value_name("PORT"),
       "serve the run's counters and histograms at http://ADDRESS:PORT/metrics (Prometheus text) while it runs "
       "(0: a free port, printed on stderr)")
      ("metrics-address", po::value(&metrics.address)->default_value("127.0.0.1"), "the address --metrics-port listens on");
  return d;
}

/// The --metrics-port listener and what it serves, for as long as the command runs.
struct LiveExport {
  std::unique_ptr<load::LiveMetrics> live;
  std::unique_ptr<load::MetricsServer> server;
};

LiveExport start_metrics(const MetricsArgs& m, const load::Scenario& scenario) {
  LiveExport e;
  if (!m.enabled) {
    return e;
  }
  if (m.port > 65535) {
    throw UsageError(fmt::format("--metrics-port {}: expected 0..65535", m.port));
  }
  e.live = std::make_unique<load::LiveMetrics>(load::ExpositionInfo{scenario.file, scenario.target.url()});
  load::LiveMetrics* live = e.live.get();
  e.server = std::make_unique<load::MetricsServer>(m.address, static_cast<std::uint16_t>(m.port),
                                                   [live] { return live->render(); });
  const bool v6 = m.address.find(':') != std::string::npos;
  std::cerr << fmt::format("phasekit-load: metrics at http://{}{}{}:{}/metrics\n", v6 ? "[" : "", m.address,
                           v6 ? "]" : "", e.server->port());
  return e;
}

void write_text(const std::string& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) {
    throw std::runtime_error(fmt::format("{}: cannot write", file));
  }
}

load::Scenario load_with_target(const std::string& file, const std::string& target) {
  return load::load_scenario(file, target);
}

volatile sig_atomic_t g_interrupted = 0;  // counted up by SIGINT/SIGTERM (RunOptions::interrupted)

int command_run(const std::vector<std::string>& args) {
  load::RunOptions o;
  std::string target;
  std::string sources;
  std::string scenario_file;
  std::vector<std::string> output_values;
  MetricsArgs metrics;
  std::string event_log_file;
  po::options_description d = run_options(o, target, sources);
  d.add(user_options(o, event_log_file));
  d.add(output_options(output_values, metrics, "the report"));
  d.add_options()("scenario", po::value(&scenario_file), "scenario file")("help,h", "this help");
  po::positional_options_description p;
  p.add("scenario", 1);
  const auto vm = parse(join_output_kinds(args), d, p);
  metrics.enabled = vm.count("metrics-port") != 0;
  if (vm.count("help") != 0) {
    std::cout << "Usage: phasekit-load run SCENARIO [options]\n\n" << d << '\n';
    return kExitOk;
  }
  if (scenario_file.empty()) {
    throw UsageError("run: which scenario? (phasekit-load run SCENARIO)");
  }
  apply_sources(o, sources);
  check_run_options(o);
  const Outputs out = parse_outputs(output_values);
  o.interrupted = &g_interrupted;
  const load::Scenario scenario = load_with_target(scenario_file, target);
  std::unique_ptr<load::EventLog> event_log;
  if (!event_log_file.empty()) {
    event_log = std::make_unique<load::EventLog>(event_log_file);
    o.event_log = event_log.get();
  }
  const load::Schedule schedule(scenario.phases);
  if (!o.quiet) {
    std::cerr << fmt::format("phasekit-load: {} → {}: {} arrivals over {:.0f} s, {} threshold(s)\n", scenario_file,
                             scenario.target.url(), schedule.total(), scenario.duration_s(), scenario.thresholds.size());
  }
  std::optional<load::IntervalLog> interval_log;
  if (!out.jsonl.empty()) {
    interval_log.emplace(out.jsonl);
  }
  const LiveExport live = start_metrics(metrics, scenario);
  o.live = live.live.get();
  const load::Report report =
      load::run_scenario(scenario, o, load::make_socketio_driver, [&](const load::Interval& i, double seconds) {
        if (interval_log) {
          interval_log->write(i);
        }
        if (!o.quiet) {
          std::cerr << load::render_progress(i, seconds) << '\n';
        }
      });
  if (!out.json.empty()) {
    report.save(out.json);
  }
  if (!out.html.empty()) {
    write_text(out.html, load::render_html(report));
  }
  std::cout << load::render_summary(report);
  const auto dropped = report.total.counter(load::kArrivalsDropped);
  if (dropped > 0) {
    std::cout << fmt::format("FAIL the harness dropped {} arrivals (open-file limit): the load was lower than asked\n",
                             dropped);
  }
  return load::all_ok(report.checks) && dropped == 0 ? kExitOk : kExitFailed;
}

int command_validate(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  std::string target;
  po::options_description d("Validate options");
  d.add_options()("scenario", po::value(&files)->composing(), "scenario files")(
      "target,t", po::value(&target), "override config.target")("help,h", "this help");
  po::positional_options_description p;
  p.add("scenario", -1);
  const auto vm = parse(args, d, p);
  if (vm.count("help") != 0 || files.empty()) {
    std::cout << "Usage: phasekit-load validate SCENARIO…\n\n" << d << '\n';
    return files.empty() && vm.count("help") == 0 ? kExitUsage : kExitOk;
  }
  for (const std::string& file : files) {
    const load::Scenario s = load_with_target(file, target);
    const load::Schedule schedule(s.phases);
    std::size_t steps = 0;
    for (const load::Flow& f : s.flows) {
      steps += f.steps.size();
    }
    std::cout << fmt::format("{}: ok: target {}, {} phase(s), {} arrivals over {:.0f} s, {} flow(s) with {} step(s), "
                             "{} threshold(s), transports {}\n",
                             file, s.target.url(), s.phases.size(), schedule.total(), s.duration_s(), s.flows.size(),
                             steps, s.thresholds.size(),
                             s.socket.polling ? (s.socket.websocket ? "polling+websocket" : "polling") : "websocket");
  }
  return kExitOk;
}

int command_capacity(const std::vector<std::string>& args) {
  load::RunOptions o;
  std::string target;
  std::string sources;
  std::string scenario_file;
  std::string slo;
  std::vector<std::string> output_values;
  MetricsArgs metrics;
  std::string out_dir;
  std::string users_list;
  std::string targets_file;
  int phase = 0;
  std::uint64_t target_users = 0;
  std::uint64_t start = 50;
  std::uint64_t step = 50;
  std::uint64_t max = 20000;
  double ramp = 10;
  double hold = 20;
  po::options_description d = run_options(o, target, sources);
  d.add_options()
      ("scenario", po::value(&scenario_file), "scenario file (its flow is what each user repeats)")
      ("slo", po::value(&slo), "what a step must meet, e.g. 'p95<200ms,errors<1%' (or from --targets)")
      ("targets", po::value(&targets_file), "a targets file (scenarios/targets.json): the SLO and user target of --phase")
      ("phase", po::value(&phase)->default_value(0), "which phase of --targets to check (1, 2 or 3)")
      ("users", po::value(&users_list), "the user counts of the steps, e.g. 100,200,400 (instead of --start/--step/--max)")
      ("start", po::value(&start)->default_value(50), "users in the first step")
      ("step", po::value(&step)->default_value(50), "users added each step")
      ("max", po::value(&max)->default_value(20000), "most users to try")
      ("ramp", po::value(&ramp)->default_value(10.0), "seconds over which a step's users arrive")
      ("hold", po::value(&hold)->default_value(20.0), "seconds every user keeps repeating its flow after the ramp")
      ("out-dir", po::value(&out_dir), "write each step's JSON report here (step-<users>.json)")
      ("help,h", "this help");
  d.add(output_options(output_values, metrics, "the capacity result"));
  po::positional_options_description p;
  p.add("scenario", 1);
  const auto vm = parse(join_output_kinds(args), d, p);
  metrics.enabled = vm.count("metrics-port") != 0;
  if (vm.count("help") != 0) {
    std::cout << "Usage: phasekit-load capacity SCENARIO --slo 'p95<200ms,errors<1%' [options]\n\n" << d << '\n';
    return kExitOk;
  }
  if (!targets_file.empty()) {
    const load::CapacityTarget t = load::read_capacity_target(targets_file, phase);
    if (slo.empty()) {
      slo = t.slo;
    }
    target_users = t.users;
  }
  if (scenario_file.empty() || slo.empty()) {
    throw UsageError("capacity: needs a scenario and --slo (e.g. --slo 'p95<200ms,errors<1%') or --targets with --phase");
  }
  apply_sources(o, sources);
  check_run_options(o);
  const Outputs out = parse_outputs(output_values);
  if (!(ramp >= 0.1 && hold >= 0.1) || start == 0 || step == 0 || max < start) {
    throw UsageError("capacity: --ramp and --hold take at least 0.1 s; --start and --step at least 1; --max >= --start");
  }
  const load::Scenario scenario = load_with_target(scenario_file, target);
  load::CapacityOptions c;
  c.slo = slo;
  c.thresholds = load::parse_slo(slo, scenario.catalog());
  c.ramp_s = ramp;
  c.hold_s = hold;
  c.out_dir = out_dir;
  c.target_users = target_users;
  c.phase = target_users > 0 ? phase : 0;
  if (!users_list.empty()) {
    for (const std::string& item : split_commas(users_list)) {
      std::uint64_t n = 0;
      try {
        std::size_t used = 0;
        n = std::stoull(item, &used);
        if (used != item.size() || n == 0) {
          throw std::invalid_argument(item);
        }
      } catch (const std::exception&) {
        throw UsageError(fmt::format("--users: \"{}\" is not a positive whole number", item));
      }
      c.steps.push_back(n);
    }
  } else {
    for (std::uint64_t n = start; n <= max; n += step) {
      c.steps.push_back(n);
    }
  }
  if (!out_dir.empty()) {
    std::filesystem::create_directories(out_dir);
  }
  o.interrupted = &g_interrupted;
  std::optional<load::IntervalLog> interval_log;
  if (!out.jsonl.empty()) {
    interval_log.emplace(out.jsonl);
  }
  const LiveExport live = start_metrics(metrics, scenario);
  o.live = live.live.get();
  std::uint64_t step_users = 0;
  load::CapacityHooks hooks;
  hooks.step_started = [&](std::uint64_t users) {
    step_users = users;
    if (!o.quiet) {
      std::cerr << fmt::format("capacity: step {} users ({} s ramp, {} s hold)\n", users, ramp, hold);
    }
  };
  hooks.progress = [&](const load::Interval& i, double seconds) {
    if (interval_log) {
      interval_log->write(i, step_users);
    }
    if (!o.quiet) {
      std::cerr << load::render_progress(i, seconds) << '\n';
    }
  };
  hooks.step_done = [](const load::CapacityStep& s) { std::cout << load::render_capacity_step(s); };
  const load::CapacityResult result = load::run_capacity(scenario, c, o, load::make_socketio_driver, hooks);
  std::cout << fmt::format("capacity: {} users meet {}\n", result.max_users, slo);
  if (target_users > 0) {
    std::cout << fmt::format("phase {} target: {} users: {}\n", phase, target_users,
                             result.target_met() ? "met" : "NOT met");
  }
  if (!out.json.empty()) {
    write_text(out.json, result.to_json().dump(2) + '\n');
  }
  if (!out.html.empty()) {
    write_text(out.html, load::render_capacity_html(result));
  }
  if (target_users > 0 && !result.target_met()) {
    return kExitFailed;
  }
  return result.max_users > 0 ? kExitOk : kExitFailed;
}

int command_report(const std::vector<std::string>& args) {
  std::string in;
  std::string out;
  po::options_description d("Report options");
  d.add_options()("report", po::value(&in), "JSON report")("output,o", po::value(&out), "HTML file to write")(
      "help,h", "this help");
  po::positional_options_description p;
  p.add("report", 1);
  const auto vm = parse(args, d, p);
  if (vm.count("help") != 0) {
    std::cout << "Usage: phasekit-load report REPORT.json -o REPORT.html  (a run, merge or capacity result)\n\n" << d
              << '\n';
    return kExitOk;
  }
  if (in.empty() || out.empty()) {
    throw UsageError("report: needs a JSON report (of run, merge or capacity) and -o FILE.html");
  }
  std::ifstream file(in, std::ios::binary);
  if (!file) {
    throw UsageError(fmt::format("{}: cannot open", in));
  }
  const nlohmann::json doc = nlohmann::json::parse(file, nullptr, false);
  if (doc.is_object() && doc.value("schema", std::string()) == load::kCapacitySchema) {
    load::CapacityResult result;
    try {
      result = load::CapacityResult::from_json(doc);
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("{}: {}", in, e.what()));
    }
    write_text(out, load::render_capacity_html(result));
  } else {
    write_text(out, load::render_html(load::Report::load(in)));
  }
  std::cout << fmt::format("wrote {}\n", out);
  return kExitOk;
}

int command_merge(const std::vector<std::string>& args) {
  std::vector<std::string> inputs;
  std::string out;
  po::options_description d("Merge options");
  d.add_options()("reports", po::value(&inputs)->composing(), "JSON reports")("output,o", po::value(&out),
                                                                                 "merged JSON report to write")(
      "help,h", "this help");
  po::positional_options_description p;
  p.add("reports", -1);
  const auto vm = parse(args, d, p);
  if (vm.count("help") != 0) {
    std::cout << "Usage: phasekit-load merge A.json B.json… -o MERGED.json\n\n" << d << '\n';
    return kExitOk;
  }
  if (inputs.empty() || out.empty()) {
    throw UsageError("merge: needs reports and -o FILE.json");
  }
  std::vector<load::Report> reports;
  for (const std::string& f : inputs) {
    reports.push_back(load::Report::load(f));
  }
  const load::Report merged = load::merge_reports(reports);
  merged.save(out);
  std::cout << load::render_summary(merged);
  return kExitOk;
}

double parse_fraction(const std::string& text, const char* option) {
  std::string t = text;
  bool percent = false;
  if (!t.empty() && t.back() == '%') {
    t.pop_back();
    percent = true;
  }
  try {
    std::size_t used = 0;
    const double v = std::stod(t, &used);
    if (used != t.size() || !std::isfinite(v) || v < 0) {
      throw std::invalid_argument(t);
    }
    return percent || v > 1 ? v / 100.0 : v;
  } catch (const std::exception&) {
    throw UsageError(fmt::format("{} \"{}\": expected a percentage such as 10% (or a fraction such as 0.1)", option, text));
  }
}

int command_compare(const std::vector<std::string>& args) {
  std::vector<std::string> inputs;
  std::string regression = "10%";
  std::string metrics;
  load::CompareOptions o;
  po::options_description d("Compare options");
  d.add_options()
      ("reports", po::value(&inputs)->composing(), "BASELINE.json CURRENT.json")
      ("max-regression", po::value(&regression)->default_value("10%"), "latency may rise, throughput fall, by this much")
      ("min-delta-ms", po::value(&o.min_delta_ms)->default_value(1.0), "latency changes below this never fail")
      ("max-error-increase", po::value(&o.max_error_increase)->default_value(0.5), "percentage points error_rate may rise")
      ("metrics", po::value(&metrics), "comma list of metrics to compare (default: response p50/p95/p99, connect p95, error_rate, emit rate)")
      ("help,h", "this help");
  po::positional_options_description p;
  p.add("reports", -1);
  const auto vm = parse(args, d, p);
  if (vm.count("help") != 0) {
    std::cout << "Usage: phasekit-load compare BASELINE.json CURRENT.json [--max-regression 10%]\n\n" << d << '\n';
    return kExitOk;
  }
  if (inputs.size() != 2) {
    throw UsageError("compare: needs exactly two reports, BASELINE.json CURRENT.json");
  }
  o.max_regression = parse_fraction(regression, "--max-regression");
  const load::MetricCatalog catalog;
  for (std::string& m : split_commas(metrics)) {
    if (auto why = catalog.check(m)) {
      throw UsageError("--metrics: " + *why);
    }
    o.metrics.push_back(std::move(m));
  }
  const auto rows = load::compare_reports(load::Report::load(inputs[0]), load::Report::load(inputs[1]), o);
  std::cout << load::render_compare(rows, o);
  for (const auto& r : rows) {
    if (r.regressed) {
      return kExitFailed;
    }
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, [](int) { g_interrupted = g_interrupted + 1; });
  std::signal(SIGTERM, [](int) { g_interrupted = g_interrupted + 1; });
  const std::vector<std::string> all(argv + 1, argv + argc);
  if (all.empty() || all[0] == "--help" || all[0] == "-h" || all[0] == "help") {
    std::cout << kUsage;
    return all.empty() ? kExitUsage : kExitOk;
  }
  const std::string command = all[0];
  const std::vector<std::string> args(all.begin() + 1, all.end());
  try {
    static const std::pair<std::string_view, int (*)(const std::vector<std::string>&)> kCommands[] = {
        {"run", command_run},       {"validate", command_validate}, {"capacity", command_capacity},
        {"report", command_report}, {"merge", command_merge},       {"compare", command_compare}};
    for (const auto& [name, fn] : kCommands) {
      if (command == name) {
        return fn(args);
      }
    }
    std::cerr << fmt::format("phasekit-load: unknown command \"{}\"\n\n{}", command, kUsage);
    return kExitUsage;
  } catch (const load::ScenarioError& e) {
    std::cerr << "phasekit-load: " << e.what() << '\n';
  } catch (const po::error& e) {
    std::cerr << fmt::format("phasekit-load {}: {}\n", command, e.what());
  } catch (const std::exception& e) {
    std::cerr << "phasekit-load: " << e.what() << '\n';
  }
  return kExitUsage;
}
