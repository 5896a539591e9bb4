// The phase 3 cluster of the drills, each process in its own simulated host (topology.js): redis,
// two orchestrators and two phasekit-workers (queue=redis, store=redis), plus a host for the
// clients. Every process is started for real, waited for on its ready line, and stopped by its PID;
// the namespaces and the run's folder are deleted in stop(), whatever happened.
"use strict";
const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");
const { Topology } = require("./topology.js");
const load = require("./load.js");
const { spawnListening, waitFor } = require("../support/node/server_process.js");

const SECRET = "drills-secret-0123456789abcdef0123456789abcd";
const PORT = 8080;


class Cluster {
  constructor({ leaseMs = 2000, workerEnv = [{}, {}], orchestratorEnv = {}, commonEnv = {}, redisArgs = [],
                workspaceBytes = 0, balancer = false } = {}) {
    this.leaseMs = leaseMs;
    this.commonEnv = commonEnv;  // every orchestrator's and worker's
    this.orchestratorEnv = orchestratorEnv;
    this.balancer = balancer;  // HAProxy, with deploy/haproxy.cfg, in a host of its own: clients go through it
    this.workspaceBytes = workspaceBytes;  // > 0: the workspace volume is a tmpfs of this size
    this.workerEnv = workerEnv;
    this.redisArgs = redisArgs;
    this.topo = new Topology(["redis", "orch0", "orch1", "worker0", "worker1", "client",
                              ...(balancer ? ["balancer"] : [])]);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "phasekit-drill-"));
    fs.chmodSync(this.dir, 0o711);
    this.workspaces = path.join(this.dir, "workspaces");
    fs.mkdirSync(this.workspaces);
    fs.chmodSync(this.workspaces, 0o711);
    this.procs = new Map();  // name -> {child, exited, logs}
    this.binDir = path.dirname(process.env.ORCHESTRATOR_BIN);
  }

  env(extra) {
    return {
      PATH: process.env.PATH,
      PHASE: "3",
      ENABLE_WORKER_MODE: "true",
      REDIS_URL: `redis://${this.topo.ip("redis")}:6379`,
      BIND_ADDRESS: "0.0.0.0",
      PORT: String(PORT),
      ADMIN_PORT: "9090",
      AUTH_MODE: "token",
      AUTH_SECRET: SECRET,
      WORKSPACE_ROOT: this.workspaces,
      LOG_LEVEL: "info",
      MAX_CONNECTIONS_PER_ADDRESS: "0",
      SESSION_GRACE_MS: "60000",
      JOB_LEASE_MS: String(this.leaseMs),
      ...this.commonEnv,
      ...extra,
    };
  }

  async start() {
    this.topo.up();
    try {
      if (this.workspaceBytes > 0) {
        // Before any process starts: `ip netns exec` gives each a mount namespace of its own.
        execFileSync("mount", ["-t", "tmpfs", "-o", `size=${this.workspaceBytes},mode=0711`, "drill-workspaces",
                               this.workspaces]);
        this.mounted = true;
      }
      await this.startRedis();
      await Promise.all([0, 1].map((i) => this.startOrchestrator(i)));
      await Promise.all([0, 1].map((i) => this.startWorker(i)));
      if (this.balancer) await this.startBalancer();
    } catch (e) {
      await this.stop();
      throw e;
    }
    return this;
  }

  async startRedis() {
    // redisArgs come last: a later option of the same name wins (the shipped AOF settings, in drills).
    const args = ["netns", "exec", this.topo.host("redis").ns, "redis-server", "--port", "6379", "--bind",
                  this.topo.ip("redis"), "--protected-mode", "no", "--save", "", "--appendonly", "no",
                  "--dir", this.dir, ...this.redisArgs];
    const child = spawn("ip", args, { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    const logs = [];
    readline.createInterface({ input: child.stdout }).on("line", (l) => logs.push({ unparsable: l }));
    this.procs.set("redis", { child, exited, logs });
    await waitFor(() => this.redisCli("PING") === "PONG", 10000, "redis-server");
  }

  /** One redis command from the redis host (its own namespace: always reachable). */
  redisCli(...args) {
    try {
      return execFileSync("ip", ["netns", "exec", this.topo.host("redis").ns, "redis-cli", "-h", this.topo.ip("redis"),
                                 "-p", "6379", ...args], { timeout: 5000, stdio: ["ignore", "pipe", "ignore"] })
        .toString().trim();
    } catch {
      return null;
    }
  }

  async spawnIn(host, name, bin, env, readyMsg) {
    const started = await spawnListening("ip", env, {}, 30000, readyMsg, ["netns", "exec", this.topo.host(host).ns, bin]);
    this.procs.set(name, started);
    return started;
  }

  async startOrchestrator(i) {
    await this.spawnIn(`orch${i}`, `orch${i}`, path.join(this.binDir, "phasekit-orchestrator"),
                       this.env(this.orchestratorEnv), "server.listening");
  }

  /** HAProxy with the shipped deploy/haproxy.cfg, its two orchestrators named instead of found by DNS. */
  async startBalancer() {
    const source = process.env.PHASEKIT_SOURCE_DIR || path.join(__dirname, "..", "..");
    const shipped = fs.readFileSync(path.join(source, "deploy", "haproxy.cfg"), "utf8");
    const servers = [0, 1].map((i) => `  server orch${i} ${this.topo.ip(`orch${i}`)}:${PORT}`).join("\n");
    const cfg = shipped.replace(/^resolvers docker\n(?:  .*\n)+/m, "")
      .replace(/^ *server-template .*$/m, servers);
    if (cfg === shipped || /resolvers|server-template/.test(cfg.replace(/^\s*#.*$/gm, ""))) {
      throw new Error("deploy/haproxy.cfg changed shape: the drills cannot name their orchestrators in it");
    }
    const file = path.join(this.dir, "haproxy.cfg");
    fs.writeFileSync(file, cfg);
    const child = spawn("ip", ["netns", "exec", this.topo.host("balancer").ns, "haproxy", "-db", "-f", file],
                        { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    const logs = [];
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on("line", (l) => logs.push({ unparsable: l }));
    }
    this.procs.set("balancer", { child, exited, logs });
    // Up when its health checks say both orchestrators are (the stats page, as CSV).
    await waitFor(() => (this.balancerStats() || []).filter((r) => r.status === "UP").length === 2, 20000,
                  "haproxy to see both orchestrators up");
  }

  /** The balancer's view of its orchestrators: [{name, status}] (status UP, DOWN, …). */
  balancerStats() {
    try {
      const csv = execFileSync("ip", ["netns", "exec", this.topo.host("client").ns, "curl", "-sf", "--max-time", "2",
                                      `http://${this.topo.ip("balancer")}:8404/;csv`], { stdio: ["ignore", "pipe", "ignore"] })
        .toString();
      const rows = csv.split("\n").map((l) => l.split(","));
      const col = rows[0].indexOf("status");
      return rows.filter((r) => r[0] === "orchestrators" && /^orch\d$/.test(r[1])).map((r) => ({ name: r[1], status: r[col] }));
    } catch {
      return null;
    }
  }

  async startWorker(i) {
    await this.spawnIn(`worker${i}`, `worker${i}`, path.join(this.binDir, "phasekit-worker"),
                       this.env({ PORT: String(PORT + 1), ADMIN_PORT: "9091", ENABLE_CONTAINER_POOL: "true",
                                  POOL_MIN_SIZE: "1", ...this.workerEnv[i] }), "worker.started");
  }

  pid(name) {
    return this.procs.get(name).child.pid;
  }

  signal(name, sig) {
    process.kill(this.pid(name), sig);
  }

  logs(name) {
    return this.procs.get(name)?.logs ?? [];
  }

  /** Log entries of `name` with this msg. */
  logged(name, msg) {
    return this.logs(name).filter((e) => e.msg === msg);
  }

  urls() {
    if (this.balancer) return [`http://${this.topo.ip("balancer")}:8080`];
    return [0, 1].map((i) => `http://${this.topo.ip(`orch${i}`)}:${PORT}`);
  }

  /**
   * Starts phasekit-load in the client host (load.js: one run per url, users spread over them); returns
   * {read(), stop(), exited} at once. Its processes are stopped with the cluster's if still running.
   */
  startLoad({ prefix = "d", urls = this.urls(), ...rest } = {}) {
    const l = load.startLoad({ bin: path.join(this.binDir, "phasekit-load"), dir: this.dir, secret: SECRET, urls, prefix,
                               enter: ["ip", "netns", "exec", this.topo.host("client").ns], ...rest });
    l.runs.forEach((r, k) => this.procs.set(`load-${prefix}${k}`, { child: r.child, exited: r.exited, logs: [] }));
    return l;
  }

  /** Stops every process (SIGCONT first, for one left paused), then deletes the namespaces and folder. */
  async stop({ keep = false } = {}) {
    const waits = [];
    for (const [, p] of this.procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        try {
          process.kill(p.child.pid, "SIGCONT");
          process.kill(p.child.pid, "SIGTERM");
        } catch { /* gone */ }
        waits.push(Promise.race([p.exited, new Promise((r) => setTimeout(r, 10000))]).then(() => {
          if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
        }));
      }
    }
    await Promise.all(waits);
    this.topo.down();
    if (this.mounted) {
      try {
        execFileSync("umount", ["-l", this.workspaces]);
      } catch { /* already gone */ }
    }
    if (!keep) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Fills the workspace volume to its last byte with a ballast file; the bytes it took. */
  fillWorkspaces() {
    const file = path.join(this.workspaces, ".ballast");
    const fd = fs.openSync(file, "w");
    let total = 0;
    try {
      for (const size of [1 << 20, 4096, 1]) {
        const chunk = Buffer.alloc(size, 0x61);
        for (;;) {
          try {
            total += fs.writeSync(fd, chunk);
          } catch (e) {
            if (e.code !== "ENOSPC") throw e;
            break;
          }
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    return total;
  }

  /** Bytes free on the workspace volume. */
  workspaceFree() {
    const s = fs.statfsSync(this.workspaces);
    return s.bavail * s.bsize;
  }

  freeWorkspaces() {
    fs.rmSync(path.join(this.workspaces, ".ballast"), { force: true });
  }

  /** The last lines of every process's log, for a failure message. */
  dump(lines = 15) {
    const out = [];
    for (const [name, p] of this.procs) {
      out.push(`--- ${name}`);
      for (const e of p.logs.slice(-lines)) out.push(JSON.stringify(e));
    }
    return out.join("\n");
  }
}

module.exports = { Cluster, waitFor, SECRET };
