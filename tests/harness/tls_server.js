// A Node.js socket.io v4 server over HTTPS (or plain HTTP), with a cookie of its own, for testing
// phasekit-load's TLS and cookie jar.
//   node tls_server.js [--cert FILE --key FILE]   → prints {"port":N} once listening on 127.0.0.1
// Events: "echo" is acked with {ok: true, echo}; "transport" with {ok: true, transport} once the
// session runs over WebSocket (at most 5 s). Every Engine.IO handshake answers with
//   Set-Cookie: pk_affinity=<random>; Path=/; HttpOnly[; Secure over HTTPS]
// and every later request of that session (polls, POSTs, the WebSocket upgrade) is checked for it.
// GET /counts returns {connections, upgrades, sessionRequests, cookieMissing, cookieWrong}.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const https = require("node:https");
const path = require("node:path");
const modules = process.env.PHASEKIT_NODE_MODULES || path.join(__dirname, "../../tools/node/node_modules");
const { Server } = require(path.join(modules, "socket.io"));
const { whenWebSocket } = require("./when_websocket.js");

const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const certFile = arg("--cert");
const keyFile = arg("--key");
const tls = certFile !== undefined;

const counts = { connections: 0, upgrades: 0, sessionRequests: 0, cookieMissing: 0, cookieWrong: 0 };
const cookieOfSession = new Map();  // Engine.IO sid → the cookie value its handshake set

function onRequest(req, res) {
  if (req.url === "/counts") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(counts));
    return;
  }
  if (!req.url.startsWith("/socket.io/")) {
    res.writeHead(404);
    res.end();
  }
}
const server = tls
  ? https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, onRequest)
  : http.createServer(onRequest);

// Checks the cookie on every request that names a session (before socket.io sees it).
function checkCookie(req) {
  const sid = new URL(req.url, "http://x").searchParams.get("sid");
  if (!req.url.startsWith("/socket.io/") || sid === null) return;
  counts.sessionRequests++;
  const expected = cookieOfSession.get(sid);
  const sent = /(?:^|;\s*)pk_affinity=([^;]*)/.exec(req.headers.cookie || "");
  if (sent === null) counts.cookieMissing++;
  else if (expected !== undefined && sent[1] !== expected) counts.cookieWrong++;
}
const io = new Server(server, { maxHttpBufferSize: 1e6 });
// After socket.io attached itself: it takes over the "request" listeners it finds.
server.prependListener("request", checkCookie);
server.prependListener("upgrade", checkCookie);
io.engine.on("initial_headers", (headers, req) => {
  const value = crypto.randomBytes(12).toString("hex");
  req.pkAffinity = value;
  headers["Set-Cookie"] = `pk_affinity=${value}; Path=/; HttpOnly${tls ? "; Secure" : ""}`;
});
io.engine.on("connection", (socket) => {
  cookieOfSession.set(socket.id, socket.request.pkAffinity);
  socket.on("upgrade", () => counts.upgrades++);
  socket.on("close", () => cookieOfSession.delete(socket.id));
});
io.on("connection", (socket) => {
  counts.connections++;
  socket.on("echo", (data, ack) => {
    if (typeof ack === "function") ack({ ok: true, echo: data ?? null });
  });
  socket.on("transport", (_data, ack) => {
    if (typeof ack === "function") whenWebSocket(socket.conn, (transport) => ack({ ok: true, transport }));
  });
});
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ msg: "server.listening", port: server.address().port }));
});
process.on("SIGTERM", () => process.exit(0));
