#include "runtime/runtime.hpp"

#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <optional>
#include <thread>

#include <boost/program_options/options_description.hpp>

#include <iostream>

#include "backend/docker_backend.hpp"
#include "config/checks.hpp"
#include "config/cli.hpp"
#include "config/print.hpp"

extern char** environ;

namespace phasekit::runtime {
namespace {

using config::Key;

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
  options.memory_bytes = config.integer(Key::docker_memory_bytes);
  options.nano_cpus = config::nano_cpus(config.text(Key::docker_cpus));
  options.workspace_root = process.workspace_root;
  options.run_as_uid = process.run_as_uid;
  options.run_as_gid = process.run_as_gid;
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

}  // namespace

Runtime::Runtime(const config::Config& config, std::string_view component)
    : config_(config),
      logs_(STDOUT_FILENO, observe::parse_level(config.text(Key::log_level))),
      log_(logs_.logger(component)),
      threads_(std::max(1u, std::thread::hardware_concurrency())),
      ioc_(static_cast<int>(threads_)),
      docker_(config.text(Key::backend) == "docker"),
      timers_(ioc_.get_executor()),
      breakers_(timers_, breaker_options(config)) {
  process_.workspace_root = config.text(Key::workspace_root);
  process_.nice = static_cast<int>(config.integer(Key::backend_nice));
  if (::geteuid() == 0) {
    process_.run_as_uid = 65534;  // backends never run as root
    process_.run_as_gid = 65534;
  }
  Logger& breaker_log = logs_.logger("breaker");
  breakers_.set_listener([&breaker_log](const std::string& name, resilience::BreakerState to) {
    breaker_log.warn("breaker.state", {{"breaker", name}, {"state", resilience::state_name(to)}});
  });
}

Runtime::~Runtime() = default;

int Runtime::start(bool with_backends) {
  try {
    if (!with_backends) {
      // No driver: pools make nothing ("this process runs no backends").
    } else if (docker_) {
      driver_ = make_docker_driver(config_, process_, ioc_, logs_.logger("backend"));
    } else {
      process_.sandbox = backend::detect_sandbox(config_.text(Key::sandbox), logs_.logger("backend"));
      driver_ = std::make_unique<backend::ProcessDriver>(ioc_.get_executor(), process_, logs_.logger("backend"));
    }
  } catch (const std::exception& e) {
    log_.error("backend.unavailable", {{"error", e.what()}});
    return kExitUsage;
  }
  // Every call to backends goes through the "backend" circuit breaker; plugins take theirs from the
  // same registry through HostServices::breaker ("redis"), so all show up in /api/circuit-breakers.
  if (driver_) {
    guarded_ = std::make_unique<resilience::BreakerBackendDriver>(*driver_, breakers_.get("backend"));
  }
  host_ = std::make_unique<plugin_host::BasicHost>(logs_, metrics_, clock_, ioc_.get_executor(), guarded_.get(),
                                                   &breakers_);
  try {
    const plugin_host::Loader loader(plugin_host::Loader::search_path_from(config_.text(Key::plugin_path)));
    plugins_ = plugin_host::load_plugins(config_, *host_, loader, with_backends);
  } catch (const plugin_host::LoadError& e) {
    log_.error("plugin.load_failed", {{"error", e.what()}});
    return kExitPlugin;
  }
  return 0;
}

void Runtime::run() {
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads_; ++i) {
    pool.emplace_back([this] { ioc_.run(); });
  }
  ioc_.run();
  for (auto& t : pool) {
    t.join();
  }
}

std::string Runtime::sandbox() const {
  if (!driver_) {
    return "none";
  }
  return docker_ ? "container" : std::string(backend::sandbox_name(process_.sandbox));
}

std::string Runtime::plugin_list() const {
  std::string list;
  for (const auto& p : plugins_.loaded) {
    list += fmt::format("{}{}={}", list.empty() ? "" : ",", p.kind, p.name);
  }
  return list;
}

std::optional<config::Config> configure(int argc, char** argv, std::string_view program, std::string_view usage,
                                        int& exit_code, const std::function<void(const config::Config&)>& check) {
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
    if (check) {
      check(loaded);
    }
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
