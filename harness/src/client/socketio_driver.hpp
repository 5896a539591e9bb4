#pragma once
// The Socket.IO v4 client as a driver: what main hands the runner.
#include "driver/driver.hpp"

namespace phasekit::load {

/// A DriverFactory: resolves and checks the target once per run (throws std::runtime_error, see
/// DriverFactory), then makes Socket.IO connections that share its socket budget.
DriverPtr make_socketio_driver(const ClientOptions& options);

}  // namespace phasekit::load
