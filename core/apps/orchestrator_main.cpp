// phasekit-orchestrator: configuration → plugins → the Socket.IO server, until SIGTERM drains it.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <iostream>
#include <optional>
#include <thread>

#include "phasekit/app/tool_service.hpp"
#include "phasekit/autoscale/autoscale_loop.hpp"
#include "phasekit/autoscale/sizers.hpp"
#include "phasekit/config/config.hpp"
#include "phasekit/net/server.hpp"
#include "phasekit/runtime/runtime.hpp"
#include "phasekit/runtime/server_setup.hpp"

namespace cfg = phasekit::config;
using phasekit::config::Key;

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  int exit_code = 0;
  const auto loaded =
      phasekit::runtime::configure(argc, argv, "phasekit-orchestrator", "The Socket.IO tool-execution server.", exit_code);
  if (!loaded) {
    return exit_code;
  }
  const cfg::Config& config = *loaded;

  phasekit::runtime::Runtime rt(config, "orchestrator");
  // With a remote queue (ENABLE_WORKER_MODE) the workers run every tool call: this process keeps no
  // backends.
  if (const int code = rt.start(phasekit::runtime::Runtime::Role::orchestrator); code != 0) {
    return code;
  }
  const bool run_jobs = rt.runs_backends();
  phasekit::Logger& log = rt.log();
  auto& ioc = rt.ioc();
  auto& plugins = rt.plugins();
  auto& metrics = rt.metrics();
  const auto& process = rt.process();

  phasekit::app::ServiceSettings settings;
  settings.max_requests_per_user = static_cast<std::uint32_t>(config.integer(Key::max_requests_per_user));
  settings.max_sessions_per_user = static_cast<std::uint32_t>(config.integer(Key::max_sessions_per_user));
  settings.max_backends_per_user = static_cast<std::uint32_t>(config.integer(Key::max_backends_per_user));
  settings.history_page_bytes = static_cast<std::size_t>(config.integer(Key::history_page_bytes));
  settings.job_timeout = std::chrono::milliseconds(config.integer(Key::job_timeout_ms));
  settings.max_output_bytes = static_cast<std::size_t>(config.integer(Key::max_output_bytes));
  settings.stream_threshold_bytes = static_cast<std::size_t>(config.integer(Key::stream_output_threshold_bytes));
  settings.session_grace = std::chrono::milliseconds(config.integer(Key::session_grace_ms));
  settings.concurrency = static_cast<unsigned>(config.integer(Key::worker_concurrency));
  settings.auth_required = config.text(Key::auth_mode) == "token";
  settings.auth.secret = config.text(Key::auth_secret);
  settings.auth.issuer = config.text(Key::auth_issuer);
  settings.auth.audience = config.text(Key::auth_audience);
  settings.auth.max_lifetime = std::chrono::seconds(config.integer(Key::auth_max_token_lifetime_s));
  settings.auth.leeway = std::chrono::seconds(config.integer(Key::auth_clock_leeway_s));
  settings.backend_uid = process.run_as_uid;
  settings.backend_gid = process.run_as_gid;
  settings.run_jobs = run_jobs;
  settings.persist_sessions = plugins.store->shared();
  settings.workspace_root = process.workspace_root;
  settings.instance_id = phasekit::runtime::instance_name();
  auto service = std::make_shared<phasekit::app::ToolService>(settings, plugins, rt.host());
  service->start();

  const std::unique_ptr<phasekit::net::Server> listeners = phasekit::runtime::make_server(rt, service);
  phasekit::net::Server& server = *listeners;

  // ENABLE_AUTOSCALER: the recommendation is in /metrics and sizes the warm pool
  // (phasekit/autoscale/sizers.hpp).
  std::optional<phasekit::autoscale::PoolSizer> pool_sizer;
  std::optional<phasekit::autoscale::AutoscaleLoop> autoscale;
  if (config.plugin("autoscaler").name != "none") {
    autoscale.emplace(
        *plugins.autoscaler, rt.timers(), metrics,
        [&service, &plugins] {
          return phasekit::autoscale::Observation{static_cast<std::int64_t>(service->session_count()),
                                                  static_cast<std::int64_t>(service->jobs_in_flight()),
                                                  static_cast<std::int64_t>(plugins.pool->stats().total)};
        },
        std::chrono::milliseconds(config.integer(Key::autoscaler_interval_ms)),
        static_cast<std::int32_t>(config.integer(Key::autoscaler_min_replicas)));
    phasekit::Logger& autoscale_log = rt.logs().logger("autoscaler");
    autoscale->on_change([&autoscale_log](const phasekit::plugin::ScaleDecision& d) {
      autoscale_log.info("autoscaler.recommendation", {{"desired_replicas", d.desired_replicas},
                                                       {"metric_replicas", d.metric_replicas},
                                                       {"limited_by", d.limited_by},
                                                       {"reason", d.reason}});
    });
    if (config.plugin("pool").name != "none") {
      pool_sizer.emplace(*plugins.pool, config, metrics, autoscale_log);
      autoscale->on_evaluation([&pool_sizer](const phasekit::plugin::ScaleDecision& d) {
        pool_sizer->apply(d.desired_replicas);
      });
    }
    autoscale->start();
  }

  if (!phasekit::runtime::listen(server, log)) {
    return 1;
  }
  // Ready (for a load balancer's or Kubernetes' probe of /ready) once the pool holds its minimum of idle
  // backends: a new instance takes no traffic it would serve from cold backends. pool=none keeps none,
  // and is ready before it says it listens (clients may connect as soon as it does).
  auto warm = [&plugins] {
    const auto s = plugins.pool->stats();
    return s.idle >= s.min_size;
  };
  server.set_ready(warm());
  log.info("server.listening", {{"address", server.settings().bind_address},
                                {"port", static_cast<unsigned>(server.port())},
                                {"admin_address", server.settings().admin_bind_address},
                                {"admin_port", static_cast<unsigned>(server.admin_port())},
                                {"phase", config.phase()},
                                {"plugins", rt.plugin_list()},
                                {"backend", rt.backend_name()},
                                {"sandbox", rt.sandbox()},
                                {"threads", rt.threads()}});

  const auto warming_since = std::chrono::steady_clock::now();
  phasekit::runtime::wait_then(ioc, warm, std::chrono::steady_clock::time_point::max(),
                               [&server, &log, &plugins, warming_since] {
                                 server.set_ready(true);
                                 const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - warming_since);
                                 log.info("server.ready", {{"idle_backends", plugins.pool->stats().idle},
                                                           {"warm_up_ms", ms.count()}});
                               });

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
    phasekit::runtime::wait_then(ioc, [&] { return service->jobs_unfinished() == 0; }, started + grace, [&, started] {
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

  rt.run();
  return 0;
}
