// For the test socket.io servers: calls done(transport) once an Engine.IO session runs over WebSocket,
// or after waitMs with the transport it has then. A server that acks an event with it lets a flow end
// by asking, so the flow cannot close on polling while its upgrade is still under way.
"use strict";

function whenWebSocket(session, done, waitMs = 5000) {
  if (session.transport.name === "websocket") return done("websocket");
  const timer = setTimeout(() => done(session.transport.name), waitMs);
  session.once("upgrade", () => {
    clearTimeout(timer);
    done(session.transport.name);
  });
}

module.exports = { whenWebSocket };
