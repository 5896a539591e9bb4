// phasekit: the operations command. `phasekit config` prints the effective configuration,
// `phasekit plugins` what the plugin path holds and why any file cannot load, `phasekit history` the
// audit log of the configured store.
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/value_semantic.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "phasekit/config/cli.hpp"
#include "phasekit/config/print.hpp"
#include "phasekit/history/audit_listing.hpp"
#include "phasekit/plugin/abi.h"
#include "phasekit/plugin_host/loader.hpp"
#include "phasekit/simulate/simulate.hpp"

extern char** environ;

namespace po = boost::program_options;
namespace cfg = phasekit::config;
namespace host = phasekit::plugin_host;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;  // bad configuration or command line
constexpr int kExitPlugin = 3;  // a plugin cannot load

constexpr const char* kUsage =
    "Usage: phasekit <command> [options]\n"
    "\n"
    "Commands:\n"
    "  config     every effective setting with its origin (flag, env, file, phase preset, default);\n"
    "             --json for JSON, --markdown for docs/configuration.md\n"
    "  plugins    the plugins on the plugin path: file, kind, name, ABI version, and why any cannot load\n"
    "             (exit 3 when one cannot)\n"
    "  history    the audit log of the configured store (STORE_PLUGIN, STORE_PATH, REDIS_URL …): who ran\n"
    "             what, when, with what result, oldest first; --user U --session S --since T --until T\n"
    "             (T: 2026-12-07, 2026-12-07T06:00:00Z, ms since the epoch, or ago: 90s 15m 2h 7d),\n"
    "             --limit N, --json for one JSON object per line\n"
    "  version    version, plugin ABI version and build signature\n"
    "  simulate breaker FILE     replay call outcomes through a circuit breaker in virtual time\n"
    "  simulate autoscaler FILE  replay metrics through the autoscaler=hpa plugin in virtual time\n"
    "                            (AUTOSCALER_BEHAVIOR, if set, is the spec's behavior)\n"
    "             (one JSON line per step; docs/operations.md)\n"
    "\n"
    "Exit codes: 0 ok, 1 the store cannot be read, 2 bad configuration or command line, 3 a plugin cannot\n"
    "load.\n";

int print_plugins(const cfg::Config& config) {
  const host::Loader loader(host::Loader::search_path_from(config.text(cfg::Key::plugin_path)));
  std::string folders;
  for (const std::string& dir : loader.search_path()) {
    folders += folders.empty() ? dir : ":" + dir;
  }
  fmt::print("plugin path: {}\nhost ABI version {}, build signature {}\n\n", folders, PHK_ABI_VERSION,
             host::host_build_signature());
  const auto reports = loader.probe_all();
  std::size_t width = 4;
  for (const auto& r : reports) {
    width = std::max(width, r.path.size());
  }
  fmt::print("{:<{}}  {:<11}  {:<10}  {:>3}  {:<8}  {}\n", "file", width, "kind", "name", "abi", "version", "status");
  bool all_ok = true;
  for (const auto& r : reports) {
    all_ok = all_ok && r.error.empty();
    fmt::print("{:<{}}  {:<11}  {:<10}  {:>3}  {:<8}  {}\n", r.path, width, r.kind.empty() ? "-" : r.kind,
               r.name.empty() ? "-" : r.name, r.abi_version ? std::to_string(*r.abi_version) : "-",
               r.version.empty() ? "-" : r.version, !r.error.empty()     ? "error: " + r.error
               : !r.warning.empty() ? "warning: " + r.warning
                                    : "ok: " + r.summary);
  }
  return all_ok ? kExitOk : kExitPlugin;
}

int history(const cfg::CommandLine& cli) {
  namespace h = phasekit::history;
  h::Listing listing;
  listing.json = cli.extra.count("json") != 0;
  listing.query.limit = 1000;
  const auto text = [&](const char* name) {
    return cli.extra.count(name) != 0 ? cli.extra[name].as<std::string>() : std::string();
  };
  listing.query.user_id = text("user");
  listing.query.session_id = text("session");
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  for (const auto& [name, out] : {std::pair{"since", &listing.query.since_unix_ms},
                                  std::pair{"until", &listing.query.until_unix_ms}}) {
    if (cli.extra.count(name) != 0) {
      std::string error;
      if (!h::parse_time(cli.extra[name].as<std::string>(), now, *out, error)) {
        throw cfg::ConfigError(fmt::format("--{}: {}", name, error));
      }
    }
  }
  if (cli.extra.count("limit") != 0) {
    const auto most = cli.extra["limit"].as<long long>();
    if (most < 1) {
      throw cfg::ConfigError("--limit: expected a count of records of 1 or more");
    }
    listing.most = static_cast<std::size_t>(most);
  }
  const cfg::Config config = cfg::Config::load(cli.inputs);
  try {
    return h::print_history(config, listing, std::cout, std::cerr);
  } catch (const host::LoadError& e) {
    fmt::print(stderr, "phasekit: {}\n", e.what());
    return kExitPlugin;
  }
}

int simulate(const cfg::CommandLine& cli) {
  const std::vector<std::string>& args = cli.positional;
  if (args.size() != 3 || (args[1] != "breaker" && args[1] != "autoscaler")) {
    throw cfg::ConfigError("usage: phasekit simulate breaker|autoscaler FILE");
  }
  try {
    const nlohmann::json scenario = phasekit::simulate::read_document(args[2]);
    if (args[1] == "breaker") {
      phasekit::simulate::run_breaker(scenario, std::cout);
    } else {
      const cfg::Config config = cfg::Config::load(cli.inputs);
      const cfg::Value& behavior = config.value(cfg::Key::autoscaler_behavior);
      phasekit::simulate::run_autoscaler(
          scenario,
          {config.text(cfg::Key::plugin_path), behavior.text,
           behavior.source.empty() ? std::string(cfg::origin_name(behavior.origin)) : behavior.source},
          std::cout);
    }
  } catch (const phasekit::simulate::SimulateError& e) {
    throw cfg::ConfigError(fmt::format("{}: {}", args[2], e.what()));
  } catch (const host::LoadError& e) {
    fmt::print(stderr, "phasekit: {}\n", e.what());
    return kExitPlugin;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description own("Options");
  own.add_options()("help,h", "show this help")("print-config", "same as `phasekit config`")(
      "json", "config: print JSON; history: one JSON object per line")("markdown", "config: print docs/configuration.md")(
      "user", po::value<std::string>(), "history: only this user's calls")(
      "session", po::value<std::string>(), "history: only this session's calls")(
      "since", po::value<std::string>(), "history: calls that finished at or after this time")(
      "until", po::value<std::string>(), "history: calls that finished before this time")(
      "limit", po::value<long long>(), "history: print at most this many records");
  try {
    const cfg::CommandLine cli = cfg::parse_command_line(argc, argv, own, environ);
    if (cli.extra.count("help") != 0) {
      std::cout << kUsage << '\n' << own << '\n' << cfg::settings_options() << '\n';
      return kExitOk;
    }
    std::string command = cli.positional.empty() ? "" : cli.positional.front();
    if (cli.extra.count("print-config") != 0) {
      command = "config";
    }
    if (command == "simulate") {
      return simulate(cli);
    }
    if (command == "history") {
      if (cli.positional.size() > 1) {
        throw cfg::ConfigError(fmt::format("unexpected argument \"{}\"", cli.positional[1]));
      }
      return history(cli);
    }
    if (cli.positional.size() > 1) {
      throw cfg::ConfigError(fmt::format("unexpected argument \"{}\"", cli.positional[1]));
    }
    if (command == "config" && cli.extra.count("markdown") != 0) {
      std::cout << cfg::render_markdown();  // the table itself: no environment needed
      return kExitOk;
    }
    if (command == "version") {
      fmt::print("phasekit {}\nplugin ABI version {}\nbuild signature {}\n", PHASEKIT_VERSION, PHK_ABI_VERSION,
                 host::host_build_signature());
      return kExitOk;
    }
    const cfg::Config config = cfg::Config::load(cli.inputs);
    if (command == "config") {
      std::cout << (cli.extra.count("json") != 0 ? cfg::render_json(config) : cfg::render_table(config));
      return kExitOk;
    }
    if (command == "plugins") {
      return print_plugins(config);
    }
    if (command.empty()) {
      std::cerr << kUsage;
      return kExitUsage;
    }
    throw cfg::ConfigError(fmt::format("unknown command \"{}\" (expected config, history, plugins, simulate or version)", command));
  } catch (const cfg::ConfigError& e) {
    fmt::print(stderr, "phasekit: {}\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "phasekit: {}\n", e.what());
    return 1;
  }
}
