// Does an orchestrator's memory stay flat under connection churn (issue 16)? One phasekit-orchestrator
// (or PROCESSES of them sharing one port) holds STEADY Socket.IO WebSocket clients (bench/sio_clients.js
// workers of at most 12,500 each, each from its own source address 127.0.0.2, .3, …); then for MINUTES
// minutes CHURN clients, chosen at random, disconnect each second and as many new ones connect (the set
// stays about STEADY), while the orchestrator's RSS is sampled every 10 s. The first WARMUP_S seconds of
// churn are the warm-up (the allocator reaches its steady state); the RSS after it is the reference,
// and the run PASSes when the RSS at the end is within 5 % of it. Also reports connect failures and
// unexpected disconnects.
// With PROCESSES > 1 the orchestrators are started with REUSE_PORT=true on one free loopback port (each
// its own ADMIN_PORT, as in sio_scale.js), the kernel spreads the steady clients and the churn's new
// ones over them, every process's RSS is sampled every 10 s, and the run PASSes when the RSS summed
// over the processes at the end is within 5 % of the sum after the warm-up (each process's own change
// is printed too). A process that dies ends the run.
// Usage: node bench/sio_churn.js [steady=19000] [churn=200] [minutes=10] [warmup_s=60] [processes=1]
//        e.g. a short one: node bench/sio_churn.js 2000 20 1 10
//             over two processes: node bench/sio_churn.js 2000 20 1 10 2
// Run it from a shell with `ulimit -n 20000` (the hard limit here). One process holds at most its
// open-file limit of clients less its own descriptors and the connections churn has in flight: a
// STEADY over that (20,000 does not fit under 20,000 descriptors) is refused up front. Over several
// processes the kernel spreads clients by a hash of the addresses, not evenly: a STEADY of which one
// process can be expected to get more than that (a binomial share, 4 standard deviations above the
// mean, as sio_scale.js bounds it; 20,000 over 2 processes fits) is refused up front.
// Prints the samples, a summary table (with PROCESSES > 1 also a table per process), a PASS/FAIL line
// and a JSON line (`processes`, `perProcess` rows, and per-process arrays in each sample). Loopback
// only; bounded in count (16 processes) and time (60 minutes).
"use strict";
const fleet = require("./sio_fleet.js");

const steady = Number(process.argv[2] || 19000);
const churn = Number(process.argv[3] || 200);
const minutes = Number(process.argv[4] || 10);
const warmupS = Number(process.argv[5] || 60);
const processes = Number(process.argv[6] || 1);
const tolerancePct = 5;

const mib = (kib) => (kib === null ? null : +(kib / 1024).toFixed(1));
const sum = (xs) => xs.reduce((a, x) => a + (x || 0), 0);
const pct = (from, to) => (100 * (to - from)) / from;
const signed = (p) => `${p >= 0 ? "+" : ""}${p.toFixed(2)}%`;

fleet.run(async () => {
  if (!(Number.isInteger(processes) && processes >= 1 && processes <= 16)) throw new Error("processes: 1 to 16");
  const multi = processes > 1;
  // Churn closes and opens as many clients each second, and a closed one's descriptor may go a little
  // after the new one's comes (2,000 clients churned at 200/s on loopback: the server's sockets stayed
  // within 5 of its clients): room for a second of churn. Over several processes, SO_REUSEPORT picks
  // one by a hash of the connection's addresses: each holds a binomial share of the clients, a few
  // standard deviations above the mean at worst (with one process: all of them).
  const room = fleet.serverMaxClients - churn;
  const share = 1 / processes;
  const expectedMost = Math.ceil(steady * share + 4 * Math.sqrt(steady * share * (1 - share)));
  if (!(Number.isInteger(steady) && steady >= 1 && expectedMost <= room)) {
    throw new Error(
      multi
        ? `${steady} steady clients over ${processes} processes with ${churn}/s churn: one of them can expect up to ` +
            `${Number.isFinite(expectedMost) ? expectedMost : "?"}, and one process holds 1 to ${room} here (its open-file ` +
            `limit ${fleet.hardOpenFiles} less its own descriptors and a second of churn); use more processes`
        : `${steady} steady clients with ${churn}/s churn: one orchestrator holds 1 to ${room} here (its open-file ` +
            `limit ${fleet.hardOpenFiles}, which \`ulimit -Hn\` cannot raise, less its own descriptors and a second of churn)`,
    );
  }
  if (!(churn > 0 && churn <= Math.min(2000, steady))) throw new Error("churn: more than 0, at most 2,000/s and at most steady");
  if (!(minutes > 0 && minutes <= 60)) throw new Error("minutes: more than 0, at most 60");
  if (!(warmupS >= 0 && warmupS < minutes * 60)) throw new Error(`warmup_s: from 0 to less than the churn's ${minutes * 60} s`);

  const servers = [];
  if (multi) {
    const port = await fleet.freePort();
    for (let k = 0; k < processes; k++) servers.push(await fleet.startOrchestrator({ port, reusePort: true, name: `phasekit#${k}` }));
  } else {
    servers.push(await fleet.startOrchestrator());
  }
  const port = servers[0].port;
  const url = `http://127.0.0.1:${port}`;
  const rssAll = () => servers.map((s) => fleet.rssKiB(s.pid));
  await fleet.sleep(300);
  const before = rssAll();
  const clients = new fleet.Fleet(url, steady);
  console.error(
    `connecting ${steady} clients to ${url}${multi ? ` (${processes} processes)` : ""} from ${clients.workers.length} workers…`,
  );
  const connected = await clients.connect();
  if (connected.failed > 0) {
    throw new Error(`${connected.failed} of ${steady} steady clients did not connect: ${JSON.stringify(connected.failures)}`);
  }
  await fleet.sleep(1000);
  const held = rssAll();
  const heldSessions = await Promise.all(servers.map((s) => fleet.gauge(s.adminPort, "phasekit_engineio_sessions")));
  if (multi) console.error(`spread: ${heldSessions.map((n, k) => `#${k} ${n}`).join(", ")} sessions`);

  // A sample: the RSS, sessions and connections summed over the processes, and each process's.
  const sample = async (t) => {
    const rss = rssAll();
    const sessions = await Promise.all(servers.map((s) => fleet.gauge(s.adminPort, "phasekit_engineio_sessions")));
    const connections = await Promise.all(servers.map((s) => fleet.gauge(s.adminPort, "phasekit_http_connections")));
    return {
      t,
      rssMiB: mib(sum(rss)),
      sessions: sum(sessions),
      connections: sum(connections),
      rssMiBPerProcess: rss.map(mib),
      sessionsPerProcess: sessions,
      connectionsPerProcess: connections,
    };
  };
  const parts = (xs) => (multi ? ` (${xs.join(" + ")})` : "");
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
      console.error(
        `${s.t} s: RSS ${s.rssMiB} MiB${parts(s.rssMiBPerProcess)}, ${s.sessions} sessions${parts(s.sessionsPerProcess)}, ` +
          `${s.connections} connections`,
      );
    }, noteFailure);
  }, 10000);
  const warmTimer = setTimeout(() => sample(elapsed()).then((s) => (warm = s), noteFailure), warmupS * 1000);
  // A server that dies ends the run at once, saying so.
  const died = new Promise((_, reject) =>
    servers.forEach((server, k) =>
      server.child.once("exit", (code, signal) =>
        reject(
          new Error(
            `phasekit-orchestrator${multi ? ` #${k} (pid ${server.pid})` : ""} exited (${signal || code}) during the churn`,
          ),
        ),
      ),
    ),
  );
  const churned = await Promise.race([clients.churn(churn, minutes * 60), died]);
  clearInterval(sampler);
  clearTimeout(warmTimer);
  const end = await sample(elapsed());
  if (failure) throw failure;
  if (!warm) throw new Error("no RSS sample after the warm-up");
  const stats = await clients.stats();

  await clients.close();
  await Promise.all(servers.map((s) => fleet.stop(s.child)));

  // With several processes the criterion is on the sum; each process's change is shown beside it.
  const changePct = pct(warm.rssMiB, end.rssMiB);
  const pass = Math.abs(changePct) <= tolerancePct;
  const perProcess = servers.map((s, k) => ({
    process: `phasekit#${k}`,
    pid: s.pid,
    clients: heldSessions[k],
    rssBeforeMiB: mib(before[k]),
    rssSteadyMiB: mib(held[k]),
    kibPerConnection: heldSessions[k] ? +((held[k] - before[k]) / heldSessions[k]).toFixed(1) : null,
    rssAfterWarmupMiB: warm.rssMiBPerProcess[k],
    rssEndMiB: end.rssMiBPerProcess[k],
    rssChangePct: +pct(warm.rssMiBPerProcess[k], end.rssMiBPerProcess[k]).toFixed(2),
    sessionsAtEnd: end.sessionsPerProcess[k],
  }));
  const summary = {
    steady,
    churnPerSecond: churn,
    minutes,
    warmupS,
    ...(multi ? { processes, port } : {}),
    workers: clients.workers.length,
    rssBeforeMiB: mib(sum(before)),
    rssSteadyMiB: mib(sum(held)),
    kibPerConnection: +((sum(held) - sum(before)) / steady).toFixed(1),
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
  // The table shows the sums (with one process: its own) and, with several, each process's RSS.
  console.table(
    samples.map((s) => ({
      t: s.t,
      rssMiB: s.rssMiB,
      ...(multi ? Object.fromEntries(s.rssMiBPerProcess.map((r, k) => [`rssMiB#${k}`, r])) : {}),
      sessions: s.sessions,
      connections: s.connections,
      ...(s.at ? { at: s.at } : {}),
    })),
  );
  if (multi) {
    console.table([
      ...perProcess,
      {
        process: "all",
        pid: null,
        clients: sum(heldSessions),
        rssBeforeMiB: summary.rssBeforeMiB,
        rssSteadyMiB: summary.rssSteadyMiB,
        kibPerConnection: summary.kibPerConnection,
        rssAfterWarmupMiB: warm.rssMiB,
        rssEndMiB: end.rssMiB,
        rssChangePct: summary.rssChangePct,
        sessionsAtEnd: end.sessions,
      },
    ]);
  }
  console.table(Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v])));
  const each = multi
    ? `; per process: ${perProcess
        .map((p) => `#${p.process.split("#")[1]} ${p.rssAfterWarmupMiB} -> ${p.rssEndMiB} MiB (${signed(p.rssChangePct)})`)
        .join(", ")}`
    : "";
  console.log(
    `${pass ? "PASS" : "FAIL"}: end RSS ${multi ? `summed over ${processes} processes ` : ""}${end.rssMiB} MiB is ` +
      `${pass ? "within" : "not within"} ${tolerancePct}% of ` +
      `${warm.rssMiB} MiB after the ${warmupS} s warm-up (${signed(changePct)})${each}; ` +
      `${churned.failed} connect failures, ${summary.unexpectedDisconnects} unexpected disconnects`,
  );
  console.log(JSON.stringify({ ...summary, processes, perProcess, samples }));
});
