// phasekit-worker: takes jobs from the redis queue (WORKER_CONCURRENCY at once), runs each in a backend
// from the pool with its session's files and shell state, publishes the results; /health, /ready and
// /metrics on ADMIN_PORT (/health and /ready on PORT too). SIGTERM: no new jobs, those in flight finish (or are handed back), then exit.
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>

#include <csignal>
#include <iostream>
#include <optional>

#include "phasekit/app/job_lifecycle.hpp"
#include "phasekit/autoscale/worker_autoscaler.hpp"
#include "phasekit/config/config.hpp"
#include "phasekit/net/server.hpp"
#include "phasekit/runtime/runtime.hpp"
#include "phasekit/runtime/server_setup.hpp"

namespace cfg = phasekit::config;
using phasekit::config::Key;

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  int exit_code = 0;
  const auto loaded = phasekit::runtime::configure(
      argc, argv, "phasekit-worker", "Runs jobs from the redis queue (ENABLE_WORKER_MODE=true, REDIS_URL) in pooled backends.",
      exit_code);
  if (!loaded) {
    return exit_code;
  }
  const cfg::Config& config = *loaded;

  phasekit::runtime::Runtime rt(config, "worker");
  // The queue must be remote: a worker takes jobs that orchestrators enqueue.
  if (const int code = rt.start(phasekit::runtime::Runtime::Role::worker); code != 0) {
    return code;
  }
  phasekit::Logger& log = rt.log();
  auto& plugins = rt.plugins();

  // A job's session comes from the store and its backend from the pool, for this job only; its files
  // come from and go back to WORKSPACE_ROOT/sessions/<id>. The queue runs one job of a session at a
  // time, so two backends never hold one session's files.
  phasekit::app::LifecycleOptions options;
  options.tenure = phasekit::app::Tenure::leased;
  options.persist = true;
  options.limits.max_output_bytes = static_cast<std::size_t>(config.integer(Key::max_output_bytes));
  options.limits.stream_threshold_bytes = static_cast<std::size_t>(config.integer(Key::stream_output_threshold_bytes));
  options.limits.backend_uid = rt.process().run_as_uid;
  options.limits.backend_gid = rt.process().run_as_gid;
  options.workspace_root = rt.process().workspace_root;
  options.instance_id = phasekit::runtime::instance_name();  // the audit log says who ran each call
  auto lifecycle = std::make_shared<phasekit::app::JobLifecycle>(options, *plugins.pool, *plugins.store,
                                                                 *plugins.compression, rt.host(),
                                                                 rt.host().logger("worker"));
  const auto concurrency = static_cast<unsigned>(config.integer(Key::worker_concurrency));
  // ENABLE_AUTOSCALER: jobs in flight and queued size the concurrency
  // (phasekit/autoscale/worker_autoscaler.hpp).
  std::optional<phasekit::autoscale::WorkerAutoscaler> autoscale;
  if (config.plugin("autoscaler").name != "none") {
    try {
      autoscale.emplace(config, rt.host(), *plugins.queue, rt.timers(), rt.metrics(), rt.logs().logger("autoscaler"));
    } catch (const std::exception& e) {
      log.error("plugin.load_failed", {{"error", e.what()}});
      return phasekit::runtime::kExitPlugin;
    }
  }

  const std::unique_ptr<phasekit::net::Server> listeners = phasekit::runtime::make_server(rt, nullptr);
  phasekit::net::Server& server = *listeners;
  if (!phasekit::runtime::listen(server, log)) {
    return 1;
  }
  plugins.queue->consume(concurrency, [lifecycle](phasekit::plugin::Job job,
                                                  phasekit::plugin::QueueStrategy::EventSink sink,
                                                  phasekit::plugin::QueueStrategy::JobDone done) {
    lifecycle->run(std::move(job), std::move(sink), std::move(done));
  });
  if (autoscale) {
    autoscale->start();
  }
  server.set_ready(true);
  log.info("worker.started", {{"port", static_cast<unsigned>(server.port())},
                              {"admin_port", static_cast<unsigned>(server.admin_port())},
                              {"concurrency", concurrency},
                              {"plugins", rt.plugin_list()},
                              {"backend", rt.backend_name()},
                              {"sandbox", rt.sandbox()},
                              {"threads", rt.threads()}});

  boost::asio::signal_set signals(rt.ioc(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) {
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    log.info("shutdown.begin", {{"signal", signo}, {"jobs_in_flight", lifecycle->in_flight()}});
    server.set_ready(false);
    server.begin_drain();
    if (autoscale) {
      autoscale->stop();
    }
    // The queue takes no new jobs and completes once those in flight have finished or been handed back.
    plugins.queue->async_shutdown([&, started] {
      plugins.pool->async_shutdown([&, started] {
        log.info("shutdown.done", {{"jobs_in_flight", lifecycle->in_flight()},
                                   {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now() - started)
                                              .count()}});
        rt.ioc().stop();
      });
    });
    signals.async_wait([&](const boost::system::error_code& e2, int) {
      if (!e2) {
        rt.ioc().stop();
      }
    });
  });
  rt.run();
  return 0;
}
