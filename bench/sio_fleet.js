// What the Socket.IO benches (sio_compare.js, sio_scale.js, sio_churn.js) do alike: start servers
// (phasekit-orchestrator, Node's socket.io) and fleets of client workers (sio_clients.js, one source
// address each), merge the workers' latency histograms, and stop every process they started, on
// success, on failure and on SIGINT/SIGTERM. A module, not a script: require("./sio_fleet.js").
"use strict";
const { spawn, fork } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const path = require("node:path");
const readline = require("node:readline");

const root = path.join(__dirname, "..");

// One process holds at most `ulimit -Hn` descriptors (20,000 here, root included) and a server needs a
// few of its own (listeners, epoll, timers, log): what fits of clients in one server process.
const hardOpenFiles = (() => {
  try {
    const m = /Max open files\s+\d+\s+(\d+|unlimited)/.exec(fs.readFileSync("/proc/self/limits", "utf8"));
    return m && m[1] !== "unlimited" ? Number(m[1]) : Infinity;
  } catch {
    return Infinity;
  }
})();
const serverMaxClients = hardOpenFiles - 100;
// Clients per worker: well under the limit, so a worker keeps room for the sockets churn opens
// before the ones it closes are gone, and its heap stays modest. Each worker has a source address of
// its own (127.0.0.2, .3, …): ~28,000 ephemeral ports per address. SIO_CLIENTS_PER_WORKER=N sets
// another (e.g. 1000, to try several workers at a small size).
const clientsPerWorker = Math.min(12500, Number(process.env.SIO_CLIENTS_PER_WORKER) || 12500);

// ---- latency histogram: log buckets 1 % wide from 1 µs, so a worker sends a few hundred numbers,
// not every latency; quantiles are the bucket's upper bound (at most 1 % high), capped at the max.
const kBase = 1.01;
const kLogBase = Math.log(kBase);
const kUnitMs = 0.001;
const kBuckets = 2400;  // up to ~6 hours

class Histogram {
  constructor() {
    this.counts = new Float64Array(kBuckets);
    this.count = 0;
    this.max = 0;
  }
  record(ms) {
    const i = ms <= kUnitMs ? 0 : Math.min(kBuckets - 1, Math.ceil(Math.log(ms / kUnitMs) / kLogBase));
    this.counts[i]++;
    this.count++;
    if (ms > this.max) this.max = ms;
  }
  toJSON() {
    const buckets = [];
    this.counts.forEach((n, i) => n && buckets.push([i, n]));
    return { count: this.count, max: this.max, buckets };
  }
  merge(json) {
    for (const [i, n] of json.buckets) this.counts[i] += n;
    this.count += json.count;
    if (json.max > this.max) this.max = json.max;
    return this;
  }
  // The value at rank floor(p % of count), as sio_compare.js has always taken it from a sorted array.
  quantile(p) {
    if (this.count === 0) return NaN;
    const rank = Math.min(this.count - 1, Math.floor((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < kBuckets; i++) {
      seen += this.counts[i];
      if (seen > rank) return Math.min(this.max, kUnitMs * Math.pow(kBase, i));
    }
    return this.max;
  }
}

// ---- counting by reason ({reason: n} objects, as the workers report them)
function countInto(into, reason, n = 1) {
  into[reason] = (into[reason] || 0) + n;
  return into;
}
function addCounts(into, from) {
  for (const [k, n] of Object.entries(from || {})) countInto(into, k, n);
  return into;
}
function sumCounts(counts) {
  return Object.values(counts).reduce((a, n) => a + n, 0);
}

// ---- processes: every child is killed when this process exits, however it exits
const children = new Set();
function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  child.once("error", () => child.pid === undefined && children.delete(child));  // never started
  return child;
}
function killAll(signal) {
  for (const child of children) {
    try {
      child.kill(signal);
    } catch {}
  }
}
process.on("exit", () => killAll("SIGKILL"));
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping processes ${[...children].map((c) => c.pid).join(" ")}`);
    killAll("SIGKILL");
    process.exit(130);
  });
}
// A server dies with this process even when this one is killed outright (SIGKILL leaves no handler to
// run): started through util-linux's setpriv with a parent-death signal where there is one.
const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => fs.existsSync(p));
function spawnServer(command, args, options) {
  return setpriv
    ? spawn(setpriv, ["--pdeathsig", "KILL", command, ...args], options)
    : spawn(command, args, options);
}

// Stops a child: SIGTERM, then SIGKILL after `graceMs`.
function stop(child, graceMs = 10000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}
// Runs `main`; an error is one clear line (and the processes stopped), not a stack from deep inside.
function run(main) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(`error: ${err && err.message ? err.message : err}`);
      killAll("SIGKILL");
      process.exit(1);
    },
  );
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// null once the process is gone.
function rssKiB(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  } catch {
    return null;
  }
}
// Sockets a process holds (its client connections, plus its listeners); null once it is gone.
function socketFds(pid) {
  let n = 0;
  let fds;
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return null;
  }
  for (const fd of fds) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
    } catch {}  // closed meanwhile
  }
  return n;
}

// A loopback port free now (another process may take it before it is bound again: rare).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// The value of a Prometheus gauge (no labels) on an orchestrator's admin port.
function gauge(adminPort, name) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port: adminPort, path: "/metrics", timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        const m = new RegExp(`^${name} (\\S+)$`, "m").exec(body);
        m ? resolve(Number(m[1])) : reject(new Error(`no ${name} on :${adminPort}/metrics`));
      });
    });
    req.on("timeout", () => req.destroy(new Error(`:${adminPort}/metrics did not answer in 5 s`)));
    req.on("error", reject);
  });
}

// Waits for the line saying the server listens; keeps reading its output (a full pipe would stall
// it), and shows its warnings and errors once each.
function awaitListening(child, name, match) {
  const tail = [];
  const shown = new Set();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 20 s:\n${tail.join("\n")}`)), 20000);
    const onLine = (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      const level = /"level":"(warn|error)".*?"msg":"([^"]+)"/.exec(line);
      if (level && !shown.has(level[2])) {
        shown.add(level[2]);
        console.error(`${name}: ${line}`);
      }
      const found = match(line);
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    };
    readline.createInterface({ input: child.stdout }).on("line", onLine);
    readline.createInterface({ input: child.stderr }).on("line", onLine);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`${name} did not start: ${err.message}`), { code: err.code }));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${signal || code}) before listening:\n${tail.join("\n")}`));
    });
  });
}

// The same, or null when the server does not answer (it died: the caller reports that instead).
function gaugeOrNull(adminPort, name) {
  return gauge(adminPort, name).catch(() => null);
}

// Settings passed on to the orchestrator from this process's environment when set there.
const passedSettings = ["PING_INTERVAL_MS", "PING_TIMEOUT_MS", "MAX_CONNECTIONS", "IO_THREADS"];

// phasekit-orchestrator on PORT `port` (0: a free one), its admin port a free one. `reusePort`: bound
// with SO_REUSEPORT, so several processes share `port`. The settings in `passedSettings` come from the
// environment (e.g. PING_INTERVAL_MS=5000 node bench/sio_scale.js …). Returns {kind, child, pid, port,
// adminPort}.
async function startOrchestrator({ port = 0, reusePort = false, name = "phasekit" } = {}) {
  // A build may be relinking the binary (missing, not yet executable, or busy): try again for a minute.
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnOrchestrator({ port, reusePort, name });
    } catch (err) {
      const relinking = ["ENOENT", "EACCES", "ETXTBSY", "ENOEXEC"].includes(err.code) || /failed to execute/.test(err.message);
      if (!relinking || attempt === 60) throw err;
      if (attempt === 1) console.error(`${err.message}: a build relinking it? trying again for a minute`);
      await sleep(1000);
    }
  }
}

async function spawnOrchestrator({ port, reusePort, name }) {
  const binary = path.join(root, "build", "bin", "phasekit-orchestrator");
  try {
    fs.accessSync(binary, fs.constants.X_OK);
  } catch (err) {
    throw Object.assign(new Error(`${binary} cannot be run: ${err.code}`), { code: err.code });
  }
  const child = track(
    spawnServer(binary, [], {
      env: { PATH: process.env.PATH, PORT: String(port), ADMIN_PORT: "0", AUTH_MODE: "none", LOG_LEVEL: "info",
             SESSION_GRACE_MS: "0",
             MAX_CONNECTIONS_PER_ADDRESS: "0",  // every client is on a loopback address
             ...(reusePort ? { REUSE_PORT: "true" } : {}),
             ...Object.fromEntries(passedSettings.filter((k) => process.env[k]).map((k) => [k, process.env[k]])),
             // An allocator to measure instead of glibc's (docs/capacity.md): e.g. libjemalloc.so.2.
             ...(process.env.PHASEKIT_PRELOAD ? { LD_PRELOAD: process.env.PHASEKIT_PRELOAD } : {}) },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  const listening = await awaitListening(child, name, (line) => {
    if (!line.includes('"msg":"server.listening"')) return null;
    return { port: Number(/"port":(\d+)/.exec(line)[1]), adminPort: Number(/"admin_port":(\d+)/.exec(line)[1]) };
  });
  return { kind: "phasekit", child, pid: child.pid, ...listening };
}

// bench/node_sio_server.js on a free loopback port. Returns {kind, child, pid, port}.
async function startNodeServer() {
  const child = track(spawnServer(process.execPath, [path.join(__dirname, "node_sio_server.js")], { stdio: ["ignore", "pipe", "pipe"] }));
  const listening = await awaitListening(child, "node", (line) => {
    const m = /^\{"port":(\d+)\}$/.exec(line);
    return m && { port: Number(m[1]) };
  });
  return { kind: "node", child, pid: child.pid, ...listening };
}

// ---- a fleet of sio_clients.js workers, `total` clients of `url` over as few workers as hold them
class Fleet {
  // `nice`: the workers' scheduling priority (os.setPriority: 0 normal, 19 lowest).
  constructor(url, total, { perWorker = clientsPerWorker, firstHost = 2, nice = 0 } = {}) {
    const n = Math.max(1, Math.ceil(total / perWorker));
    if (firstHost + n - 1 > 254) throw new Error(`${n} workers need more loopback addresses than 127.0.0.${firstHost}-254`);
    this.total = total;
    this.workers = [];
    for (let k = 0; k < n; k++) {
      const count = Math.floor(total / n) + (k < total % n ? 1 : 0);
      const address = `127.0.0.${firstHost + k}`;
      const child = track(fork(path.join(__dirname, "sio_clients.js"), [url, address, String(nice)], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
      const worker = { address, count, child, pending: new Map(), next: 0, exited: null };
      child.on("message", ({ id, result, error }) => {
        const p = worker.pending.get(id);
        if (!p) return;
        worker.pending.delete(id);
        error ? p.reject(new Error(`worker ${address}: ${error}`)) : p.resolve(result);
      });
      child.once("exit", (code, signal) => {
        worker.exited = signal || code;
        for (const p of worker.pending.values()) p.reject(new Error(`worker ${address} exited (${signal || code})`));
        worker.pending.clear();
      });
      this.workers.push(worker);
    }
  }
  request(worker, cmd, args = {}) {
    if (worker.exited !== null) return Promise.reject(new Error(`worker ${worker.address} exited (${worker.exited})`));
    return new Promise((resolve, reject) => {
      const id = worker.next++;
      worker.pending.set(id, { resolve, reject });
      worker.child.send({ id, cmd, ...args });
    });
  }
  // Every worker its share of `total`, `batch` connecting at once in each. → {connected, failed, failures, ms}
  async connect(batch = 200) {
    const began = Date.now();
    const results = await Promise.all(this.workers.map((w) => this.request(w, "connect", { count: w.count, batch })));
    const out = { connected: 0, failed: 0, failures: {}, ms: Date.now() - began };
    for (const r of results) {
      out.connected += r.connected;
      out.failed += r.failed;
      addCounts(out.failures, r.failures);
    }
    return out;
  }
  // `rate` messages per second for `seconds`, open loop, over all clients (each worker in proportion
  // to its clients). → {sent, errors, hist}
  async load(rate, seconds, timeoutMs = 10000) {
    const results = await Promise.all(
      this.workers.map((w) => this.request(w, "load", { rate: (rate * w.count) / this.total, seconds, timeoutMs })),
    );
    const out = { sent: 0, errors: {}, hist: new Histogram() };
    for (const r of results) {
      out.sent += r.sent;
      addCounts(out.errors, r.errors);
      out.hist.merge(r.hist);
    }
    return out;
  }
  // `perSecond` clients closed and as many new ones connected per second, for `seconds`.
  // → {closed, connected, failed, failures, connectHist}
  async churn(perSecond, seconds) {
    const results = await Promise.all(
      this.workers.map((w) => this.request(w, "churn", { perSecond: (perSecond * w.count) / this.total, seconds })),
    );
    const out = { closed: 0, connected: 0, failed: 0, failures: {}, connectHist: new Histogram() };
    for (const r of results) {
      out.closed += r.closed;
      out.connected += r.connected;
      out.failed += r.failed;
      addCounts(out.failures, r.failures);
      out.connectHist.merge(r.connectHist);
    }
    return out;
  }
  // → {live, expected, unexpected, rssKiB, fds, perWorker: [...]}: disconnects by reason, those the
  // workers asked for (`expected`) apart from all others.
  async stats() {
    const results = await Promise.all(this.workers.map((w) => this.request(w, "stats")));
    const out = { live: 0, expected: {}, unexpected: {}, rssKiB: 0, fds: 0, perWorker: [] };
    results.forEach((r, k) => {
      out.live += r.live;
      addCounts(out.expected, r.disconnects.expected);
      addCounts(out.unexpected, r.disconnects.unexpected);
      out.rssKiB += r.rssKiB;
      out.fds = Math.max(out.fds, r.fds);
      out.perWorker.push({ address: this.workers[k].address, ...r });
    });
    return out;
  }
  // Closes every client and waits for the workers to exit (killed after 10 s).
  async close() {
    await Promise.all(
      this.workers.map(async (w) => {
        const exited = new Promise((r) => (w.exited !== null ? r() : w.child.once("exit", r)));
        await Promise.race([this.request(w, "close").catch(() => {}), sleep(10000)]);
        await Promise.race([exited, sleep(5000)]);
        await stop(w.child, 5000);
      }),
    );
  }
}

module.exports = {
  Histogram, Fleet, countInto, addCounts, sumCounts, run, stop, sleep, rssKiB, socketFds, freePort, gauge, gaugeOrNull,
  startOrchestrator, startNodeServer, serverMaxClients, clientsPerWorker, hardOpenFiles,
};
