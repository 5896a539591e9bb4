// Side-by-side measurement of phasekit-orchestrator and Node's socket.io on this machine, in one run:
//  1. idle connections: RSS of the server process before and after N websocket clients connect;
//  2. round trip: `message` → ack latency at a fixed open-loop rate (latency from the intended send
//     time, so a stalled server shows up), p50/p99.
// Usage: node bench/sio_compare.js [connections=2000] [rate=500] [seconds=10]
//        PHASEKIT_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 node bench/sio_compare.js …  (another allocator)
//        SIO_TRANSPORT=polling node bench/sio_compare.js …  (HTTP long-polling clients instead of WebSocket)
// WebSocket clients live in bench/sio_clients.js workers of at most 12,500 each, each from its own
// source address (127.0.0.2, .3, …): `node bench/sio_compare.js 19500 1000 10` takes two. One server
// process holds at most its open-file limit of clients less its own descriptors (about 19,900 under
// `ulimit -Hn` 20,000); more is refused up front. Polling clients stay in this process (at most
// 15,000, as before).
// Loopback only; bounded in count and time.
"use strict";
const path = require("node:path");
const { io } = require(path.join(__dirname, "..", "tools", "node", "node_modules", "socket.io-client"));
const fleet = require("./sio_fleet.js");

const connections = Number(process.argv[2] || 2000);
const rate = Number(process.argv[3] || 500);
const seconds = Math.min(Number(process.argv[4] || 10), 120);
const transport = process.env.SIO_TRANSPORT === "polling" ? "polling" : "websocket";
const maxConnections = transport === "polling" ? 15000 : fleet.serverMaxClients;

// Polling clients, the way this script always held them: all in this process, from 127.0.0.1.
async function pollingClients(url) {
  const sockets = [];
  for (let i = 0; i < connections; i += 200) {
    const batch = [];
    for (let j = i; j < Math.min(connections, i + 200); j++) {
      batch.push(
        new Promise((resolve, reject) => {
          const s = io(url, { transports: [transport], reconnection: false, forceNew: true });
          s.once("connect", () => resolve(s));
          s.once("connect_error", (err) => reject(new Error(`a polling client did not connect: ${err.message}`)));
        }),
      );
    }
    sockets.push(...(await Promise.all(batch)));
  }
  // The same open loop as sio_clients.js: latency from the intended send time, or from the actual
  // send when a timer fired a little early.
  const load = async () => {
    const hist = new fleet.Histogram();
    const errors = {};
    const total = rate * seconds;
    const began = process.hrtime.bigint();
    const interval = 1e9 / rate;
    const pending = [];
    for (let i = 0; i < total; i++) {
      const intended = began + BigInt(Math.round(i * interval));
      const now = process.hrtime.bigint();
      if (intended > now) await fleet.sleep(Number(intended - now) / 1e6);
      const sentAt = process.hrtime.bigint();
      const from = sentAt > intended ? intended : sentAt;
      pending.push(
        sockets[i % sockets.length]
          .timeout(10000)
          .emitWithAck("message", "echo hi")
          .then((ack) => {
            if (!ack.ok) fleet.countInto(errors, "ack not ok");
            hist.record(Number(process.hrtime.bigint() - from) / 1e6);
          })
          .catch((err) => fleet.countInto(errors, err.message)),
      );
    }
    await Promise.all(pending);
    return { errors, hist, unexpected: {} };
  };
  return { workers: 0, load, close: async () => sockets.forEach((s) => s.close()) };
}

async function webSocketClients(url) {
  const clients = new fleet.Fleet(url, connections);
  const connected = await clients.connect();
  if (connected.failed > 0) {
    await clients.close();
    throw new Error(`${connected.failed} of ${connections} clients did not connect: ${JSON.stringify(connected.failures)}`);
  }
  return {
    workers: clients.workers.length,
    load: async () => {
      const { errors, hist } = await clients.load(rate, seconds);
      const { unexpected } = await clients.stats();
      return { errors, hist, unexpected };
    },
    close: () => clients.close(),
  };
}

async function measure(kind) {
  const server = kind === "phasekit" ? await fleet.startOrchestrator() : await fleet.startNodeServer();
  const url = `http://127.0.0.1:${server.port}`;
  await fleet.sleep(300);
  const before = fleet.rssKiB(server.pid);
  const clients = transport === "polling" ? await pollingClients(url) : await webSocketClients(url);
  await fleet.sleep(1000);
  const after = fleet.rssKiB(server.pid);
  const { errors, hist, unexpected } = await clients.load();
  await clients.close();
  await fleet.stop(server.child);
  return {
    server: kind,
    transport,
    connections,
    rssBeforeMiB: +(before / 1024).toFixed(1),
    rssAfterMiB: +(after / 1024).toFixed(1),
    kibPerConnection: +((after - before) / connections).toFixed(1),
    rate,
    seconds,
    p50ms: +hist.quantile(50).toFixed(2),
    p99ms: +hist.quantile(99).toFixed(2),
    errors: fleet.sumCounts(errors),
    maxms: +hist.max.toFixed(2),
    workers: clients.workers,
    drops: fleet.sumCounts(unexpected),  // disconnects no client asked for
  };
}

fleet.run(async () => {
  if (!(connections >= 1 && connections <= maxConnections)) {
    throw new Error(
      `${connections} ${transport} connections: ` +
        (transport === "polling"
          ? `1 to ${maxConnections} polling clients (they all stay in this process)`
          : `one server process holds 1 to ${maxConnections} here (its open-file limit ${fleet.hardOpenFiles}, which ` +
            "`ulimit -Hn` cannot raise, less the server's own descriptors); bench/sio_scale.js spreads more over several processes"),
    );
  }
  if (!(rate > 0 && seconds > 0)) throw new Error("rate and seconds must be positive");
  const results = [];
  for (const kind of ["phasekit", "node"]) results.push(await measure(kind));
  console.table(results);
  console.log(JSON.stringify(results));
});
