// Many WebSocket clients over several orchestrator processes sharing one port (issue 16):
//  1. starts PROCESSES phasekit-orchestrators with REUSE_PORT=true on one free loopback port (each its
//     own ADMIN_PORT), and reads each one's RSS;
//  2. connects CONNECTIONS Socket.IO WebSocket clients from bench/sio_clients.js workers (at most
//     12,500 each, each from its own source address 127.0.0.2, .3, …) and shows how the kernel spread
//     them over the processes (phasekit_engineio_sessions on each /metrics, and the sockets in
//     /proc/PID/fd), each process's RSS after, and the memory per connection over all processes;
//  3. sends `message` at RATE per second for SECONDS, open loop, from LOAD_CLIENTS of the clients (1,000
//     by default, in workers of their own; each client denies the tool call its message makes, as a
//     user who declines would): ack p50, p99
//     and max (from the intended send time), errors, and every disconnect over the whole run with its
//     reason: with the default heartbeat (PING_INTERVAL_MS=25000, PING_TIMEOUT_MS=20000) a client
//     that misses one drops, so a long run shows whether the processes keep up with every heartbeat.
// Usage: node bench/sio_scale.js [connections=50000] [processes=3] [rate=1000] [seconds=300]
//        Each orchestrator runs IO_THREADS threads: the cores / PROCESSES (at least 1) unless set.
//        e.g. a short one: node bench/sio_scale.js 3000 3 100 20
// Run it from a shell with `ulimit -n 20000` (the hard limit here). One process holds at most about
// 19,900 clients and the kernel spreads them by a hash of the addresses, not evenly: CONNECTIONS over
// what PROCESSES can be expected to hold is refused up front. Prints a table and a JSON line.
// Loopback only; bounded in count (100,000 clients, 16 processes) and time (1 hour of load).
"use strict";
const fleet = require("./sio_fleet.js");

const connections = Number(process.argv[2] || 50000);
const processes = Number(process.argv[3] || 3);
const rate = Number(process.argv[4] || 1000);
const seconds = Number(process.argv[5] || 300);
const loadClients = Math.min(Number(process.env.LOAD_CLIENTS || 1000), connections);
const idleNice = Number(process.env.IDLE_NICE ?? 10);
// The orchestrators together run about as many threads as the machine has cores (docs/operations.md:
// IO_THREADS with REUSE_PORT), unless IO_THREADS says otherwise.
if (process.env.IO_THREADS === undefined) {
  process.env.IO_THREADS = String(Math.max(1, Math.floor(require("node:os").availableParallelism() / processes)));
}

const mib = (kib) => (kib === null ? null : +(kib / 1024).toFixed(1));
const fmt = (ms) => +ms.toFixed(2);

// Several fleets seen as one: connect, stats and close over all of them.
class Fleets {
  constructor(fleets) {
    this.fleets = fleets;
    this.workers = fleets.flatMap((f) => f.workers);
  }
  async connect() {
    const began = Date.now();
    const results = await Promise.all(this.fleets.map((f) => f.connect()));
    const out = { connected: 0, failed: 0, failures: {}, ms: Date.now() - began };
    for (const r of results) {
      out.connected += r.connected;
      out.failed += r.failed;
      fleet.addCounts(out.failures, r.failures);
    }
    return out;
  }
  async stats() {
    const results = await Promise.all(this.fleets.map((f) => f.stats()));
    const out = { live: 0, expected: {}, unexpected: {}, rssKiB: 0, fds: 0, perWorker: [] };
    for (const r of results) {
      out.live += r.live;
      fleet.addCounts(out.expected, r.expected);
      fleet.addCounts(out.unexpected, r.unexpected);
      out.rssKiB += r.rssKiB;
      out.fds = Math.max(out.fds, r.fds);
      out.perWorker.push(...r.perWorker);
    }
    return out;
  }
  async close() {
    await Promise.all(this.fleets.map((f) => f.close()));
  }
}

fleet.run(async () => {
  if (!(Number.isInteger(connections) && connections >= 1 && connections <= 100000)) throw new Error("connections: 1 to 100,000");
  if (!(Number.isInteger(processes) && processes >= 1 && processes <= 16)) throw new Error("processes: 1 to 16");
  if (!(rate > 0 && seconds > 0 && seconds <= 3600)) throw new Error("rate > 0 and seconds from 1 to 3,600");
  // SO_REUSEPORT picks a process by a hash of the connection's addresses: each holds a binomial share,
  // a few standard deviations above the mean at worst.
  const share = 1 / processes;
  const expectedMost = Math.ceil(connections * share + 4 * Math.sqrt(connections * share * (1 - share)));
  if (expectedMost > fleet.serverMaxClients) {
    throw new Error(
      `${connections} clients over ${processes} processes: one of them can expect up to ${expectedMost}, and one ` +
        `process holds at most ~${fleet.serverMaxClients} (open-file limit ${fleet.hardOpenFiles}); use more processes`,
    );
  }

  const port = await fleet.freePort();
  const servers = [];
  for (let k = 0; k < processes; k++) servers.push(await fleet.startOrchestrator({ port, reusePort: true, name: `phasekit#${k}` }));
  // A process that dies is reported, and the run goes on with the others.
  let stopping = false;
  for (const s of servers) {
    s.exited = null;
    s.child.once("exit", (code, signal) => {
      if (stopping) return;
      s.exited = signal || code;
      console.error(`phasekit-orchestrator ${s.pid} exited (${s.exited}) during the run`);
    });
  }
  await fleet.sleep(300);
  const before = servers.map((s) => fleet.rssKiB(s.pid));

  const url = `http://127.0.0.1:${port}`;
  // The messages come from workers of their own (LOAD_CLIENTS of the clients, 1,000 by default): a
  // worker that holds 12,500 idle sockets pauses for its garbage collector, and those pauses would be
  // measured as the server's latency. Every client, idle or not, counts in CONNECTIONS.
  const idleCount = connections - loadClients;
  // The idle workers run at a lower priority (nice 10): their collector's bursts on this shared
  // machine then wait for the servers and the load worker (clients elsewhere would not compete).
  const idleFleet = idleCount > 0 ? new fleet.Fleet(url, idleCount, { nice: idleNice }) : null;
  const loadFleet = new fleet.Fleet(url, loadClients, { firstHost: 2 + (idleFleet ? idleFleet.workers.length : 0) });
  const clients = new Fleets([idleFleet, loadFleet].filter(Boolean));
  const idle = await clients.stats();
  console.error(`connecting ${connections} clients to ${url} (${processes} processes) from ${clients.workers.length} workers…`);
  const connected = await clients.connect();
  console.error(`${connected.connected} connected in ${(connected.ms / 1000).toFixed(1)} s, ${connected.failed} failed`);
  await fleet.sleep(1000);
  const held = await clients.stats();
  const after = servers.map((s) => fleet.rssKiB(s.pid));
  const spread = await Promise.all(servers.map((s) => fleet.gaugeOrNull(s.adminPort, "phasekit_engineio_sessions")));
  const sockets = servers.map((s) => fleet.socketFds(s.pid));

  // Progress on stderr while the load runs: a long run says early when clients drop.
  const began = Date.now();
  const progress = setInterval(async () => {
    try {
      const s = await clients.stats();
      const drops = fleet.sumCounts(s.unexpected);
      console.error(`${Math.round((Date.now() - began) / 1000)} s: ${s.live} clients, ${drops} dropped ${drops ? JSON.stringify(s.unexpected) : ""}`);
    } catch {}
  }, 30000);
  const { sent, errors, hist } = await loadFleet.load(rate, seconds);
  clearInterval(progress);
  await fleet.sleep(1000);
  const end = await clients.stats();
  const endSpread = await Promise.all(servers.map((s) => fleet.gaugeOrNull(s.adminPort, "phasekit_engineio_sessions")));
  const endRss = servers.map((s) => fleet.rssKiB(s.pid));

  stopping = true;
  await clients.close();
  await Promise.all(servers.map((s) => fleet.stop(s.child)));

  const sum = (xs) => xs.reduce((a, x) => a + (x || 0), 0);
  const exited = servers.map((s) => s.exited);
  const rows = servers.map((s, k) => ({
    process: `phasekit#${k}`,
    pid: s.pid,
    clients: spread[k],
    sharePct: spread[k] === null ? null : +((100 * spread[k]) / Math.max(1, sum(spread))).toFixed(1),
    socketFds: sockets[k],
    rssBeforeMiB: mib(before[k]),
    rssAfterMiB: mib(after[k]),
    kibPerConnection: spread[k] && after[k] ? +((after[k] - before[k]) / spread[k]).toFixed(1) : null,
    clientsAtEnd: endSpread[k],
    rssEndMiB: endRss[k] === null ? null : mib(endRss[k]),
    exited: exited[k],  // null: ran to the end, else its exit code or signal
  }));
  rows.push({
    process: "all",
    pid: null,
    clients: sum(spread),
    sharePct: 100,
    socketFds: sum(sockets),
    rssBeforeMiB: mib(sum(before)),
    rssAfterMiB: mib(sum(after)),
    kibPerConnection: +((sum(after) - sum(before)) / Math.max(1, connected.connected)).toFixed(1),
    clientsAtEnd: sum(endSpread),
    rssEndMiB: mib(sum(endRss)),
    exited: exited.filter((e) => e !== null).length,
  });
  const summary = {
    connections,
    processes,
    port,
    workers: clients.workers.length,
    loadClients,
    connected: connected.connected,
    connectFailed: connected.failed,
    connectFailures: connected.failures,
    connectSeconds: +(connected.ms / 1000).toFixed(1),
    clientKiBPerSocket: +((held.rssKiB - idle.rssKiB) / Math.max(1, connected.connected)).toFixed(1),
    rate,
    seconds,
    sent,
    p50ms: fmt(hist.quantile(50)),
    p99ms: fmt(hist.quantile(99)),
    maxms: fmt(hist.max),
    errors: fleet.sumCounts(errors),
    errorReasons: errors,
    clientsAtEnd: end.live,
    drops: fleet.sumCounts(end.unexpected),
    dropReasons: end.unexpected,  // every disconnect no client asked for, from the first connect to the end of the load
    serversExited: exited.filter((e) => e !== null).length,
  };
  console.table(rows);
  console.table(Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v])));
  console.log(JSON.stringify({ ...summary, perProcess: rows }));
  if (summary.drops > 0 || summary.connectFailed > 0 || summary.serversExited > 0) {
    console.error(`NOTE: ${summary.connectFailed} clients did not connect, ${summary.drops} dropped, ${summary.serversExited} servers exited early`);
  }
});
