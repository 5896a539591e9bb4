#pragma once
// Socket.IO v5 over Engine.IO sessions: namespaces (CONNECT with its auth, DISCONNECT, several on
// one connection), events and their acknowledgements, binary attachments, and the connect timeout.
// What a namespace does is its SocketIoNamespace's business: the ToolService adapter
// (net/tool_namespace.hpp) in the orchestrator, the protocol test application in the conformance
// server.
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "phasekit/net/engine.hpp"
#include "phasekit/protocol/socketio.hpp"

namespace phasekit::net {

/// One client connected to one namespace, as its application sees it. Thread-safe: every member
/// posts to the connection's strand; after the socket is gone they do nothing.
class SocketIoSocket {
 public:
  virtual ~SocketIoSocket() = default;
  [[nodiscard]] virtual const std::string& nsp() const = 0;
  /// An EVENT; args[0] is the event name. json binary values travel as attachments.
  virtual void emit(nlohmann::json args) = 0;
  /// A server-side DISCONNECT of this namespace; the handler's on_disconnect follows.
  virtual void disconnect() = 0;
  /// The application ends the client: a DISCONNECT of this namespace, then the connection closes
  /// once it is written. The handler gets no on_disconnect (the application knows).
  virtual void close_connection(std::string reason) = 0;
};

/// Acknowledges one client event with these arguments (a JSON array); empty when none was asked.
using SocketIoAck = std::function<void(nlohmann::json args)>;

/// What a namespace does with one connected socket. Called on the connection's strand.
class SocketIoHandler {
 public:
  virtual ~SocketIoHandler() = default;
  /// `args` is the array of the event's arguments, without its name.
  virtual void on_event(std::string name, nlohmann::json args, SocketIoAck ack) = 0;
  virtual void on_disconnect(std::string_view reason) = 0;
};

/// The answer to a CONNECT: a handler (accepted), or the message of the CONNECT_ERROR.
struct SocketIoConnectResult {
  std::unique_ptr<SocketIoHandler> handler;
  std::string error;
  std::string pid;  // with the CONNECT answer: Socket.IO's connection-state-recovery id, if any
};

/// A namespace's application.
class SocketIoNamespace {
 public:
  virtual ~SocketIoNamespace() = default;
  /// A CONNECT with its auth payload (an object, {} when none). `done` may be called later, from
  /// any thread, once.
  virtual void connect(const nlohmann::json& auth, std::shared_ptr<SocketIoSocket> socket,
                       std::string_view connection_id, std::function<void(SocketIoConnectResult)> done) = 0;
};

using SocketIoNamespaces = std::map<std::string, std::shared_ptr<SocketIoNamespace>, std::less<>>;

struct SocketIoSettings {
  /// A connection with no namespace joined this long after its Engine.IO handshake is closed
  /// (socket.io's connectTimeout).
  std::chrono::milliseconds connect_timeout{45000};
  socketio::Limits limits;
};

/// The Engine.IO handler factory of a Socket.IO server with these namespaces. A CONNECT to any
/// other namespace gets CONNECT_ERROR "Invalid namespace".
HandlerFactory socketio_handlers(SocketIoNamespaces namespaces, SocketIoSettings settings, Logger& log);

}  // namespace phasekit::net
