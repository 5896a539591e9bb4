// A Node.js socket.io v4 server that records what phasekit-load sends it, for the tests of the
// Artillery features (payload rows, extraHeaders, query, auth, before/after, loop over, ifTrue).
//   node record_server.js   → prints {"msg":"server.listening","port":N} on stdout once listening on 127.0.0.1
// It records every HTTP request and WebSocket upgrade under /socket.io/ (transport, query, x-*
// headers), every connection (its handshake query, auth and x-* headers) and every event in the order
// it arrived. An event with an ack is acked with {ok: true, room: "room-<n>"} (n counts the acks),
// but "transport", acked with {ok: true, transport} once the session runs over WebSocket (5 s at most).
// GET /seen returns the records.
"use strict";
const path = require("node:path");
const http = require("node:http");
const modules = process.env.PHASEKIT_NODE_MODULES || path.join(__dirname, "../../tools/node/node_modules");
const { Server } = require(path.join(modules, "socket.io"));
const { whenWebSocket } = require("./when_websocket.js");

const seen = { requests: [], connections: [], events: [] };
let acks = 0;

function xHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith("x-")) out[name] = value;
  }
  return out;
}

function recordRequest(req, upgrade) {
  const url = new URL(req.url, "http://127.0.0.1");
  if (!url.pathname.startsWith("/socket.io/")) return;
  seen.requests.push({
    method: upgrade ? "UPGRADE" : req.method,
    transport: url.searchParams.get("transport"),
    query: Object.fromEntries(url.searchParams),
    headers: xHeaders(req.headers),
  });
}

const server = http.createServer((req, res) => {
  if (req.url === "/seen") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(seen));
    return;
  }
  if (!req.url.startsWith("/socket.io/")) {
    res.writeHead(404);
    res.end();
  }
});
const io = new Server(server);
// After socket.io attached (it takes over the request listeners there were), in front of its own:
// these see every request first, and only read it.
server.prependListener("request", (req) => recordRequest(req, false));
server.prependListener("upgrade", (req) => recordRequest(req, true));
io.on("connection", (socket) => {
  const connection = seen.connections.length;
  seen.connections.push({
    sid: socket.conn.id,
    transport: socket.conn.transport.name,
    query: socket.handshake.query,
    auth: socket.handshake.auth,
    headers: xHeaders(socket.handshake.headers),
  });
  socket.onAny((event, ...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    seen.events.push({ connection, event, args });
    if (ack && event === "transport") {
      whenWebSocket(socket.conn, (transport) => ack({ ok: true, transport }));
    } else if (ack) {
      acks++;
      ack({ ok: true, room: `room-${acks}` });
    }
  });
});
server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ msg: "server.listening", port: server.address().port })));
process.on("SIGTERM", () => process.exit(0));
