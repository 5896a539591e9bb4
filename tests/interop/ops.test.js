// What operators rely on: /health, /ready (503 from SIGTERM on), /metrics that promtool accepts,
// /stats/pool and /api/circuit-breakers on the admin listener only, sessions released after
// SESSION_GRACE_MS with their workspace, and a SIGTERM drain that lets work in flight finish, tells
// clients why, and exits 0.
"use strict";
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const { startServer, request, connect, runTool, whenFileThen, once } = require("./support.js");

/** GET on the public listener (PORT), or on the admin listener with { admin: true }. */
async function get(server, path, { admin = false } = {}) {
  const { status, body } = await request(server, { path, admin });
  return { status, body };
}

async function waitFor(what, predicate, timeoutMs = 10000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`${what} did not happen within ${timeoutMs} ms`);
}

describe("operations", () => {
  it("serves /health, /ready, /stats/pool and promtool-clean /metrics", async () => {
    const server = await startServer();
    try {
      assert.deepEqual(await get(server, "/health"), { status: 200, body: '{"status":"ok"}' });
      assert.equal((await get(server, "/ready")).status, 200);
      const socket = await connect(server, "metrics-user");
      await runTool(socket, "echo count me");
      await socket.emitWithAck("frobnicate");
      socket.close();
      const pool = JSON.parse((await get(server, "/stats/pool", { admin: true })).body);
      for (const key of ["idle", "active", "total", "minPoolSize", "maxPoolSize", "acquisitions", "waits", "evictions"]) {
        assert.ok(key in pool, `/stats/pool has ${key}`);
      }
      assert.equal(pool.acquisitions.cold, 1);
      const metrics = await get(server, "/metrics", { admin: true });
      assert.equal(metrics.status, 200);
      for (const name of [
        "phasekit_sessions",
        'phasekit_events_total{event="message",outcome="ok"} 1',
        'phasekit_events_total{event="unknown",outcome="bad_request"} 1',
        "phasekit_event_duration_seconds_bucket",
        'phasekit_backend_acquire_seconds_count{source="cold"} 1',
        'phasekit_jobs_total{outcome="ok"} 1',
        "phasekit_process_resident_memory_bytes",
      ]) {
        assert.ok(metrics.body.includes(name), `/metrics has ${name}`);
      }
      const lint = spawnSync("promtool", ["check", "metrics"], { input: metrics.body, encoding: "utf8" });
      assert.equal(lint.status, 0, `promtool check metrics: ${lint.stdout}${lint.stderr}`);
    } finally {
      await server.stop();
    }
  });

  // Finding 9: the operations routes were served to anyone who reached PORT.
  it("serves the operations routes on ADMIN_PORT (loopback) only: PORT answers 404 for them", async () => {
    const server = await startServer();
    try {
      assert.notEqual(server.adminPort, server.port);
      for (const path of ["/metrics", "/stats/pool", "/api/circuit-breakers", "/metrics?x=1"]) {
        const pub = await get(server, path);
        assert.equal(pub.status, 404, `${path} on PORT: ${pub.body.slice(0, 80)}`);
        assert.ok(!pub.body.includes("phasekit_"), `${path} on PORT leaks nothing`);
        assert.equal((await get(server, path, { admin: true })).status, 200, `${path} on ADMIN_PORT`);
      }
      for (const path of ["/health", "/ready"]) {
        assert.equal((await get(server, path)).status, 200, `${path} on PORT, for balancers and probes`);
        assert.equal((await get(server, path, { admin: true })).status, 200, `${path} on ADMIN_PORT`);
      }
      assert.equal((await get(server, "/socket.io/?EIO=4&transport=polling", { admin: true })).status, 404,
        "no Socket.IO on the admin listener");
      const listening = server.logs.find((e) => e.msg === "server.listening");
      assert.equal(listening.admin_address, "127.0.0.1", "loopback unless ADMIN_BIND_ADDRESS says otherwise");
    } finally {
      await server.stop();
    }
  });

  it("raises its open-file limit to the hard one, and says at start when MAX_CONNECTIONS cannot fit", async () => {
    // Each client is a descriptor; a soft limit of 256 (or systemd's 1,024) would refuse clients at
    // accept long before MAX_CONNECTIONS.
    const limits = (pid) => {
      const line = fs.readFileSync(`/proc/${pid}/limits`, "utf8").split("\n").find((l) => l.startsWith("Max open files"));
      const [soft, hard] = line.trim().split(/\s+/).slice(3, 5);
      return { soft, hard };
    };
    const launcher = ["prlimit", "--nofile=256:", "--"];
    const server = await startServer({ LOG_LEVEL: "debug", MAX_CONNECTIONS: "1000" }, {}, { launcher });
    try {
      const { soft, hard } = limits(server.child.pid);
      assert.notEqual(soft, "256", "the soft limit it was started with stayed");
      assert.equal(soft, hard);
      assert.ok(!server.logs.some((l) => l.msg === "process.open_files_short"), JSON.stringify(server.logs));
      // What the process may open, a user's command may not: a backend keeps BACKEND_OPEN_FILES.
      const socket = await connect(server, "many-files");
      const result = await runTool(socket, "ulimit -Sn; ulimit -Hn");
      socket.close();
      assert.equal(result.output, "1024\n1024\n", JSON.stringify(result));
    } finally {
      await server.stop();
    }
    const { hard } = limits(process.pid);
    if (hard === "unlimited") return;
    const short = await startServer({ MAX_CONNECTIONS: String(Number(hard) + 1) }, {}, { launcher });
    try {
      const warning = short.logs.find((l) => l.msg === "process.open_files_short");
      assert.ok(warning, JSON.stringify(short.logs));
      assert.equal(warning.level, "warn");
      assert.equal(warning.limit, Number(hard));
      assert.match(warning.detail, /LimitNOFILE/);
    } finally {
      await short.stop();
    }
  });

  it("shares PORT between processes with REUSE_PORT=true, and refuses to share it without", async () => {
    const first = await startServer({ REUSE_PORT: "true", AUTH_MODE: "none" });
    const servers = [first];
    try {
      await assert.rejects(startServer({ PORT: String(first.port), AUTH_MODE: "none" }), /exited/,
                           "a second process bound the port without REUSE_PORT");
      servers.push(await startServer({ PORT: String(first.port), REUSE_PORT: "true", AUTH_MODE: "none" }));
      const sockets = await Promise.all(Array.from({ length: 40 }, () => connect(first)));
      // The kernel spreads connections by their addresses' hash: all 40 on one process is a 2^-39 chance.
      const sessions = async (server) => {
        const { body } = await get(server, "/metrics", { admin: true });
        return Number(/^phasekit_engineio_sessions (\d+)/m.exec(body)?.[1] ?? 0);
      };
      const counts = await Promise.all(servers.map(sessions));
      assert.equal(counts[0] + counts[1], 40, JSON.stringify(counts));
      assert.ok(counts[0] > 0 && counts[1] > 0, `one process got every connection: ${JSON.stringify(counts)}`);
      sockets.forEach((s) => s.close());
    } finally {
      for (const server of servers) await server.stop();
    }
  });

  it("runs IO_THREADS threads for its connections, one per core by default", async () => {
    const cores = require("node:os").availableParallelism();
    for (const [env, expected] of [[{}, cores], [{ IO_THREADS: "1" }, 1], [{ IO_THREADS: "3" }, 3]]) {
      const server = await startServer({ AUTH_MODE: "none", ...env });
      try {
        const listening = server.logs.find((e) => e.msg === "server.listening");
        assert.equal(listening.threads, expected, JSON.stringify(env));
        const socket = await connect(server);  // and it serves
        socket.close();
      } finally {
        await server.stop();
      }
    }
    await assert.rejects(startServer({ IO_THREADS: "-1" }), /exited/, "a negative IO_THREADS was taken");
  });

  it("ends a disconnected session after SESSION_GRACE_MS and removes its workspace", async () => {
    const server = await startServer({ SESSION_GRACE_MS: "300" });
    try {
      const socket = await connect(server, "grace-user");
      const workspace = (await runTool(socket, "pwd")).output.trim();
      assert.ok(fs.existsSync(workspace), workspace);
      socket.close();
      await waitFor("workspace removal", () => !fs.existsSync(workspace));
      await waitFor("session end", async () => (await get(server, "/metrics", { admin: true })).body.includes("\nphasekit_sessions 0\n"));
    } finally {
      await server.stop();
    }
  });

  it("is ready only once the warm pool holds its POOL_MIN_SIZE idle backends", async () => {
    const server = await startServer({ ENABLE_CONTAINER_POOL: "true", POOL_MIN_SIZE: "20" });
    try {
      assert.equal((await get(server, "/health")).status, 200, "alive while it warms");
      await waitFor("/ready 200", async () => (await get(server, "/ready")).status === 200, 30000);
      const pool = JSON.parse((await get(server, "/stats/pool", { admin: true })).body);
      assert.ok(pool.idle >= 20, `ready with ${pool.idle} idle backends of 20`);
      const ready = server.logs.find((e) => e.msg === "server.ready");
      assert.ok(ready && ready.idle_backends >= 20, JSON.stringify(ready));
    } finally {
      await server.stop();
    }
  });

  it("drains on SIGTERM: /ready 503, work in flight finishes, clients are told, exit 0", async () => {
    const server = await startServer({ SHUTDOWN_GRACE_MS: "10000" });
    const socket = await connect(server, "drain-user");
    // The job in flight waits for a file the test makes only once the drain has been seen, so it is
    // still running then however slow the machine (a `sleep 1` could end first, and the drain with it).
    const workspace = (await runTool(socket, "pwd")).output.trim();
    const ack = await socket.emitWithAck("message", whenFileThen("go", "echo finished", 30));
    const result = once(socket, "tool:result", 45000);
    const disconnected = once(socket, "disconnect", 45000);
    assert.equal((await socket.emitWithAck("tool:approval", { callId: ack.callId, approved: true })).ok, true);
    server.child.kill("SIGTERM");
    await waitFor("/ready 503", async () => (await get(server, "/ready")).status === 503);
    const late = await socket.timeout(10000).emitWithAck("message", "echo too late");
    assert.deepEqual([late.ok, late.code], [false, "UNAVAILABLE"]);
    fs.writeFileSync(`${workspace}/go`, "");
    const [finished] = await result;
    assert.equal(finished.output, "finished\n", `the job in flight completed: ${JSON.stringify(finished)}`);
    const [reason] = await disconnected;
    assert.equal(reason, "io server disconnect");
    const { code } = await server.exited;
    assert.equal(code, 0);
    // 'exit' can come before the last lines on its stdout are read.
    await waitFor("shutdown.done in the log", () => server.logs.some((l) => l.msg === "shutdown.done"));
    await server.stop();
  });
});
