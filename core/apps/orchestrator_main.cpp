// phasekit-orchestrator: configuration → plugins → the Socket.IO server, until SIGTERM drains it.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/program_options/options_description.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <optional>
#include <thread>

#include "app/tool_service.hpp"
#include "autoscale/autoscale_loop.hpp"
#include "backend/docker_backend.hpp"
#include "backend/process_backend.hpp"
#include "config/checks.hpp"
#include "config/cli.hpp"
#include "config/print.hpp"
#include "net/server.hpp"
#include "observe/json_logger.hpp"
#include "observe/metrics_registry.hpp"
#include "plugin_host/host_services.hpp"
#include "plugin_host/plugin_set.hpp"
#include "resilience/asio_timers.hpp"
#include "resilience/breaker_backend_driver.hpp"
#include "resilience/breaker_registry.hpp"

extern char** environ;

namespace po = boost::program_options;
namespace cfg = phasekit::config;
using phasekit::config::Key;

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitPlugin = 3;

/// Waits (polling every 20 ms) until pred() or the deadline, then calls done.
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

/// The docker driver for BACKEND=docker, once the Engine API answers and has DOCKER_IMAGE (images are
/// never pulled). Runs `ioc` briefly for that check; throws std::runtime_error saying what is wrong.
std::unique_ptr<phasekit::plugin::BackendDriver> make_docker_driver(const cfg::Config& config,
                                                                    const phasekit::backend::ProcessOptions& process,
                                                                    boost::asio::io_context& ioc, phasekit::Logger& log) {
  phasekit::backend::DockerOptions options;
  options.socket_path = phasekit::backend::docker_socket_path(config.text(Key::docker_host));
  options.image = config.text(Key::docker_image);
  options.network = config.text(Key::docker_network);
  options.memory_bytes = config.integer(Key::docker_memory_bytes);
  options.nano_cpus = cfg::nano_cpus(config.text(Key::docker_cpus));
  options.workspace_root = process.workspace_root;
  options.run_as_uid = process.run_as_uid;
  options.run_as_gid = process.run_as_gid;
  options.api_timeout = std::chrono::seconds(10);
  auto driver = std::make_unique<phasekit::backend::DockerDriver>(ioc.get_executor(), options, log);
  std::optional<std::string> problem;
  driver->call("GET", fmt::format("/v1.41/images/{}/json", options.image), "",
               [&](phasekit::Status s, unsigned code, const std::string&) {
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

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  po::options_description own("Options");
  own.add_options()("help,h", "show this help")("print-config", "print every effective setting and exit");
  cfg::CommandLine cli;
  std::optional<cfg::Config> loaded;
  try {
    cli = cfg::parse_command_line(argc, argv, own, environ);
    if (cli.extra.count("help") != 0) {
      std::cout << "Usage: phasekit-orchestrator [options]\n\nThe Socket.IO tool-execution server.\n\n"
                << own << '\n'
                << cfg::settings_options() << '\n';
      return 0;
    }
    if (!cli.positional.empty()) {
      throw cfg::ConfigError(fmt::format("unexpected argument \"{}\"", cli.positional.front()));
    }
    loaded = cfg::Config::load(cli.inputs);
  } catch (const cfg::ConfigError& e) {
    fmt::print(stderr, "phasekit-orchestrator: {}\n", e.what());
    return kExitUsage;
  }
  const cfg::Config& config = *loaded;
  if (cli.extra.count("print-config") != 0) {
    std::cout << cfg::render_table(config);
    return 0;
  }

  phasekit::observe::LogSink logs(STDOUT_FILENO, phasekit::observe::parse_level(config.text(Key::log_level)));
  phasekit::Logger& log = logs.logger("orchestrator");
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  boost::asio::io_context ioc(static_cast<int>(threads));

  const bool docker = config.text(Key::backend) == "docker";
  phasekit::backend::ProcessOptions process;
  process.workspace_root = config.text(Key::workspace_root);
  if (::geteuid() == 0) {
    process.run_as_uid = 65534;  // backends never run as root
    process.run_as_gid = 65534;
  }
  std::unique_ptr<phasekit::plugin::BackendDriver> driver;
  try {
    if (docker) {
      driver = make_docker_driver(config, process, ioc, logs.logger("backend"));
    } else {
      process.sandbox = phasekit::backend::detect_sandbox(config.text(Key::sandbox), logs.logger("backend"));
      driver = std::make_unique<phasekit::backend::ProcessDriver>(ioc.get_executor(), process, logs.logger("backend"));
    }
  } catch (const std::exception& e) {
    log.error("backend.unavailable", {{"error", e.what()}});
    return kExitUsage;
  }

  // Every call to backends goes through the "backend" circuit breaker; redis and docker clients take
  // theirs from the same registry (breakers.get("redis")), so all show up in /api/circuit-breakers.
  phasekit::resilience::AsioTimers timers(ioc.get_executor());
  phasekit::resilience::BreakerOptions breaker_options;
  breaker_options.timeout_ms = config.integer(Key::circuit_breaker_timeout_ms);
  breaker_options.error_threshold_percentage =
      static_cast<double>(config.integer(Key::circuit_breaker_error_threshold_percentage));
  breaker_options.reset_timeout_ms = config.integer(Key::circuit_breaker_reset_timeout_ms);
  breaker_options.volume_threshold = static_cast<std::uint64_t>(config.integer(Key::circuit_breaker_volume_threshold));
  phasekit::resilience::BreakerRegistry breakers(timers, breaker_options);
  phasekit::Logger& breaker_log = logs.logger("breaker");
  breakers.set_listener([&breaker_log](const std::string& name, phasekit::resilience::BreakerState to) {
    breaker_log.warn("breaker.state", {{"breaker", name}, {"state", phasekit::resilience::state_name(to)}});
  });
  phasekit::resilience::BreakerBackendDriver guarded_driver(*driver, breakers.get("backend"));

  phasekit::observe::MetricsRegistry metrics;
  phasekit::plugin_host::SystemClock clock;
  phasekit::plugin_host::BasicHost host(logs, metrics, clock, ioc.get_executor(), &guarded_driver);
  phasekit::plugin_host::PluginSet plugins;
  try {
    const phasekit::plugin_host::Loader loader(
        phasekit::plugin_host::Loader::search_path_from(config.text(Key::plugin_path)));
    plugins = phasekit::plugin_host::load_plugins(config, host, loader);
  } catch (const phasekit::plugin_host::LoadError& e) {
    log.error("plugin.load_failed", {{"error", e.what()}});
    return kExitPlugin;
  }

  phasekit::app::ServiceSettings settings;
  settings.max_requests_per_user = static_cast<std::uint32_t>(config.integer(Key::max_requests_per_user));
  settings.job_timeout = std::chrono::milliseconds(config.integer(Key::job_timeout_ms));
  settings.max_output_bytes = static_cast<std::size_t>(config.integer(Key::max_output_bytes));
  settings.stream_threshold_bytes = static_cast<std::size_t>(config.integer(Key::stream_output_threshold_bytes));
  settings.session_grace = std::chrono::milliseconds(config.integer(Key::session_grace_ms));
  settings.concurrency = static_cast<unsigned>(config.integer(Key::worker_concurrency));
  settings.auth_required = config.text(Key::auth_mode) == "token";
  settings.auth_secret = config.text(Key::auth_secret);
  settings.backend_uid = process.run_as_uid;
  settings.backend_gid = process.run_as_gid;
  auto service = std::make_shared<phasekit::app::ToolService>(settings, plugins, host);
  service->start();

  phasekit::net::ServerSettings server_settings;
  server_settings.bind_address = config.text(Key::bind_address);
  server_settings.port = static_cast<std::uint16_t>(config.integer(Key::port));
  server_settings.max_payload_bytes = static_cast<std::size_t>(config.integer(Key::max_payload_bytes));
  server_settings.ping_interval = std::chrono::milliseconds(config.integer(Key::ping_interval_ms));
  server_settings.ping_timeout = std::chrono::milliseconds(config.integer(Key::ping_timeout_ms));
  phasekit::net::Server server(ioc, server_settings, service, metrics, *plugins.pool, logs.logger("server"));
  server.add_json_route("/api/circuit-breakers", [&breakers] { return breakers.to_json(); });
  server.on_scrape([&breakers, &metrics] { breakers.export_metrics(metrics); });

  // ENABLE_AUTOSCALER: the recommendation is in /metrics and in autoscale->desired().
  std::optional<phasekit::autoscale::AutoscaleLoop> autoscale;
  if (config.plugin("autoscaler").name != "none") {
    autoscale.emplace(
        *plugins.autoscaler, timers, metrics,
        [&service, &plugins] {
          return phasekit::autoscale::Observation{static_cast<std::int64_t>(service->session_count()),
                                                  static_cast<std::int64_t>(service->jobs_in_flight()),
                                                  static_cast<std::int64_t>(plugins.pool->stats().total)};
        },
        std::chrono::milliseconds(config.integer(Key::autoscaler_interval_ms)),
        static_cast<std::int32_t>(config.integer(Key::autoscaler_min_replicas)));
    phasekit::Logger& autoscale_log = logs.logger("autoscaler");
    autoscale->on_change([&autoscale_log](const phasekit::plugin::ScaleDecision& d) {
      autoscale_log.info("autoscaler.recommendation", {{"desired_replicas", d.desired_replicas},
                                                       {"metric_replicas", d.metric_replicas},
                                                       {"limited_by", d.limited_by},
                                                       {"reason", d.reason}});
    });
    autoscale->start();
  }

  try {
    server.start();
  } catch (const std::exception& e) {
    log.error("server.listen_failed", {{"address", server_settings.bind_address},
                                       {"port", static_cast<unsigned>(server_settings.port)},
                                       {"error", e.what()}});
    return 1;
  }
  server.set_ready(true);
  std::string plugin_list;
  for (const auto& p : plugins.loaded) {
    plugin_list += fmt::format("{}{}={}", plugin_list.empty() ? "" : ",", p.kind, p.name);
  }
  log.info("server.listening", {{"address", server_settings.bind_address},
                                {"port", static_cast<unsigned>(server.port())},
                                {"phase", config.phase()},
                                {"plugins", plugin_list},
                                {"backend", driver->name()},
                                {"sandbox", docker ? "container" : phasekit::backend::sandbox_name(process.sandbox)},
                                {"threads", threads}});

  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  const auto grace = std::chrono::milliseconds(config.integer(Key::shutdown_grace_ms));
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) {
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    log.info("shutdown.begin", {{"signal", signo}, {"sessions", service->session_count()},
                                {"jobs_unfinished", service->jobs_unfinished()}});
    server.begin_drain();
    if (autoscale) {
      autoscale->stop();
    }
    service->begin_drain();
    wait_then(ioc, [&] { return service->jobs_unfinished() == 0; }, started + grace, [&, started] {
      const auto unfinished = service->jobs_unfinished();
      server.close_clients("server shutting down", std::chrono::milliseconds(2000), [&, unfinished, started] {
        service->shutdown([&, unfinished, started] {
          log.info("shutdown.done", {{"jobs_unfinished", unfinished},
                                     {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - started)
                                                .count()}});
          ioc.stop();
        });
      });
    });
    // A second signal, or the grace period plus a margin, ends it regardless.
    signals.async_wait([&](const boost::system::error_code& e2, int) {
      if (!e2) {
        ioc.stop();
      }
    });
  });

  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) {
    pool.emplace_back([&ioc] { ioc.run(); });
  }
  ioc.run();
  for (auto& t : pool) {
    t.join();
  }
  return 0;
}
