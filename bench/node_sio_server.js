// The reference point for docs/capacity.md: the official Node.js socket.io v4 server answering the
// same `message` event the way phasekit-orchestrator does without running a tool (emit tool:request,
// ack {ok, callId}). Prints {"port": N} once listening on 127.0.0.1.
"use strict";
const path = require("node:path");
const http = require("node:http");
const { Server } = require(path.join(__dirname, "..", "tools", "node", "node_modules", "socket.io"));

const server = http.createServer();
const io = new Server(server, { maxHttpBufferSize: 1e6 });
let next = 0;
io.on("connection", (socket) => {
  socket.on("message", (message, ack) => {
    const callId = `call-${(next++).toString(16)}`;
    socket.emit("tool:request", { callId, tool: "shell", args: { command: message } });
    if (typeof ack === "function") ack({ ok: true, callId });
  });
});
server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: server.address().port })));
process.on("SIGTERM", () => process.exit(0));
