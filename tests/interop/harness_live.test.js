// What phasekit-load shows while it runs, against the official Node.js socket.io server
// (tests/harness/delay_server.js): --metrics-port scraped during a run (counters grow, every scrape
// is valid Prometheus text for promtool and for a parser of the format, the last agrees with the
// report), and --output jsonl (a line per interval, each valid JSON as soon as the interval ends,
// times in order, totals equal to the report's).
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { startDelayServer } = require("./support.js");

const LOAD = process.env.HARNESS_BIN;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "phasekit-live-test-"));

function writeScenario(name, seconds, rate) {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, `
config:
  target: "http://127.0.0.1:1"
  phases:
    - { duration: ${seconds}, arrivalRate: ${rate}, name: "steady" }
  socketio: { transports: ["websocket"] }
scenarios:
  - engine: socketio
    flow:
      - loop:
          - emit: { channel: "echo", data: "x" }
            acknowledge: { match: { json: "$.0.ok", value: true } }
          - think: 0.1
        count: 3
      - emit: { channel: "ask", data: "q" }
        response: { channel: "answer" }
`);
  return file;
}

/** phasekit-load in the background: resolves {child, exited, stderr()} at once. */
function startLoad(args) {
  const child = spawn(LOAD, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let stdout = "";
  child.stderr.on("data", (d) => (stderr += d));
  child.stdout.on("data", (d) => (stdout += d));
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, stderr: () => stderr, stdout: () => stdout };
}

async function waitFor(what, deadlineMs, probe) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function get(port, urlPath) {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path: urlPath, agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, type: res.headers["content-type"], body }));
    }).on("error", reject);
  });
}

/**
 * The Prometheus text format (0.0.4), read strictly: every line a comment or a sample of a family
 * declared by # TYPE before it; histograms' buckets cumulative, +Inf equal to _count. Returns
 * {samples: Map("name{labels}" → value), types: Map(family → type)}.
 */
function parseExposition(text) {
  const samples = new Map();
  const types = new Map();
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (-?[0-9.]+(?:e[-+]?[0-9]+)?|\+Inf|-Inf|NaN)$/;
  assert.ok(text.endsWith("\n"), "ends with a newline");
  for (const l of text.slice(0, -1).split("\n")) {
    if (l.startsWith("# HELP ")) continue;
    const t = l.match(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/);
    if (t) {
      assert.ok(!types.has(t[1]), `family ${t[1]} declared twice`);
      types.set(t[1], t[2]);
      continue;
    }
    const m = l.match(line);
    assert.ok(m, `not a sample line: ${l}`);
    const family = m[1].replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(m[1]) || types.get(family) === "histogram", `${m[1]}: no # TYPE before it`);
    samples.set(m[1] + (m[2] || ""), Number(m[4] === "+Inf" ? Infinity : m[4]));
  }
  for (const [family, type] of types) {
    if (type !== "histogram") continue;
    const series = new Map();
    for (const [key, value] of samples) {
      const b = key.match(new RegExp(`^${family}_bucket\\{(.*?),?le="([^"]+)"\\}$`));
      if (!b) continue;
      if (!series.has(b[1])) series.set(b[1], []);
      series.get(b[1]).push([b[2] === "+Inf" ? Infinity : Number(b[2]), value]);
    }
    for (const [labels, buckets] of series) {
      for (let i = 1; i < buckets.length; ++i) {
        assert.ok(buckets[i][0] > buckets[i - 1][0] && buckets[i][1] >= buckets[i - 1][1], `${family}{${labels}} buckets`);
      }
      const count = samples.get(`${family}_count${labels ? `{${labels}}` : ""}`);
      assert.equal(buckets[buckets.length - 1][1], count, `${family}{${labels}}: +Inf bucket = _count`);
    }
  }
  return { samples, types };
}

function promtool(text) {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  assert.equal(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
}

describe("phasekit-load --metrics-port and --output jsonl", () => {
  let server;
  before(async () => {
    server = await startDelayServer(5);
  });
  after(() => server.stop());

  it("serves growing counters as valid Prometheus text while it runs", async () => {
    const scenario = writeScenario("metrics.yml", 5, 10);
    const report = path.join(tmp, "metrics.json");
    const load = startLoad(["run", scenario, "--target", server.url, "--quiet", "--metrics-port", "0", "-o", report]);
    try {
      const port = await waitFor("the metrics address on stderr", 10000, () => {
        const m = load.stderr().match(/metrics at http:\/\/127\.0\.0\.1:(\d+)\/metrics/);
        return m && Number(m[1]);
      });
      const scrapes = [];
      let exitCode = null;
      load.exited.then((code) => (exitCode = code));
      // Scrape until the run ends (deadline 60 s): every answer is checked as it comes.
      const deadline = Date.now() + 60000;
      while (exitCode === null && Date.now() < deadline) {
        let res;
        try {
          res = await get(port, "/metrics");
        } catch (e) {
          if (exitCode !== null || load.child.exitCode !== null) break;  // the listener closed with the run
          throw e;
        }
        assert.equal(res.status, 200);
        assert.equal(res.type, "text/plain; version=0.0.4; charset=utf-8");
        const { samples } = parseExposition(res.body);
        scrapes.push({ text: res.body, samples });
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(await load.exited, 0, load.stdout() + load.stderr());
      const running = scrapes.filter((s) => s.samples.get("phasekit_load_running") === 1);
      assert.ok(running.length >= 3, `${running.length} scrapes while running`);
      promtool(running[running.length - 1].text);
      promtool(scrapes[0].text);

      // Counters never go back, and grew during the run.
      const names = ["phasekit_load_vusers_created_total", "phasekit_load_socketio_emit_total",
                     "phasekit_load_socketio_ack_total", "phasekit_load_socketio_response_time_seconds_count"];
      for (const name of names) {
        const values = scrapes.map((s) => s.samples.get(name));
        assert.ok(values.every((v) => typeof v === "number"), `${name} in every scrape`);
        for (let i = 1; i < values.length; ++i) assert.ok(values[i] >= values[i - 1], `${name}: ${values}`);
        assert.ok(new Set(values.filter((v) => v > 0)).size >= 3, `${name} grew during the run: ${values}`);
      }
      for (const s of running) {
        // One snapshot per scrape: what it holds adds up.
        const created = s.samples.get("phasekit_load_vusers_created_total");
        const ended = s.samples.get("phasekit_load_vusers_completed_total") + s.samples.get("phasekit_load_vusers_failed_total");
        assert.ok(ended <= created, `${ended} users ended of ${created} started`);
        assert.ok(s.samples.get("phasekit_load_vusers_active") <= created);
      }
      assert.ok(running.some((s) => s.samples.get("phasekit_load_vusers_active") > 0));
      assert.ok(running.some((s) => s.samples.has('phasekit_load_phase_info{phase="steady"}')));

      // Each scrape's figures are the run's at the scrape's own elapsed time: the users created match
      // the schedule (10 a second from 0 s), within the arrivals made between the clock read and the
      // count (two, should the run's thread be held up for 100 ms there), and a late one. Judged by the
      // run's clock, not by when this test got to scrape (the old check against the report's total
      // could fail whenever a loaded machine delayed the last scrape).
      for (const s of running) {
        const elapsed = s.samples.get("phasekit_load_run_elapsed_seconds");
        const created = s.samples.get("phasekit_load_vusers_created_total");
        const due = (t) => Math.min(50, Math.max(0, Math.floor(t * 10) + 1));
        assert.ok(created <= due(elapsed) + 2, `${created} users created by ${elapsed} s`);
        assert.ok(created >= due(elapsed - 1), `${created} users created by ${elapsed} s: figures lag the run`);
      }
      const total = JSON.parse(fs.readFileSync(report, "utf8")).total;
      const last = scrapes[scrapes.length - 1].samples;
      assert.ok(last.get("phasekit_load_vusers_created_total") <= total.counters["vusers.created"]);
      assert.equal(total.counters["vusers.created"], 50);
      const channel = 'phasekit_load_socketio_channel_response_time_seconds_count{channel="echo"}';
      assert.ok(last.get(channel) > 0, "per-channel histograms");
      // The listener went with the process.
      await assert.rejects(get(port, "/metrics"));
    } finally {
      load.child.kill("SIGKILL");
    }
  });

  // What a stranger on the host can do to the load generator's metrics port: hold connections open,
  // send a header too big to keep. At most 16 connections (metrics_server.cpp), each header 8 KiB.
  it("holds at most 16 connections and drops an oversized header, then serves again", async () => {
    const scenario = writeScenario("bounds.yml", 30, 1);
    const load = startLoad(["run", scenario, "--target", server.url, "--quiet", "--metrics-port", "0"]);
    const idle = [];
    try {
      const port = await waitFor("the metrics address on stderr", 10000, () => {
        const m = load.stderr().match(/metrics at http:\/\/127\.0\.0\.1:(\d+)\/metrics/);
        return m && Number(m[1]);
      });
      // One request on a connection of its own: what came back before the server closed it.
      const raw = (text) => new Promise((resolve, reject) => {
        const socket = net.connect(port, "127.0.0.1", () => socket.end(text));
        let data = "";
        socket.on("data", (d) => (data += d));
        socket.on("error", (e) => (["ECONNRESET", "EPIPE"].includes(e.code) ? resolve(data) : reject(e)));
        socket.on("close", () => resolve(data));
        socket.setTimeout(15000, () => reject(new Error("no answer and no close within 15 s")));
      });
      const scrape = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
      assert.match(await raw(scrape), /^HTTP\/1\.1 200/);

      for (let i = 0; i < 16; ++i) {
        idle.push(await new Promise((resolve, reject) => {
          const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
          socket.on("error", reject);
        }));
      }
      // Once the server has taken the 16, a 17th is closed at once, unanswered.
      await waitFor("a 17th connection closed without an answer", 10000, async () => (await raw(scrape)) === "");
      for (const socket of idle.splice(0)) socket.destroy();
      await waitFor("a scrape answered again", 10000, async () => /^HTTP\/1\.1 200/.test(await raw(scrape)));

      const oversized = `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${"a".repeat(16384)}\r\n\r\n`;
      assert.equal(await raw(oversized), "", "a header over 8 KiB is dropped, not answered");
      assert.match(await raw(scrape), /^HTTP\/1\.1 200/, "and the server goes on");
      assert.equal(load.child.exitCode, null, "the run goes on");
    } finally {
      for (const socket of idle) socket.destroy();
      load.child.kill("SIGKILL");
      await load.exited;
    }
  });

  it("answers 404 elsewhere and refuses a port it cannot have, with exit 2", async () => {
    const holder = http.createServer();
    await new Promise((r) => holder.listen(0, "127.0.0.1", r));
    const taken = holder.address().port;
    const scenario = writeScenario("taken.yml", 1, 1);
    const r = spawnSync(LOAD, ["run", scenario, "--target", server.url, "--quiet", "--metrics-port", String(taken)],
                        { encoding: "utf8", timeout: 30000 });
    holder.close();
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`--metrics-port: cannot listen on 127.0.0.1:${taken}`));

    const load = startLoad(["run", writeScenario("paths.yml", 3, 2), "--target", server.url, "--quiet",
                            "--metrics-port", "0"]);
    try {
      const port = await waitFor("the metrics address", 10000, () => {
        const m = load.stderr().match(/metrics at http:\/\/127\.0\.0\.1:(\d+)\/metrics/);
        return m && Number(m[1]);
      });
      assert.equal((await get(port, "/nothing")).status, 404);
      assert.equal((await get(port, "/metrics?x=1")).status, 200);
      assert.equal(await load.exited, 0);
    } finally {
      load.child.kill("SIGKILL");
    }
  });

  it("writes a JSON line per interval as the run goes, totals equal to the report's", async () => {
    const scenario = writeScenario("jsonl.yml", 4, 8);
    const jsonl = path.join(tmp, "intervals.jsonl");
    const report = path.join(tmp, "jsonl.json");
    // The brief's spelling (`--output jsonl FILE`) and the k6-like one (json=FILE) together.
    const load = startLoad(["run", scenario, "--target", server.url, "--quiet", "--output", "jsonl", jsonl,
                            "-o", `json=${report}`]);
    try {
      // Flushed as it goes: whole lines are in the file while the run is still going.
      await waitFor("two lines in the file while the run goes on", 20000, () => {
        const text = fs.existsSync(jsonl) ? fs.readFileSync(jsonl, "utf8") : "";
        return text.split("\n").filter(Boolean).length >= 2 && load.child.exitCode === null;
      });
      assert.equal(await load.exited, 0, load.stdout() + load.stderr());
    } finally {
      load.child.kill("SIGKILL");
    }
    const text = fs.readFileSync(jsonl, "utf8");
    assert.ok(text.endsWith("\n"));
    const lines = text.trimEnd().split("\n").map((l) => JSON.parse(l));
    const full = JSON.parse(fs.readFileSync(report, "utf8"));
    assert.equal(lines.length, full.intervals.length, "one line per interval");
    assert.equal(full.meta.intervalSeconds, 1);
    let previous = null;
    const sums = {};
    let histogramCount = 0;
    lines.forEach((l, i) => {
      assert.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const t = Date.parse(l.time);
      if (previous) {
        assert.ok(t >= previous.t, `time goes forward at line ${i}`);
        assert.ok(l.start >= previous.end - 1e-9 && l.end > l.start, `line ${i}: ${l.start}..${l.end}`);
        // Wall-clock gaps follow the run's own clock.
        assert.ok(Math.abs((t - previous.t) / 1000 - (l.end - previous.end)) < 0.5, `line ${i}: clocks agree`);
      }
      previous = { t, end: l.end };
      assert.equal(l.start, full.intervals[i].start);
      assert.equal(l.end, full.intervals[i].end);
      for (const [name, n] of Object.entries(l.counters)) sums[name] = (sums[name] || 0) + n;
      const rt = l.latencyMs["socketio.response_time"];
      if (rt) {
        histogramCount += rt.count;
        assert.ok(rt.p50 <= rt.p95 && rt.p95 <= rt.p99 && rt.p99 <= rt.max, JSON.stringify(rt));
      }
    });
    assert.deepEqual(sums, full.total.counters);
    assert.equal(histogramCount, full.total.histograms["socketio.response_time"].count);
    assert.equal(sums["vusers.created"], 32);
  });

  it("writes the lines of every capacity step, each with its step", () => {
    const scenario = writeScenario("capacity.yml", 1, 1);
    const jsonl = path.join(tmp, "capacity.jsonl");
    const r = spawnSync(LOAD, ["capacity", scenario, "--target", server.url, "--slo", "p95<5000ms", "--users", "2,3",
                               "--ramp", "0.5", "--hold", "1", "--quiet", "-o", jsonl],
                        { encoding: "utf8", timeout: 60000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const lines = fs.readFileSync(jsonl, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    const steps = [...new Set(lines.map((l) => l.step))];
    assert.deepEqual(steps, [2, 3]);
    const created = (step) => lines.filter((l) => l.step === step).reduce((n, l) => n + (l.counters["vusers.created"] || 0), 0);
    assert.equal(created(2), 2);
    assert.equal(created(3), 3);
  });
});
