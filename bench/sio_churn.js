// Does an orchestrator's memory stay flat under connection churn (issue 16)? One phasekit-orchestrator
// holds STEADY Socket.IO WebSocket clients (bench/sio_clients.js workers of at most 12,500 each, each
// from its own source address 127.0.0.2, .3, …); then for MINUTES minutes CHURN clients, chosen at
// random, disconnect each second and as many new ones connect (the set stays about STEADY), while the
// orchestrator's RSS is sampled every 10 s. The first WARMUP_S seconds of churn are the warm-up (the
// allocator reaches its steady state); the RSS after it is the reference, and the run PASSes when the
// RSS at the end is within 5 % of it. Also reports connect failures and unexpected disconnects.
// Usage: node bench/sio_churn.js [steady=19000] [churn=200] [minutes=10] [warmup_s=60]
//        e.g. a short one: node bench/sio_churn.js 2000 20 1 10
// Run it from a shell with `ulimit -n 20000` (the hard limit here). One process holds at most its
// open-file limit of clients less its own descriptors and the connections churn has in flight: a
// STEADY over that (20,000 does not fit under 20,000 descriptors) is refused up front.
// Prints the samples, a summary table, a PASS/FAIL line and a JSON line. Loopback only; bounded in
// count and time (60 minutes).
"use strict";
const fleet = require("./sio_fleet.js");

const steady = Number(process.argv[2] || 19000);
const churn = Number(process.argv[3] || 200);
const minutes = Number(process.argv[4] || 10);
const warmupS = Number(process.argv[5] || 60);
const tolerancePct = 5;

const mib = (kib) => +(kib / 1024).toFixed(1);

fleet.run(async () => {
  // Churn closes and opens as many clients each second, and a closed one's descriptor may go a little
  // after the new one's comes (2,000 clients churned at 200/s on loopback: the server's sockets stayed
  // within 5 of its clients): room for a second of churn.
  const room = fleet.serverMaxClients - churn;
  if (!(Number.isInteger(steady) && steady >= 1 && steady <= room)) {
    throw new Error(
      `${steady} steady clients with ${churn}/s churn: one orchestrator holds 1 to ${room} here (its open-file ` +
        `limit ${fleet.hardOpenFiles}, which \`ulimit -Hn\` cannot raise, less its own descriptors and a second of churn)`,
    );
  }
  if (!(churn > 0 && churn <= Math.min(2000, steady))) throw new Error("churn: more than 0, at most 2,000/s and at most steady");
  if (!(minutes > 0 && minutes <= 60)) throw new Error("minutes: more than 0, at most 60");
  if (!(warmupS >= 0 && warmupS < minutes * 60)) throw new Error(`warmup_s: from 0 to less than the churn's ${minutes * 60} s`);

  const server = await fleet.startOrchestrator();
  const url = `http://127.0.0.1:${server.port}`;
  await fleet.sleep(300);
  const before = fleet.rssKiB(server.pid);
  const clients = new fleet.Fleet(url, steady);
  console.error(`connecting ${steady} clients to ${url} from ${clients.workers.length} workers…`);
  const connected = await clients.connect();
  if (connected.failed > 0) {
    throw new Error(`${connected.failed} of ${steady} steady clients did not connect: ${JSON.stringify(connected.failures)}`);
  }
  await fleet.sleep(1000);
  const held = fleet.rssKiB(server.pid);

  const sample = async (t) => ({
    t,
    rssMiB: mib(fleet.rssKiB(server.pid)),
    sessions: await fleet.gauge(server.adminPort, "phasekit_engineio_sessions"),
    connections: await fleet.gauge(server.adminPort, "phasekit_http_connections"),
  });
  console.error(`churning ${churn}/s for ${minutes} min (warm-up ${warmupS} s), RSS every 10 s…`);
  const began = Date.now();
  const elapsed = () => Math.round((Date.now() - began) / 1000);
  const samples = [];
  let warm = null;
  let failure = null;
  const noteFailure = (err) => (failure = failure || err);
  const sampler = setInterval(() => {
    sample(elapsed()).then((s) => {
      samples.push(s);
      console.error(`${s.t} s: RSS ${s.rssMiB} MiB, ${s.sessions} sessions, ${s.connections} connections`);
    }, noteFailure);
  }, 10000);
  const warmTimer = setTimeout(() => sample(elapsed()).then((s) => (warm = s), noteFailure), warmupS * 1000);
  // A server that dies ends the run at once, saying so.
  const died = new Promise((_, reject) =>
    server.child.once("exit", (code, signal) => reject(new Error(`phasekit-orchestrator exited (${signal || code}) during the churn`))),
  );
  const churned = await Promise.race([clients.churn(churn, minutes * 60), died]);
  clearInterval(sampler);
  clearTimeout(warmTimer);
  const end = await sample(elapsed());
  if (failure) throw failure;
  if (!warm) throw new Error("no RSS sample after the warm-up");
  const stats = await clients.stats();

  await clients.close();
  await fleet.stop(server.child);

  const changePct = (100 * (end.rssMiB - warm.rssMiB)) / warm.rssMiB;
  const pass = Math.abs(changePct) <= tolerancePct;
  const summary = {
    steady,
    churnPerSecond: churn,
    minutes,
    warmupS,
    workers: clients.workers.length,
    rssBeforeMiB: mib(before),
    rssSteadyMiB: mib(held),
    kibPerConnection: +((held - before) / steady).toFixed(1),
    rssAfterWarmupMiB: warm.rssMiB,
    rssEndMiB: end.rssMiB,
    rssChangePct: +changePct.toFixed(2),
    closed: churned.closed,
    connected: churned.connected,
    connectFailed: churned.failed,
    connectFailures: churned.failures,
    connectP99ms: +churned.connectHist.quantile(99).toFixed(2),
    unexpectedDisconnects: fleet.sumCounts(stats.unexpected),
    disconnectReasons: stats.unexpected,
    clientsAtEnd: stats.live,
    sessionsAtEnd: end.sessions,
    clientRssMiB: mib(stats.rssKiB),
    pass,
  };
  // The warm-up's and the end's samples among the others, marked.
  samples.push({ ...warm, at: "after warm-up" }, { ...end, at: "end" });
  samples.sort((a, b) => a.t - b.t);
  console.table(samples);
  console.table(Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v])));
  console.log(
    `${pass ? "PASS" : "FAIL"}: end RSS ${end.rssMiB} MiB is ${pass ? "within" : "not within"} ${tolerancePct}% of ` +
      `${warm.rssMiB} MiB after the ${warmupS} s warm-up (${changePct >= 0 ? "+" : ""}${changePct.toFixed(2)}%); ` +
      `${churned.failed} connect failures, ${summary.unexpectedDisconnects} unexpected disconnects`,
  );
  console.log(JSON.stringify({ ...summary, samples }));
});
