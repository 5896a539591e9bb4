#pragma once
// A Socket.IO v4 client connection (Engine.IO v4 over WebSocket, or HTTP long-polling with the
// upgrade to WebSocket), as the driver interface's Connection. The class stays inside its .cpp so
// that nothing but that one file compiles Beast.
#include "client/dialer.hpp"
#include "driver/driver.hpp"

namespace phasekit::load {

/// A connection through dialer (which outlives it), not connected yet.
ConnectionPtr make_socketio_connection(const boost::asio::any_io_executor& executor, Dialer& dialer,
                                       MetricSink& metrics, ConnectOptions options);

}  // namespace phasekit::load
