// A stopgap driver for ./scripts/run.sh until phasekit-load exists: N users, each connects with the
// official socket.io-client, sends `message`, approves the tool:request and waits for tool:result;
// prints latency percentiles of the whole exchange. Loopback only, bounded in count and time.
"use strict";
const path = require("node:path");
const { io } = require(path.join(__dirname, "..", "tools", "node", "node_modules", "socket.io-client"));

const [url = "http://127.0.0.1:3000", usersArg = "50", rateArg = "25"] = process.argv.slice(2);
const users = Math.min(Number(usersArg), 2000);
const rate = Math.max(1, Number(rateArg));
if (!/^https?:\/\/(127\.|localhost|\[::1\])/.test(url)) {
  console.error("smoke-client: loopback targets only");
  process.exit(2);
}

const latencies = [];
const errors = {};
let done = 0;

function user(i) {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
    const fail = (code) => {
      errors[code] = (errors[code] || 0) + 1;
      socket.close();
      resolve();
    };
    const timer = setTimeout(() => fail("TIMEOUT"), 30000);
    socket.on("connect_error", () => fail("CONNECT_ERROR"));
    socket.on("tool:request", (r) => socket.emit("tool:approval", { callId: r.callId, approved: true }));
    socket.on("tool:result", (r) => {
      clearTimeout(timer);
      if (r.exitCode === 0 && r.output === `user ${i}\n`) {
        latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
      } else {
        errors[r.error ? r.error.code : "WRONG_OUTPUT"] = (errors[r.error ? r.error.code : "WRONG_OUTPUT"] || 0) + 1;
      }
      socket.close();
      resolve();
    });
    socket.on("connect", () =>
      socket.emit("message", `echo user ${i}`, (ack) => {
        if (!ack.ok) {
          clearTimeout(timer);
          fail(ack.code);
        }
      }),
    );
  }).then(() => done++);
}

(async () => {
  const began = Date.now();
  const all = [];
  for (let i = 0; i < users; i++) {
    all.push(user(i));
    await new Promise((r) => setTimeout(r, 1000 / rate));
  }
  await Promise.all(all);
  latencies.sort((a, b) => a - b);
  const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(1) : "-");
  const failed = Object.values(errors).reduce((a, b) => a + b, 0);
  console.log(`users ${users} at ${rate}/s in ${((Date.now() - began) / 1000).toFixed(1)} s: ${latencies.length} ok, ${failed} failed ${JSON.stringify(errors)}`);
  console.log(`connect → message → approval → result latency ms: p50 ${pct(50)}  p95 ${pct(95)}  p99 ${pct(99)}  max ${pct(100)}`);
  console.log(`${latencies.length} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
})();
