// Phase 2-3 scale-out end to end, through deploy/local/phasekit-local.sh: redis-server, two
// orchestrators behind nginx (and a phasekit-worker in phase 3), official socket.io-client.
//  * a client's session survives the SIGKILL of the instance it was on: it reconnects through the
//    balancer, resumes (Socket.IO pid) on the other instance, and finds its cwd, exports, files and
//    conversation history;
//  * redis restarted mid-run: requests fail fast with UNAVAILABLE while it is down (breaker open),
//    and everything recovers by itself when it is back.
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { io, token, runTool, SECRET } = require("../interop/support.js");

const launcher = path.join(process.env.PHASEKIT_SOURCE_DIR, "deploy/local/phasekit-local.sh");
const binDir = path.dirname(process.env.ORCHESTRATOR_BIN);

function start(phase, extraEnv = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `phasekit-local-${phase}-`));
  execFileSync(launcher, ["start", "-n", "2", "-m", "1", "--phase", String(phase), "--dir", dir, "--bin", binDir], {
    env: {
      PATH: process.env.PATH,
      AUTH_MODE: "token",
      AUTH_SECRET: SECRET,
      SESSION_GRACE_MS: "60000",
      POOL_MIN_SIZE: "2",
      LOG_LEVEL: "info",
      ...extraEnv,
    },
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 120000,
  });
  const state = Object.fromEntries(
    fs.readFileSync(path.join(dir, "state.env"), "utf8").trim().split("\n").map((l) => {
      const i = l.indexOf("=");
      return [l.slice(0, i), l.slice(i + 1).replace(/^"|"$/g, "")];
    }),
  );
  return {
    dir,
    state,
    orchestratorPorts: state.ORCHESTRATOR_PORTS.split(" ").map(Number),
    // /metrics and /api/* are on each orchestrator's ADMIN_PORT.
    orchestratorAdminPorts: state.ORCHESTRATOR_ADMIN_PORTS.split(" ").map(Number),
    orchestratorPids: state.ORCHESTRATOR_PIDS.split(" ").map(Number),
    stop() {
      execFileSync(launcher, ["stop", "--dir", dir], { stdio: "ignore", timeout: 60000 });
      fs.rmSync(dir, { recursive: true, force: true });
    },
    logs() {
      return fs.readdirSync(dir).filter((f) => f.endsWith(".log"))
        .map((f) => `--- ${f}\n${fs.readFileSync(path.join(dir, f), "utf8").slice(-3000)}`).join("\n");
    },
  };
}

async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

async function waitFor(pred, ms, what) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function connectThroughBalancer(url, user) {
  // Websocket only: nginx here balances without stickiness (see phasekit-local.sh).
  const socket = io(url, {
    transports: ["websocket"],
    auth: { token: token(user) },
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("connect timeout")), 15000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
  });
}

for (const phase of [2, 3]) {
  test(`phase ${phase}: a session survives the SIGKILL of its instance`, { timeout: 180000 }, async () => {
    const local = start(phase);
    let socket;
    try {
      socket = await connectThroughBalancer(local.state.LB_URL, "alice");
      const first = await runTool(socket,
        "mkdir -p work/deep && cd work/deep && export PROJECT=phasekit && echo kept > note.txt && echo done");
      assert.strictEqual(first.exitCode, 0, JSON.stringify(first));
      assert.strictEqual(first.output, "done\n");

      // Which instance holds the socket: the one that counts a session.
      const holder = await waitFor(async () => {
        for (let i = 0; i < 2; i++) {
          if ((await metric(local.orchestratorAdminPorts[i], "phasekit_sessions")) === 1) return { i };
        }
        return undefined;
      }, 10000, "the instance holding the session");
      let timer;
      const reconnected = new Promise((resolve, reject) => {
        socket.io.once("reconnect", resolve);
        timer = setTimeout(() => reject(new Error("no reconnect within 30 s")), 30000);
      });
      process.kill(local.orchestratorPids[holder.i], "SIGKILL");
      await reconnected.finally(() => clearTimeout(timer));
      await waitFor(() => socket.connected, 10000, "the socket to connect again");
      assert.strictEqual(socket.recovered, true, "the server did not resume the session (pid)");
      const other = 1 - holder.i;
      assert.strictEqual(await metric(local.orchestratorAdminPorts[other], "phasekit_sessions"), 1);

      const after = await runTool(socket, 'printf "%s|%s|%s" "${PWD#$HOME/}" "$PROJECT" "$(cat note.txt)"', 30000);
      assert.strictEqual(after.exitCode, 0, JSON.stringify(after));
      assert.strictEqual(after.output, "work/deep|phasekit|kept");

      const history = await socket.timeout(10000).emitWithAck("session:history");
      assert.strictEqual(history.ok, true, JSON.stringify(history));
      const messages = history.entries.filter((e) => e.role === "user").map((e) => e.message);
      assert.ok(messages[0].startsWith("mkdir -p work/deep"), JSON.stringify(history.entries));
      assert.strictEqual(messages.length, 2);
      const results = history.entries.filter((e) => e.role === "tool").map((e) => e.result.output);
      assert.deepStrictEqual(results, ["done\n", "work/deep|phasekit|kept"]);
    } catch (e) {
      e.message += `\n${local.logs()}`;
      throw e;
    } finally {
      if (socket) socket.close();
      local.stop();
    }
  });
}

test("redis restarted mid-run: UNAVAILABLE fast while down, recovery by itself", { timeout: 180000 }, async () => {
  const local = start(2, {
    CIRCUIT_BREAKER_VOLUME_THRESHOLD: "2",
    CIRCUIT_BREAKER_RESET_TIMEOUT_MS: "1000",
    CIRCUIT_BREAKER_TIMEOUT_MS: "1000",
  });
  let socket;
  try {
    socket = await connectThroughBalancer(local.state.LB_URL, "bob");
    const before = await runTool(socket, "echo up");
    assert.strictEqual(before.output, "up\n");

    const redisPort = Number(local.state.REDIS_PORT);
    process.kill(Number(local.state.REDIS_PID), "SIGKILL");
    // While it is down: every message is refused with UNAVAILABLE, and soon without waiting on redis.
    const timings = [];
    for (let i = 0; i < 8; i++) {
      const t0 = Date.now();
      const ack = await socket.timeout(10000).emitWithAck("message", "echo while down");
      timings.push(Date.now() - t0);
      assert.strictEqual(ack.ok, false, JSON.stringify(ack));
      assert.strictEqual(ack.code, "UNAVAILABLE", JSON.stringify(ack));
    }
    const breakers = await Promise.all(local.orchestratorAdminPorts.map(async (p) =>
      (await (await fetch(`http://127.0.0.1:${p}/api/circuit-breakers`)).json())));
    assert.ok(breakers.some((b) => b.redis && b.redis.state === "open"), JSON.stringify(breakers));
    assert.ok(Math.min(...timings.slice(-3)) < 100, `not failing fast: ${timings.join(", ")} ms`);

    // Back on the same port: the client reconnects, the breaker probes and closes, calls work again.
    const redis = require("node:child_process").spawn("redis-server",
      ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", local.dir],
      { stdio: "ignore", detached: false });
    try {
      const result = await waitFor(async () => {
        const ack = await socket.timeout(10000).emitWithAck("message", "echo back");
        if (!ack.ok) return undefined;
        const r = new Promise((resolve) => socket.once("tool:result", resolve));
        const approval = await socket.timeout(10000).emitWithAck("tool:approval", { callId: ack.callId, approved: true });
        assert.strictEqual(approval.ok, true, JSON.stringify(approval));
        return r;
      }, 30000, "calls to work again after redis returned");
      assert.strictEqual(result.output, "back\n");
    } finally {
      redis.kill("SIGTERM");
    }
  } catch (e) {
    e.message += `\n${local.logs()}`;
    throw e;
  } finally {
    if (socket) socket.close();
    local.stop();
  }
});
