// Side-by-side measurement of phasekit-orchestrator and Node's socket.io on this machine, in one run:
//  1. idle connections: RSS of the server process before and after N websocket clients connect;
//  2. round trip: `message` → ack latency at a fixed open-loop rate (latency from the intended send
//     time, so a stalled server shows up), p50/p99.
// Usage: node bench/sio_compare.js [connections=2000] [rate=500] [seconds=10]
//        PHASEKIT_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 node bench/sio_compare.js …  (another allocator)
//        SIO_TRANSPORT=polling node bench/sio_compare.js …  (HTTP long-polling clients instead of WebSocket)
// Loopback only; bounded in count and time.
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const readline = require("node:readline");
const { io } = require(path.join(__dirname, "..", "tools", "node", "node_modules", "socket.io-client"));

const connections = Math.min(Number(process.argv[2] || 2000), 15000);
const rate = Number(process.argv[3] || 500);
const seconds = Math.min(Number(process.argv[4] || 10), 120);
const root = path.join(__dirname, "..");
const transport = process.env.SIO_TRANSPORT === "polling" ? "polling" : "websocket";

function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

function start(kind) {
  const child =
    kind === "phasekit"
      ? spawn(path.join(root, "build", "bin", "phasekit-orchestrator"), [], {
          env: { PATH: process.env.PATH, PORT: "0", ADMIN_PORT: "0", AUTH_MODE: "none", LOG_LEVEL: "info", SESSION_GRACE_MS: "0",
                 MAX_CONNECTIONS_PER_ADDRESS: "0",  // every client is on 127.0.0.1
                 // An allocator to measure instead of glibc's (docs/capacity.md): e.g. libjemalloc.so.2.
                 ...(process.env.PHASEKIT_PRELOAD ? { LD_PRELOAD: process.env.PHASEKIT_PRELOAD } : {}) },
          stdio: ["ignore", "pipe", "inherit"],
        })
      : spawn(process.execPath, [path.join(__dirname, "node_sio_server.js")], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} did not start`)), 20000);
    const lines = readline.createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const m = /"port":(\d+)/.exec(line);
      if (m && (kind !== "phasekit" || line.includes("server.listening"))) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
  });
}

async function measure(kind) {
  const { child, port } = await start(kind);
  const url = `http://127.0.0.1:${port}`;
  await new Promise((r) => setTimeout(r, 300));
  const before = rssKiB(child.pid);
  const sockets = [];
  for (let i = 0; i < connections; i += 200) {
    const batch = [];
    for (let j = i; j < Math.min(connections, i + 200); j++) {
      batch.push(
        new Promise((resolve, reject) => {
          const s = io(url, { transports: [transport], reconnection: false, forceNew: true });
          s.once("connect", () => resolve(s));
          s.once("connect_error", reject);
        }),
      );
    }
    sockets.push(...(await Promise.all(batch)));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const after = rssKiB(child.pid);

  const latencies = [];
  let errors = 0;
  const total = rate * seconds;
  const began = process.hrtime.bigint();
  const interval = 1e9 / rate;
  const pending = [];
  for (let i = 0; i < total; i++) {
    const intended = began + BigInt(Math.round(i * interval));
    const now = process.hrtime.bigint();
    if (intended > now) await new Promise((r) => setTimeout(r, Number(intended - now) / 1e6));
    const s = sockets[i % sockets.length];
    // Latency counts from the intended send time (no coordinated omission), or from the actual send
    // when a timer fired a little early.
    const sentAt = process.hrtime.bigint();
    const from = sentAt > intended ? intended : sentAt;
    pending.push(
      s
        .timeout(10000)
        .emitWithAck("message", "echo hi")
        .then((ack) => {
          if (!ack.ok) errors++;
          latencies.push(Number(process.hrtime.bigint() - from) / 1e6);
        })
        .catch(() => errors++),
    );
  }
  await Promise.all(pending);
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  sockets.forEach((s) => s.close());
  child.kill("SIGTERM");
  return {
    server: kind,
    transport,
    connections,
    rssBeforeMiB: +(before / 1024).toFixed(1),
    rssAfterMiB: +(after / 1024).toFixed(1),
    kibPerConnection: +((after - before) / connections).toFixed(1),
    rate,
    seconds,
    p50ms: +pct(50).toFixed(2),
    p99ms: +pct(99).toFixed(2),
    errors,
  };
}

(async () => {
  const results = [];
  for (const kind of ["phasekit", "node"]) results.push(await measure(kind));
  console.table(results);
  console.log(JSON.stringify(results));
  process.exit(0);
})();
