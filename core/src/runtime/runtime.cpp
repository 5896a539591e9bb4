#include "phasekit/runtime/runtime.hpp"

#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <optional>
#include <thread>

#include <boost/program_options/options_description.hpp>

#include <iostream>

#include "phasekit/backend/docker_backend.hpp"
#include "phasekit/config/checks.hpp"
#include "phasekit/config/cli.hpp"
#include "phasekit/config/print.hpp"

extern char** environ;

namespace phasekit::runtime {
namespace {

using config::Key;

/// The user tools run as: nobody.
constexpr int kBackendUid = 65534;

resilience::BreakerOptions breaker_options(const config::Config& config) {
  resilience::BreakerOptions options;
  options.timeout_ms = config.integer(Key::circuit_breaker_timeout_ms);
  options.error_threshold_percentage =
      static_cast<double>(config.integer(Key::circuit_breaker_error_threshold_percentage));
  options.reset_timeout_ms = config.integer(Key::circuit_breaker_reset_timeout_ms);
  options.volume_threshold = static_cast<std::uint64_t>(config.integer(Key::circuit_breaker_volume_threshold));
  return options;
}

/// The docker driver for BACKEND=docker, once the Engine API answers and has DOCKER_IMAGE (images are
/// never pulled). Runs `ioc` briefly for that check; throws std::runtime_error saying what is wrong.
std::unique_ptr<plugin::BackendDriver> make_docker_driver(const config::Config& config,
                                                          const backend::ProcessOptions& process,
                                                          boost::asio::io_context& ioc, Logger& log) {
  backend::DockerOptions options;
  options.socket_path = backend::docker_socket_path(config.text(Key::docker_host));
  options.image = config.text(Key::docker_image);
  options.network = config.text(Key::docker_network);
  options.limits = process.limits;
  options.nano_cpus = config::nano_cpus(config.text(Key::backend_cpus));
  options.supervisor = process.supervisor;
  options.workspace_root = process.workspace_root;
  // Never root in a container: nobody when this process is root, else this process's own user (whom
  // the workspaces belong to).
  options.run_as_uid = ::geteuid() == 0 ? kBackendUid : static_cast<int>(::geteuid());
  options.run_as_gid = ::geteuid() == 0 ? kBackendUid : static_cast<int>(::getegid());
  options.api_timeout = std::chrono::seconds(10);
  auto driver = std::make_unique<backend::DockerDriver>(ioc.get_executor(), options, log);
  std::optional<std::string> problem;
  driver->call("GET", fmt::format("/v1.41/images/{}/json", options.image), "",
               [&](Status s, unsigned code, const std::string&) {
                 if (!s.ok()) {
                   problem = fmt::format("DOCKER_HOST={}: cannot reach the Docker Engine API: {}",
                                         config.text(Key::docker_host), s.message());
                 } else if (code == 404) {
                   problem = fmt::format("DOCKER_IMAGE={}: no such image on DOCKER_HOST={} (it is never pulled: "
                                         "build or load it first)",
                                         options.image, config.text(Key::docker_host));
                 } else if (code != 200) {
                   problem = fmt::format("DOCKER_IMAGE={}: the Engine API answered HTTP {}", options.image, code);
                 } else {
                   problem = "";
                 }
               });
  while (!problem && ioc.run_one() > 0) {
  }
  ioc.restart();
  if (!problem || !problem->empty()) {
    throw std::runtime_error(problem.value_or("the Docker Engine API check did not complete"));
  }
  return driver;
}

void log_limits(const backend::LimitsInForce& l, Logger& log) {
  log.info("backend.limits", {{"enforced_by", l.mechanism},
                              {"memory_bytes", l.memory_bytes},
                              {"memory_by", l.memory_by},
                              {"processes", l.processes},
                              {"processes_by", l.processes_by},
                              {"cpus", l.cpus},
                              {"cpu_by", l.cpu_by},
                              {"tmpfs_bytes", l.tmpfs_bytes},
                              {"file_bytes", l.file_bytes},
                              {"open_files", l.open_files},
                              {"workspace_bytes", l.workspace_bytes},
                              {"workspace_by", l.workspace_by}});
  if (!l.why_unbounded.empty()) {
    log.warn("backend.workspace_unbounded",
             {{"detail", "BACKEND_WORKSPACE_BYTES is not in force: a user may fill the workspace volume: " +
                             l.why_unbounded}});
  }
  if (!l.why_no_cgroups.empty()) {
    log.warn("backend.no_cgroups", {{"detail", "per-backend memory, process and CPU limits fall back to rlimits "
                                               "(processes: " + l.processes_by + "): " + l.why_no_cgroups}});
  }
}

}  // namespace

Runtime::Runtime(const config::Config& config, std::string_view component)
    : config_(config),
      logs_(STDOUT_FILENO, observe::parse_level(config.text(Key::log_level))),
      log_(logs_.logger(component)),
      threads_(config.integer(Key::io_threads) > 0 ? static_cast<unsigned>(config.integer(Key::io_threads))
                                                    : std::max(1u, std::thread::hardware_concurrency())),
      ioc_(static_cast<int>(threads_)),
      docker_(config.text(Key::backend) == "docker"),
      timers_(ioc_.get_executor()),
      breakers_(timers_, breaker_options(config)) {
  // Nothing a tool runs may read this process's memory or environment (AUTH_SECRET, REDIS_URL's
  // password) through /proc or ptrace, whatever user it runs as.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  process_.workspace_root = config.text(Key::workspace_root);
  process_.nice = static_cast<int>(config.integer(Key::backend_nice));
  process_.sandbox = config.text(Key::sandbox) == "none" ? backend::SandboxKind::none : backend::SandboxKind::namespaces;
  process_.limits.memory_bytes = static_cast<std::uint64_t>(config.integer(Key::backend_memory_bytes));
  process_.limits.cpus = static_cast<double>(config::nano_cpus(config.text(Key::backend_cpus))) / 1e9;
  process_.limits.processes = static_cast<std::uint64_t>(config.integer(Key::backend_processes));
  process_.limits.tmpfs_bytes = static_cast<std::uint64_t>(config.integer(Key::backend_tmpfs_bytes));
  process_.limits.file_bytes = static_cast<std::uint64_t>(config.integer(Key::backend_file_bytes));
  process_.limits.open_files = static_cast<std::uint64_t>(config.integer(Key::backend_open_files));
  process_.limits.workspace_bytes = static_cast<std::uint64_t>(config.integer(Key::backend_workspace_bytes));
  process_.limits.nice = process_.nice;
  if (::geteuid() == 0) {
    process_.run_as_uid = kBackendUid;  // backends never run as root
    process_.run_as_gid = kBackendUid;
  }
  Logger& breaker_log = logs_.logger("breaker");
  breakers_.set_listener([&breaker_log](const std::string& name, resilience::BreakerState to) {
    breaker_log.warn("breaker.state", {{"breaker", name}, {"state", resilience::state_name(to)}});
  });
}

Runtime::~Runtime() = default;

namespace {

/// What stops the process from running backends, carried out of load_plugins' decision: the log
/// line's name and why.
struct BackendsRefused {
  std::string msg;
  std::string error;
};

/// Descriptors a process needs beside its clients: redis connections, backends' pipes, logs.
constexpr std::uint64_t kOpenFilesReserve = 1024;

/// Every client connection is a descriptor, and the soft open-file limit a process starts with is
/// often 1,024 (systemd's default, most shells'), far below MAX_CONNECTIONS: it is raised to the hard
/// limit, as nginx's worker_rlimit_nofile and Go's runtime do. A hard limit too low for
/// MAX_CONNECTIONS and the reserve is said at start (docs/operations.md: open files and kernel
/// settings), instead of as accept errors under load. Backends set their own (BACKEND_OPEN_FILES).
void raise_open_files(Logger& log, std::uint64_t max_connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return;
  }
  const rlim_t was = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      limit.rlim_cur = was;
    }
  }
  const auto now = static_cast<std::uint64_t>(limit.rlim_cur);
  log.debug("process.open_files", {{"soft_was", static_cast<std::uint64_t>(was)}, {"limit", now}});
  if (now < max_connections + kOpenFilesReserve) {  // RLIM_INFINITY is the largest value: never short
    log.warn("process.open_files_short",
             {{"limit", now},
              {"max_connections", max_connections},
              {"detail", fmt::format("MAX_CONNECTIONS {} and {} descriptors for redis, backends and logs need an "
                                     "open-file limit of {}: past about {} clients they eat into that reserve, and at "
                                     "about {} accept fails (EMFILE) and new clients wait. Raise the hard limit "
                                     "(LimitNOFILE=, --ulimit nofile=) or lower MAX_CONNECTIONS",
                                     max_connections, kOpenFilesReserve, max_connections + kOpenFilesReserve,
                                     now > kOpenFilesReserve ? now - kOpenFilesReserve : 0, now)}});
  }
}

}  // namespace

int Runtime::start(Role role) {
  raise_open_files(log_, static_cast<std::uint64_t>(config_.integer(Key::max_connections)));
  // Plugins take their breakers from the same registry as the backends (HostServices::breaker, e.g.
  // "redis"), so all show up in /api/circuit-breakers. The driver comes once the queue has said
  // whether this process runs tools.
  host_ = std::make_unique<plugin_host::BasicHost>(logs_, metrics_, clock_, ioc_.get_executor(), nullptr, &breakers_);
  const auto decide = [this, role](const plugin_host::PluginSet& set) {
    const bool remote = set.queue->remote();
    if (role == Role::worker && !remote) {
      throw BackendsRefused{"worker.queue_not_remote",
                            fmt::format("queue={}: a worker takes jobs from a shared queue; set "
                                        "ENABLE_WORKER_MODE=true and REDIS_URL",
                                        config_.plugin("queue").name)};
    }
    if (role == Role::orchestrator && remote) {
      return false;  // workers run its jobs: no driver, and pools make nothing
    }
    make_backends();
    return true;
  };
  try {
    const plugin_host::Loader loader(plugin_host::Loader::search_path_from(config_.text(Key::plugin_path)));
    plugins_ = plugin_host::load_plugins(config_, *host_, loader, decide);
  } catch (const BackendsRefused& e) {
    log_.error(e.msg, {{"error", e.error}});
    return kExitUsage;
  } catch (const plugin_host::LoadError& e) {
    log_.error("plugin.load_failed", {{"error", e.what()}});
    return kExitPlugin;
  }
  return 0;
}

void Runtime::make_backends() {
  try {
    if (docker_) {
      process_.supervisor = backend::find_supervisor();
      driver_ = make_docker_driver(config_, process_, ioc_, logs_.logger("backend"));
      if (process_.limits.workspace_bytes > 0) {
        // The engine binds each workspace from its own mount namespace, which need not see ours.
        log_.warn("backend.workspace_unbounded",
                  {{"detail", "BACKEND_WORKSPACE_BYTES is not in force with BACKEND=docker: a user may fill the "
                              "workspace volume"}});
      }
    } else {
      // Below the isolation it is configured for, the process does not start (let alone become ready).
      process_.supervisor = backend::find_supervisor();
      backend::verify_sandbox(process_, logs_.logger("backend"));
      auto driver = std::make_unique<backend::ProcessDriver>(ioc_.get_executor(), process_, logs_.logger("backend"));
      log_limits(driver->limits(), logs_.logger("backend"));
      process_driver_ = driver.get();
      driver_ = std::move(driver);
    }
  } catch (const std::exception& e) {
    throw BackendsRefused{"backend.unavailable", e.what()};
  }
  // Every call to backends goes through the "backend" circuit breaker.
  guarded_ = std::make_unique<resilience::BreakerBackendDriver>(*driver_, breakers_.get("backend"));
  host_->set_backends(guarded_.get());
}

void Runtime::run() {
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads_; ++i) {
    pool.emplace_back([this] { run_handlers(); });
  }
  run_handlers();
  for (auto& t : pool) {
    t.join();
  }
}

/// Runs the event loop until it stops. Nothing is meant to throw out of a handler (errors are values);
/// should one do it anyway, Asio rethrows it here: it is logged and counted, and the loop goes on
/// serving everyone else instead of ending the process for one connection's sake.
void Runtime::run_handlers() {
  for (;;) {
    try {
      ioc_.run();
      return;
    } catch (const std::exception& e) {
      log_.error("handler.exception", {{"error", e.what()}});
    } catch (...) {
      log_.error("handler.exception", {{"error", "not a std::exception"}});
    }
    metrics_.counter("phasekit_handler_exceptions_total", "Exceptions that escaped an event handler (a bug).").inc();
  }
}

std::string Runtime::sandbox() const {
  if (!driver_) {
    return "none";
  }
  return docker_ ? "container" : std::string(backend::sandbox_name(process_.sandbox));
}

nlohmann::json Runtime::backend_limits() const {
  const backend::BackendLimits& l = process_.limits;
  if (!driver_) {
    return nlohmann::json::object();
  }
  if (docker_) {
    // The engine's cgroup enforces memory, processes and CPU; the supervisor the rlimits.
    return {{"enforcedBy", "docker"},
            {"memoryBytes", {{"max", l.memory_bytes}, {"by", l.memory_bytes > 0 ? "docker" : "none"}}},
            {"processes", {{"max", l.processes}, {"by", l.processes > 0 ? "docker" : "none"}}},
            {"cpus", {{"max", l.cpus}, {"by", l.cpus > 0 ? "docker" : "none"}}},
            {"tmpfsBytes", l.tmpfs_bytes},
            {"fileBytes", l.file_bytes},
            {"openFiles", l.open_files},
            {"workspaceBytes", {{"max", 0}, {"by", "none"}}},
            {"userNamespaces", false}};
  }
  const backend::LimitsInForce& f = process_driver_->limits();
  nlohmann::json out{{"enforcedBy", f.mechanism},
                     {"sandbox", backend::sandbox_name(process_.sandbox)},
                     {"memoryBytes", {{"max", f.memory_bytes}, {"by", f.memory_by}}},
                     {"processes", {{"max", f.processes}, {"by", f.processes_by}}},
                     {"cpus", {{"max", f.cpus}, {"by", f.cpu_by}}},
                     {"cpuWeight", f.cpu_weight},
                     {"tmpfsBytes", f.tmpfs_bytes},
                     {"fileBytes", f.file_bytes},
                     {"openFiles", f.open_files},
                     {"workspaceBytes", {{"max", f.workspace_bytes}, {"by", f.workspace_by}}},
                     {"userNamespaces", f.user_namespaces}};
  if (!f.why_no_cgroups.empty()) {
    out["noCgroups"] = f.why_no_cgroups;
  }
  return out;
}

std::string Runtime::plugin_list() const {
  std::string list;
  for (const auto& p : plugins_.loaded) {
    list += fmt::format("{}{}={}", list.empty() ? "" : ",", p.kind, p.name);
  }
  return list;
}

std::optional<config::Config> configure(int argc, char** argv, std::string_view program, std::string_view usage,
                                        int& exit_code) {
  namespace po = boost::program_options;
  po::options_description own("Options");
  own.add_options()("help,h", "show this help")("print-config", "print every effective setting and exit");
  exit_code = 0;
  try {
    const config::CommandLine cli = config::parse_command_line(argc, argv, own, environ);
    if (cli.extra.count("help") != 0) {
      std::cout << "Usage: " << program << " [options]\n\n" << usage << "\n\n" << own << '\n'
                << config::settings_options() << '\n';
      return std::nullopt;
    }
    if (!cli.positional.empty()) {
      throw config::ConfigError(fmt::format("unexpected argument \"{}\"", cli.positional.front()));
    }
    config::Config loaded = config::Config::load(cli.inputs);
    if (cli.extra.count("print-config") != 0) {
      std::cout << config::render_table(loaded);
      return std::nullopt;
    }
    return loaded;
  } catch (const config::ConfigError& e) {
    fmt::print(stderr, "{}: {}\n", program, e.what());
    exit_code = kExitUsage;
    return std::nullopt;
  }
}

void wait_then(boost::asio::io_context& ioc, std::function<bool()> pred, std::chrono::steady_clock::time_point until,
               std::function<void()> done) {
  if (pred() || std::chrono::steady_clock::now() >= until) {
    done();
    return;
  }
  auto timer = std::make_shared<boost::asio::steady_timer>(ioc, std::chrono::milliseconds(20));
  timer->async_wait([&ioc, timer, pred = std::move(pred), until, done = std::move(done)](auto) mutable {
    wait_then(ioc, std::move(pred), until, std::move(done));
  });
}

std::string instance_name() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) {
    host[0] = '\0';
  }
  return fmt::format("{}:{}", host.data(), ::getpid());
}

}  // namespace phasekit::runtime
