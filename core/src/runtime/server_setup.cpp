#include "phasekit/runtime/server_setup.hpp"

#include <exception>

#include "phasekit/config/schema.hpp"

namespace phasekit::runtime {

std::unique_ptr<net::Server> make_server(Runtime& rt, std::shared_ptr<app::ToolService> service) {
  const config::Config& config = rt.config();
  net::ServerSettings settings = net::server_settings(config);
  settings.backend_limits = rt.backend_limits();
  auto& plugins = rt.plugins();
  auto server = std::make_unique<net::Server>(rt.ioc(), std::move(settings), std::move(service), rt.metrics(),
                                              *plugins.pool, rt.logs().logger("server"));
  auto& breakers = rt.breakers();
  auto& metrics = rt.metrics();
  server->add_json_route("/api/circuit-breakers", [&breakers] { return breakers.to_json(); });
  server->on_scrape([&breakers, &metrics] { breakers.export_metrics(metrics); });
  server->add_readiness_check("store", [&plugins] { return plugins.store->reachable(); },
                              config.boolean(config::Key::ready_requires_store));
  return server;
}

bool listen(net::Server& server, Logger& log) {
  try {
    server.start();
  } catch (const std::exception& e) {
    log.error("server.listen_failed", {{"error", e.what()}});
    return false;
  }
  return true;
}

}  // namespace phasekit::runtime
