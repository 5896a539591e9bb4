// A Node.js socket.io v4 server that answers after a known delay, for testing phasekit-load.
//   node delay_server.js DELAY_MS   → prints {"msg":"server.listening","port":N} on stdout once listening on 127.0.0.1
// Events: "echo" (acked after the delay with {ok:true, seq}), "ask" (answered with an "answer" event
// after the delay), anything else (counted). GET /counts returns what the server saw and sent, with
// the hold times it really applied (the delay as the server measured it, per answer).
"use strict";
const path = require("node:path");
const http = require("node:http");
const modules = process.env.PHASEKIT_NODE_MODULES || path.join(__dirname, "../../tools/node/node_modules");
const { Server } = require(path.join(modules, "socket.io"));

const delayMs = Number(process.argv[2] || 20);

// setTimeout alone fires up to a millisecond or two late; the last 2 ms are spun out on
// setImmediate so that the hold is the delay to within a few tens of microseconds.
function after(ms, fn) {
  const target = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  const spin = () => (process.hrtime.bigint() >= target ? fn() : setImmediate(spin));
  setTimeout(spin, Math.max(0, ms - 2));
}
const counts = { connections: 0, disconnects: 0, events: {}, acks: 0, answers: 0, holdsMs: [] };
const server = http.createServer((req, res) => {
  if (req.url === "/counts") {
    const holds = [...counts.holdsMs].sort((a, b) => a - b);
    const p50 = holds.length ? holds[Math.ceil(holds.length * 0.5) - 1] : null;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ...counts, holdsMs: undefined, holdP50Ms: p50, holdCount: holds.length }));
    return;
  }
  if (!req.url.startsWith("/socket.io/")) {
    res.writeHead(404);
    res.end();
  }
});
const io = new Server(server, { maxHttpBufferSize: 1e6 });
io.on("connection", (socket) => {
  counts.connections++;
  socket.on("disconnect", () => counts.disconnects++);
  socket.onAny((event, ...args) => {
    counts.events[event] = (counts.events[event] || 0) + 1;
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    const received = process.hrtime.bigint();
    const hold = () => counts.holdsMs.push(Number(process.hrtime.bigint() - received) / 1e6);
    if (event === "echo" && ack) {
      after(delayMs, () => {
        hold();
        counts.acks++;
        ack({ ok: true, seq: counts.acks, echo: args[0] ?? null });
      });
    } else if (event === "ask") {
      after(delayMs, () => {
        hold();
        counts.answers++;
        socket.emit("answer", { callId: `c${counts.answers}`, question: args[0] ?? null });
      });
    } else if (ack) {
      counts.acks++;
      ack({ ok: true });
    }
  });
});
server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ msg: "server.listening", port: server.address().port })));
process.on("SIGTERM", () => process.exit(0));
