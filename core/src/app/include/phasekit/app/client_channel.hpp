#pragma once
// One client socket as the application sees it, and the acknowledgement of one client event.
// Implemented by the transport (net/engine.cpp), so sessions and the tool-call flow are testable
// without a socket.
#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "phasekit/status.hpp"

namespace phasekit::app {

/// Thread-safe.
class ClientChannel {
 public:
  virtual ~ClientChannel() = default;
  virtual void emit(std::string event, nlohmann::json payload) = 0;
  /// An event the client may have to be sent again after a reconnect: Socket.IO's connection state
  /// recovery sends `offset` as the event's last argument, the client keeps the last one it got and
  /// hands it back when it reconnects (`auth.offset`), and the events after it are sent again.
  virtual void emit_recoverable(std::string event, nlohmann::json payload, std::string /*offset*/) {
    emit(std::move(event), std::move(payload));
  }
  virtual void close(std::string reason) = 0;
};

/// The acknowledgement callback of one client event; empty when the client asked for none.
using Ack = std::function<void(nlohmann::json)>;

/// {ok: true, callId}: an accepted message or approval.
inline nlohmann::json ok_ack(const std::string& call_id) {
  return nlohmann::json{{"ok", true}, {"callId", call_id}};
}

/// {ok: false, code, message}: how every refused client event is answered.
inline nlohmann::json error_ack(const Status& s) {
  return nlohmann::json{{"ok", false}, {"code", wire_name(s.code())}, {"message", s.message()}};
}

}  // namespace phasekit::app
