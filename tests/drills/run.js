// One drill: node run.js NAME. Starts the cluster (cluster.js), puts load on it from the client host
// (phasekit-load, through load.js), injects the drill's fault, heals it, lets the load run on, stops, and has the checker
// count every call (checker.js). Exit 0 only with 0 anomalies and the drill's own evidence that the
// fault bit (packets dropped, a lease lost, a result fenced). Prints the checker's table and one JSON
// summary line (what docs/reliability.md quotes). DRILL_DUMP=1 prints every process's last log lines
// after a passing drill too; DRILL_KEEP=1 keeps a failed drill's folder.
"use strict";
const path = require("node:path");
const { Cluster, waitFor } = require("./cluster.js");
const { available } = require("./topology.js");
const { check, table, readEffects } = require("./checker.js");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const okResults = (h, after = 0) => h.filter((e) => e.ev === "result" && e.exitCode === 0 && !e.code && e.t >= after);

/// Holds a fault minMs, and on until bitten(from) holds or maxMs have passed since `from`, looking every
/// 250 ms: a fault lasts until its evidence is in, which a fixed length could end before on a loaded
/// machine. Returns how long after `from` bitten() was first seen to hold (null: never), which the
/// drill bounds, so that a slow reaction still fails.
async function holdFault(from, minMs, maxMs, bitten) {
  let bittenMs = null;
  for (;;) {
    const elapsed = Date.now() - from;
    if (bittenMs === null && bitten(from)) bittenMs = elapsed;
    if (elapsed >= maxMs || (elapsed >= minMs && bittenMs !== null)) return bittenMs;
    await sleep(Math.min(250, Math.max(1, (bittenMs === null ? maxMs : minMs) - elapsed)));
  }
}

/// Drops everything between hosts a and b for ms (and on, up to maxMs, until bitten(faultAt)), then
/// heals: when it began and ended, when it bit, and the packets a's side dropped (0: the cut touched
/// nothing).
async function cutFor(c, a, b, ms, bitten = () => true, maxMs = ms) {
  const heal = c.topo.partition(a, b);
  const faultAt = Date.now();
  const bittenMs = await holdFault(faultAt, ms, maxMs, bitten);
  const dropped = c.topo.droppedPackets(a);
  heal();
  return { faultAt, healedAt: Date.now(), bittenMs, dropped };
}

/// What users saw between from and to while orch0 was cut off from redis: the refusals (UNAVAILABLE
/// among them), and the calls of orch1's users (odd-numbered: load.js spreads users by number) that succeeded.
function orch0CutSeen(h, from, to) {
  const during = h.filter((e) => e.t >= from && e.t <= to);
  const refusals = during.filter((e) => (e.ev === "refused" || e.ev === "approval_refused"));
  const unavailable = refusals.filter((e) => e.code === "UNAVAILABLE");
  const orch1Users = new Set(h.filter((e) => e.user && e.user.startsWith("du") && Number(e.user.replace(/^\D+/, "")) % 2 === 1).map((e) => e.user));
  const orch1Ok = okResults(during).filter((e) => orch1Users.has(e.user)).length;
  return { refusals, unavailable, orch1Ok };
}

/** Waits until `n` more calls succeeded than now (the load is flowing). */
async function flowing(client, n, ms, what) {
  const base = okResults(client.read()).length;
  await waitFor(() => okResults(client.read()).length >= base + n, ms, what);
}

const drills = {
  baseline: {
    cluster: {},
    load: { users: 4, commandSleepMs: 100 },
    async run(c, client) {
      await sleep(6000);
      return {};
    },
  },

  // SIGSTOP worker0 past its lease, then SIGCONT. worker0 takes up to 4 jobs but has one backend, so
  // when it stops it holds a job that runs and claimed jobs that have not started.
  worker_pause: {
    // 30 s, as a long GC pause or a VM stall; the lease is the default, 5 s. DRILL_PAUSE_MS shortens it.
    cluster: { leaseMs: 5000, workerEnv: [{ WORKER_CONCURRENCY: "4", POOL_MAX_SIZE: "1",
                                                 POOL_ACQUIRE_TIMEOUT_MS: "60000" }, {}] },
    load: { users: 6, commandSleepMs: 800 },
    async run(c) {
      const pausedMs = Number(process.env.DRILL_PAUSE_MS || 30000);
      c.signal("worker0", "SIGSTOP");
      const at = Date.now();
      await sleep(pausedMs);
      c.signal("worker0", "SIGCONT");
      return { injected: `SIGSTOP worker0 ${pausedMs} ms (lease ${c.leaseMs} ms)`, healedAt: Date.now(), faultAt: at };
    },
    evidence(c) {
      const lost = c.logged("worker0", "job.lease_lost");
      const fenced = c.logged("worker0", "queue.result_fenced");
      const notStarted = lost.filter((e) => /^before/.test(e.when));
      const midJob = lost.filter((e) => !/^before/.test(e.when))
        .concat(fenced);
      return {
        ok: notStarted.length > 0 && midJob.length > 0 && c.logged("worker0", "queue.new_incarnation").length > 0,
        facts: { notStartedAfterWake: notStarted.length, lateCompletionsRefused: midJob.length,
                 incarnations: c.logged("worker0", "queue.new_incarnation").length },
      };
    },
  },

  // worker0 <-> redis cut for 5 s, shorter than the lease: nothing is redelivered, results arrive late.
  worker_partition_short: {
    cluster: { leaseMs: 10000 },
    load: { users: 4, commandSleepMs: 200 },
    async run(c) {
      const facts = await cutFor(c, "worker0", "redis", 5000);
      return { injected: "iptables DROP worker0<->redis 5 s (lease 10 s)", ...facts };
    },
    evidence(c, facts) {
      return { ok: facts.dropped > 0, facts: { dropped: facts.dropped } };
    },
  },

  // worker0 <-> redis cut for 60 s, far longer than the lease (the default, 5 s): its jobs are
  // redelivered to worker1, and what it finishes meanwhile is refused. DRILL_CUT_MS shortens it.
  worker_partition_long: {
    cluster: { leaseMs: 5000 },
    load: { users: 4, commandSleepMs: 500 },
    async run(c) {
      const ms = Number(process.env.DRILL_CUT_MS || 60000);
      const facts = await cutFor(c, "worker0", "redis", ms);
      return { injected: `iptables DROP worker0<->redis ${ms / 1000} s (lease ${c.leaseMs} ms)`, ...facts };
    },
    evidence(c, facts) {
      const incarnations = c.logged("worker0", "queue.new_incarnation").length;
      return { ok: facts.dropped > 0 && incarnations > 0,
               facts: { dropped: facts.dropped, incarnations, fenced: c.logged("worker0", "queue.result_fenced").length,
                        leaseLost: c.logged("worker0", "job.lease_lost").length } };
    },
  },

  // redis killed with SIGKILL mid-load and started again 2 s later on its own files, with the
  // persistence deploy/docker-compose.yml ships (AOF, fsync every second): what was acknowledged in
  // the last second may be gone. Every call must still end, with its result or a clear error, never
  // hang; and the orchestrators and workers reconnect by themselves.
  redis_restart: {
    cluster: { redisArgs: ["--appendonly", "yes", "--appendfsync", "everysec"] },
    load: { users: 4, commandSleepMs: 200, resultWaitMs: 45000 },
    async run(c) {
      const before = c.pid("redis");
      c.signal("redis", "SIGKILL");
      const at = Date.now();
      await c.procs.get("redis").exited;
      await sleep(2000);
      await c.startRedis();
      return { injected: "SIGKILL redis, restarted after 2 s (appendonly yes, appendfsync everysec)",
               healedAt: Date.now(), faultAt: at, restarted: c.pid("redis") !== before,
               aofKeys: Number(c.redisCli("DBSIZE")) };
    },
    evidence(c, facts) {
      const reconnected = ["orch0", "orch1", "worker0", "worker1"].filter((n) => c.logs(n).some(
        (e) => /redis/.test(e.msg ?? "") && /reconnect|connected|restored|up/.test(e.msg ?? "")));
      return { ok: facts.restarted && facts.aofKeys > 0,
               facts: { keysAfterRestart: facts.aofKeys, reconnectLogs: reconnected.length } };
    },
  },

  // Two ways the workspace volume (one tmpfs for every orchestrator and worker, as
  // docker-compose.scale.yml shares one volume) runs out. First a user tries to fill it from their
  // own session, again and again for 6 s: each backend's workspace is a tmpfs of its own
  // (BACKEND_WORKSPACE_BYTES, 4 MiB here), so the writes stop there and the other users see nothing.
  // Then the volume itself is filled to its last byte by a ballast file for 5 s, as a host's disk
  // fills: calls that write fail with a clear error meanwhile; no session loses its files, and every
  // user goes on after.
  workspace_full: {
    cluster: { workspaceBytes: 64 << 20, commonEnv: { BACKEND_WORKSPACE_BYTES: process.env.DRILL_WORKSPACE_BYTES ?? String(4 << 20) } },
    load: { users: 4, commandSleepMs: 100, newFile: true },
    async run(c, client) {
      const attacker = c.startLoad({ users: 1, prefix: "x", urls: [c.urls()[0]], commandSleepMs: 0, pauseMs: 100,
                                     command: "rm -f fill; echo {op} >> effects.log && head -c 100M /dev/zero > fill" });
      await waitFor(() => attacker.read().filter((e) => e.ev === "result").length >= 3, 30000,
                    "the filling user's first calls");
      const attackFrom = Date.now();
      let leastFree = c.workspaceFree();
      while (Date.now() - attackFrom < 6000) {
        leastFree = Math.min(leastFree, c.workspaceFree());
        await sleep(50);
      }
      const attackTo = Date.now();
      await attacker.stop();
      await flowing(client, 4, 30000, "calls to succeed after the filling user left");
      const at = Date.now();
      const ballast = c.fillWorkspaces();
      // 5 s, and on (30 s at most) until a call has failed (the evidence wants one).
      const failedAfterMs = await holdFault(at, 5000, 30000, () => client.read().some(
        (e) => e.ev === "result" && e.t >= at && (e.code || (e.exitCode !== 0 && e.exitCode !== null))));
      c.freeWorkspaces();
      return { injected: `one user filling their workspace (bound 4 MiB) for 6 s, then the workspace volume ` +
                         `(tmpfs, 64 MiB) filled by a ${ballast}-byte ballast for ${Math.round((Date.now() - at) / 1000)} s`,
               faultAt: at, healedAt: Date.now(), failedAfterMs, ballast, attackFrom, attackTo, leastFree,
               clients: [attacker] };
    },
    evidence(c, facts, h) {
      // The filling user: their own writes failed, with the kernel's words.
      const mine = h.filter((e) => e.ev === "result" && e.user.startsWith("x") && e.t >= facts.attackFrom &&
                                   e.t <= facts.attackTo);
      const filled = mine.filter((e) => e.exitCode !== 0 && /No space left on device/.test(e.output ?? e.message ?? ""));
      // Everyone else, meanwhile: nothing but successes.
      const others = h.filter((e) => e.ev === "result" && !e.user.startsWith("x") && e.t >= facts.attackFrom &&
                                     e.t <= facts.attackTo);
      const othersFailed = others.filter((e) => e.code || e.exitCode !== 0);
      const during = h.filter((e) => e.ev === "result" && e.t >= facts.faultAt && e.t <= facts.healedAt + 500);
      const failed = during.filter((e) => e.code || (e.exitCode !== 0 && e.exitCode !== null));
      return { ok: filled.length > 0 && filled.length === mine.length && others.length > 0 && othersFailed.length === 0 &&
                   facts.leastFree > (16 << 20) && facts.ballast > 0 && failed.length > 0 &&
                   facts.failedAfterMs !== null && facts.failedAfterMs <= 10000,  // the next call that writes fails
               facts: { failedAfterMs: facts.failedAfterMs, fillingUserCalls: mine.length, fillingUserNoSpace: filled.length, othersCallsMeanwhile: others.length,
                        othersFailedMeanwhile: othersFailed.length, volumeLeastFreeMiB: Math.round(facts.leastFree / 1048576),
                        failedDuring: failed.length, okDuring: during.length - failed.length,
                        example: failed[0] ? `${failed[0].code ?? `exit ${failed[0].exitCode}`}: ${failed[0].message ?? ""}` : null } };
    },
  },

  // The balancer (HAProxy, deploy/haproxy.cfg) cut off from orch0 for 15 s: orch0's users lose their
  // sockets (pings stop), reconnect through the balancer, which sends them to orch1 once its health
  // checks mark orch0 down, and resume their sessions there (socket.io's pid, the store's record and
  // the shared workspace volume): files, calls and history intact.
  balancer_partition: {
    cluster: { balancer: true, orchestratorEnv: { PING_INTERVAL_MS: "1000", PING_TIMEOUT_MS: "1000" } },
    load: { users: 4, commandSleepMs: 200 },
    async run(c, client) {
      // 15 s, and on (60 s at most) until a user has reconnected and orch1 has resumed a session.
      const moved = (faultAt) => c.logged("orch1", "session.resumed").length > 0 &&
        client.read().some((e) => e.ev === "reconnected" && e.t >= faultAt);
      const facts = await cutFor(c, "balancer", "orch0", 15000, moved, 60000);
      return { injected: `iptables DROP balancer<->orch0 ${Math.round((facts.healedAt - facts.faultAt) / 1000)} s ` +
                         "(ping 1 s + 1 s)", ...facts, orch0DownSeen: (c.balancerStats() || []).length };
    },
    evidence(c, facts, h) {
      const moved = c.logged("orch1", "session.resumed").length;
      const back = h.filter((e) => e.ev === "reconnected" && e.t >= facts.faultAt && e.t <= facts.healedAt);
      const movedUsers = [...new Set(back.map((e) => e.user))];
      // When each user that reconnected during the cut succeeded again (from the fault).
      const okAfter = (u) => Math.min(...h.filter((e) => e.user === u && e.ev === "result" && e.exitCode === 0 &&
                                                      !e.code && e.t >= facts.faultAt).map((e) => e.t)) - facts.faultAt;
      const movedBackMs = Math.max(0, ...movedUsers.map(okAfter));
      const replayed = c.logged("orch1", "session.replayed").reduce((n, e) => n + (e.results || 0), 0);
      // A user has reconnected and resumed on orch1 about 2 s into the cut (ping 1 s + 1 s), and its
      // calls succeed about 7 s in (HAProxy's connect timeout 5 s, then its redispatch); 30 s for the
      // first leaves a loaded machine room and still fails a failover gone slow.
      return { ok: facts.dropped > 0 && moved > 0 && back.length > 0 && back.every((e) => e.recovered) &&
                   facts.bittenMs !== null && facts.bittenMs <= 30000,
               facts: { dropped: facts.dropped, movedAfterMs: facts.bittenMs, sessionsResumedOnOrch1: moved,
                        usersMoved: movedUsers.length,
                        resultsReplayed: replayed,
                        allRecovered: back.every((e) => e.recovered), movedUsersOkAfterMs: movedBackMs } };
    },
  },

  // orch0 <-> redis cut for 6 s: its users get UNAVAILABLE fast, orch1's are untouched, and orch0's
  // sessions go on after the heal. A probe (2 users on orch0, connected before the cut) calls
  // while it lasts, one call every 300 ms, so that what a user sees during a cut is measured.
  orchestrator_partition: {
    cluster: {},
    load: { users: 4, commandSleepMs: 100 },
    async run(c, client) {
      const probe = c.startLoad({ users: 2, prefix: "p", urls: [c.urls()[0]], commandSleepMs: 0, pauseMs: 300,
                                  resultWaitMs: 30000 });
      await waitFor(() => probe.read().filter((e) => e.ev === "connected").length === 2, 15000, "the probe to connect");
      // 6 s, and on (30 s at most) until orch0 has refused a call and an orch1 user has succeeded.
      const bitten = (faultAt) => {
        const { unavailable, orch1Ok } = orch0CutSeen([...client.read(), ...probe.read()], faultAt, Date.now());
        return unavailable.length > 0 && orch1Ok > 0;
      };
      const facts = await cutFor(c, "orch0", "redis", 6000, bitten, 30000);
      return { injected: `iptables DROP orch0<->redis ${Math.round((facts.healedAt - facts.faultAt) / 1000)} s`, ...facts,
               clients: [probe] };
    },
    evidence(c, facts, h) {
      const { refusals, unavailable, orch1Ok } = orch0CutSeen(h, facts.faultAt, facts.healedAt);
      const slowest = Math.max(0, ...unavailable.map((e) => e.ms || 0));
      // The first refusal comes after the 3 s redis command timeout, the rest at once (breaker open);
      // 10 s for either leaves a loaded machine room and still fails a longer timeout or no breaker.
      return { ok: facts.dropped > 0 && unavailable.length > 0 && orch1Ok > 0 && facts.bittenMs !== null &&
                   facts.bittenMs <= 10000 && slowest <= 10000,
               facts: { dropped: facts.dropped, refusedAfterMs: facts.bittenMs, unavailableDuring: unavailable.length,
                        otherCodesDuring: refusals.length - unavailable.length, slowestUnavailableMs: slowest,
                        orch1OkDuring: orch1Ok } };
    },
  },
};

async function main() {
  const name = process.argv[2];
  const drill = drills[name];
  if (!drill) throw new Error(`no drill ${name}: ${Object.keys(drills).join(", ")}`);
  const can = available();
  if (!can.ok) {
    console.log(`drill ${name} skipped: network namespaces unavailable (${can.why})`);
    process.exit(77);
  }
  const t0 = Date.now();
  const c = await new Cluster(drill.cluster).start();
  let failed = true;
  try {
    const client = c.startLoad(drill.load);
    await flowing(client, 8, 30000, "calls to succeed before the fault");
    const facts = await drill.run(c, client);
    // Recovery: the first call sent after the heal that succeeded, then enough more to show it flows.
    const healedAt = facts.healedAt ?? Date.now();
    const users = drill.load.users;
    await waitFor(() => new Set(okResults(client.read(), healedAt).map((e) => e.user)).size === users, 60000,
                  "every user to succeed again after the heal");
    const recoveryMs = Math.min(...okResults(client.read(), healedAt).map((e) => e.t)) - healedAt;
    const allBackMs = Math.max(...[...new Set(okResults(client.read(), healedAt).map((e) => e.user))]
      .map((u) => Math.min(...okResults(client.read(), healedAt).filter((e) => e.user === u).map((e) => e.t)))) - healedAt;
    await client.stop();
    for (const extra of facts.clients ?? []) await extra.stop();
    const history = [client, ...(facts.clients ?? [])].flatMap((x) => x.read());
    const result = check(history, readEffects(path.join(c.workspaces, "sessions")));
    console.log(`drill ${name}: ${facts.injected ?? "no fault"}`);
    console.log(table(result));
    // Some evidence is in logs that reach us through pipes after the heal: judged until it holds (15 s).
    const judge = () => (drill.evidence ? drill.evidence(c, facts, history) : { ok: true, facts: {} });
    let evidence = judge();
    for (const until = Date.now() + 15000; !evidence.ok && Date.now() < until; evidence = judge()) await sleep(100);
    // What users read: each error result's code and message, counted.
    const said = {};
    for (const e of history.filter((x) => x.ev === "result" && x.code)) {
      const key = `${e.code}: ${String(e.message ?? "").slice(0, 90)}`;
      said[key] = (said[key] || 0) + 1;
    }
    const summary = { drill: name, injected: facts.injected ?? "none", counts: result.counts, calls: result.calls,
                      approved: result.approvedCalls, ok: result.okResults, errors: result.codes, errorsSaid: said,
                      redelivered: result.redeliveredResults, effectsTwice: result.redeliveries, recoveryMs: facts.healedAt ? recoveryMs : null,
                      allUsersBackMs: facts.healedAt ? allBackMs : null, evidence: evidence.facts,
                      seconds: Math.round((Date.now() - t0) / 100) / 10 };
    console.log(JSON.stringify(summary));
    if (process.env.DRILL_DUMP === "1") console.log(c.dump(80));
    if (result.anomalies.length > 0) throw new Error(`${result.anomalies.length} anomalies`);
    if (!evidence.ok) throw new Error(`the fault did not bite as the drill needs: ${JSON.stringify(evidence.facts)}`);
    failed = false;
  } catch (e) {
    console.log(`drill ${name} FAILED: ${e.message}`);
    console.log(c.dump(25));
  } finally {
    await c.stop({ keep: failed && process.env.DRILL_KEEP === "1" });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
