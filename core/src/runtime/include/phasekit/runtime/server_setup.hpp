#pragma once
// The listeners both binaries serve, set up alike: PORT and ADMIN_PORT as the configuration says,
// the backend limits in /stats/pool, the breakers in /api/circuit-breakers and /metrics, and the
// store's state in /ready (READY_REQUIRES_STORE).
#include <memory>

#include "phasekit/net/server.hpp"
#include "phasekit/plugin/log.hpp"
#include "phasekit/runtime/runtime.hpp"

namespace phasekit::runtime {

/// The server of `rt` (after Runtime::start), not yet listening. `service`: the Socket.IO application
/// the orchestrator serves; nullptr for a worker, which serves the probes and the operations routes.
std::unique_ptr<net::Server> make_server(Runtime& rt, std::shared_ptr<app::ToolService> service);

/// Binds both listeners; false, after logging server.listen_failed, when one cannot be bound.
bool listen(net::Server& server, Logger& log);

}  // namespace phasekit::runtime
