#pragma once
// The orchestrator's Socket.IO namespace "/": CONNECT, events and disconnects go to the ToolService,
// whose ClientChannel and acknowledgements come back as Socket.IO packets.
#include <memory>

#include "phasekit/app/tool_service.hpp"
#include "phasekit/net/socketio_server.hpp"

namespace phasekit::net {

std::shared_ptr<SocketIoNamespace> tool_namespace(std::shared_ptr<app::ToolService> service);

}  // namespace phasekit::net
