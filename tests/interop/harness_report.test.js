// Every kind of phasekit-load HTML report, from real short runs against phasekit-orchestrator,
// laid out by headless Chromium: no two texts of a chart overlap, no text sits on a plot, every
// interval (or capacity step) has its point, and the charts' own size estimates are never short of
// what Chromium draws. The same is checked on the SVG's geometry alone (data-box), without a
// browser. Screenshots stay under the build tree as test artifacts; their paths are printed.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { startServer } = require("./support.js");

const LOAD = process.env.HARNESS_BIN;
const CHROMIUM = process.env.CHROMIUM_BIN;
const ARTIFACTS = path.join(process.env.PHASEKIT_ARTIFACTS_DIR || os.tmpdir(), "harness-report");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "phasekit-report-test-"));

function load(args, timeoutMs = 240000) {
  const r = spawnSync(LOAD, args, { encoding: "utf8", timeout: timeoutMs });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function chromium(args) {
  assert.ok(CHROMIUM && fs.existsSync(CHROMIUM), "chromium is not installed: scripts/setup.sh installs it");
  const profile = fs.mkdtempSync(path.join(tmp, "chromium-"));
  const r = spawnSync(CHROMIUM, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                 "--no-first-run", `--user-data-dir=${profile}`, "--window-size=1280,2400", ...args],
                      { encoding: "utf8", timeout: 90000, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `chromium ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

// Runs in the page after layout and leaves what it found in <pre id="layout-check">.
const LAYOUT_CHECK = `
(() => {
  const hit = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  const out = { charts: [] };
  for (const svg of document.querySelectorAll("svg.chart")) {
    const plot = svg.querySelector("rect.plot").getBoundingClientRect();
    const problems = [];
    const texts = [...svg.querySelectorAll("text")].map((t) => ({
      text: t.firstChild ? t.firstChild.nodeValue : "",
      rect: t.getBoundingClientRect(),
      bbox: t.getBBox(),
      estimated: t.dataset.box.split(" ").map(Number),
      rotated: t.hasAttribute("transform"),
    }));
    const chart = svg.getBoundingClientRect();
    for (let i = 0; i < texts.length; ++i) {
      const a = texts[i];
      for (let j = i + 1; j < texts.length; ++j) {
        if (hit(a.rect, texts[j].rect)) problems.push('"' + a.text + '" overlaps "' + texts[j].text + '"');
      }
      if (hit(a.rect, plot)) problems.push('"' + a.text + '" is drawn on the plot');
      if (a.rect.left < chart.left - 0.5 || a.rect.right > chart.right + 0.5 || a.rect.top < chart.top - 0.5 ||
          a.rect.bottom > chart.bottom + 0.5) problems.push('"' + a.text + '" leaves the chart');
      if (!a.rotated && a.bbox.width > a.estimated[2] + 0.5) {
        problems.push('"' + a.text + '" is ' + a.bbox.width.toFixed(1) + ' wide, estimated ' + a.estimated[2]);
      }
    }
    const series = [...svg.querySelectorAll("g.series")].map((g) => {
      const circles = [...g.querySelectorAll("circle.pt")];
      const outside = circles.filter((c) => {
        const r = c.getBoundingClientRect();
        const x = (r.left + r.right) / 2, y = (r.top + r.bottom) / 2;
        return x < plot.left - 0.5 || x > plot.right + 0.5 || y < plot.top - 0.5 || y > plot.bottom + 0.5;
      }).length;
      return { name: g.dataset.series, count: Number(g.dataset.count), circles: circles.length,
               vertices: g.querySelector("polyline").points.numberOfItems, outside };
    });
    out.charts.push({ id: svg.dataset.chart, points: Number(svg.dataset.points), texts: texts.length, problems, series });
  }
  const pre = document.createElement("pre");
  pre.id = "layout-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
`;

/** The page as Chromium lays it out: what LAYOUT_CHECK found. */
function browserLayout(htmlFile) {
  const probe = path.join(tmp, `${path.basename(htmlFile, ".html")}.probe.html`);
  fs.writeFileSync(probe, fs.readFileSync(htmlFile, "utf8").replace("</body>", `<script>${LAYOUT_CHECK}</script></body>`));
  const dom = chromium(["--dump-dom", `file://${probe}`]);
  const m = dom.match(/<pre id="layout-check">([\s\S]*?)<\/pre>/);
  assert.ok(m, `no layout result in the DOM Chromium dumped for ${htmlFile}`);
  const decoded = m[1].replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
  return JSON.parse(decoded);
}

/** The same checks on the SVG alone: the estimated boxes (data-box) and the plot rectangles. */
function svgGeometry(page) {
  const charts = [];
  const overlap = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  for (const m of page.matchAll(/<svg class="chart" viewBox="0 0 ([\d.]+) ([\d.]+)"[^>]*data-chart="([^"]*)" data-points="(\d+)">([\s\S]*?)<\/svg>/g)) {
    const [, w, h, id, points, body] = m;
    const p = body.match(/<rect class="plot" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/);
    const plot = { x: +p[1], y: +p[2], w: +p[3], h: +p[4] };
    const texts = [...body.matchAll(/<text [^>]*data-box="([-\d.]+) ([-\d.]+) ([-\d.]+) ([-\d.]+)"[^>]*>([^<]*)/g)]
      .map((t) => ({ x: +t[1], y: +t[2], w: +t[3], h: +t[4], text: t[5] }));
    const problems = [];
    texts.forEach((a, i) => {
      texts.slice(i + 1).forEach((b) => overlap(a, b) && problems.push(`"${a.text}" overlaps "${b.text}"`));
      if (overlap(a, plot)) problems.push(`"${a.text}" is on the plot`);
      if (a.x < 0 || a.y < 0 || a.x + a.w > +w || a.y + a.h > +h) problems.push(`"${a.text}" leaves the chart`);
    });
    const series = [...body.matchAll(/<g class="series" data-series="([^"]*)" data-count="(\d+)">([\s\S]*?)<\/g>/g)]
      .map((s) => ({ name: s[1], count: +s[2], circles: (s[3].match(/<circle class="pt"/g) || []).length }));
    charts.push({ id, points: +points, texts: texts.length, problems, series });
  }
  return charts;
}

/** Screenshot, browser layout and SVG geometry of one page; returns both layouts. */
function inspect(htmlFile, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const shot = path.join(ARTIFACTS, `${name}.png`);
  fs.rmSync(shot, { force: true });
  chromium([`--screenshot=${shot}`, `file://${htmlFile}`]);
  assert.ok(fs.statSync(shot).size > 10000, `${shot} is empty`);
  fs.copyFileSync(htmlFile, path.join(ARTIFACTS, `${name}.html`));
  console.log(`# screenshot: ${shot}`);
  const page = fs.readFileSync(htmlFile, "utf8");
  assert.doesNotMatch(page, /<script|<link|<img|src=|href=|@import|url\(/);  // nothing to fetch
  const browser = browserLayout(htmlFile);
  const geometry = svgGeometry(page);
  for (const [how, charts] of [["Chromium", browser.charts], ["SVG geometry", geometry]]) {
    assert.ok(charts.length > 0, `${how}: no chart`);
    for (const c of charts) {
      assert.deepEqual(c.problems, [], `${how}, ${name}, chart ${c.id}`);
      assert.ok(c.texts >= 6, `${how}, chart ${c.id}: ${c.texts} texts`);
      for (const s of c.series) {
        assert.equal(s.circles, s.count, `${how}, chart ${c.id}, series ${s.name}: points drawn`);
        if ("vertices" in s) assert.equal(s.vertices, s.count, `chart ${c.id}, series ${s.name}: line vertices`);
        if ("outside" in s) assert.equal(s.outside, 0, `chart ${c.id}, series ${s.name}: points off the plot`);
      }
    }
  }
  assert.deepEqual(browser.charts.map((c) => [c.id, c.points]), geometry.map((c) => [c.id, c.points]));
  return browser.charts;
}

describe("phasekit-load's HTML reports in headless Chromium", () => {
  let server;
  before(async () => {
    server = await startServer({ AUTH_MODE: "none", MAX_CONNECTIONS_PER_ADDRESS: "0" });
  });
  after(async () => {
    await server.stop();
  });

  it("a run report: a point per one-second interval on every chart, nothing overlapping", () => {
    // Tool calls for most users; two flows that fail at once, on purpose, so that the errors chart has
    // two codes in its legend.
    const scenario = path.join(tmp, "run.yml");
    fs.writeFileSync(scenario, `
config:
  target: "http://127.0.0.1:1"
  phases:
    - { duration: 4, arrivalRate: 2, name: "warm up" }
    - { duration: 6, arrivalRate: 4, name: "steady with a long phase name" }
  socketio: { transports: ["websocket"] }
  timeout: 60
scenarios:
  - name: "tool call"
    engine: socketio
    weight: 4
    flow:
      - emit: { channel: "message", data: "echo report-{{ $randomString(6) }}" }
        acknowledge: { match: { json: "$.0.ok", value: true } }
        response: { channel: "tool:request", capture: { json: "$.callId", as: "callId" } }
      - emit: { channel: "tool:approval", data: { callId: "{{ callId }}", approved: true } }
        response: { channel: "tool:result", match: { json: "$.callId", value: "{{ callId }}" } }
  - name: "refused ack"
    engine: socketio
    weight: 1
    flow:
      - emit: { channel: "message", data: "true" }
        acknowledge: { match: { json: "$.0.ok", value: false } }
  - name: "missing field"
    engine: socketio
    weight: 1
    flow:
      - emit: { channel: "message", data: "true" }
        acknowledge: { capture: { json: "$.0.nothingHere", as: "x" } }
`);
    const json = path.join(tmp, "run.json");
    const html = path.join(tmp, "run.html");
    const r = load(["run", scenario, "--target", server.url, "--quiet", "--seed", "7", "-o", json, "-o", html]);
    assert.equal(r.code, 0, r.out + r.err);
    const report = JSON.parse(fs.readFileSync(json, "utf8"));
    assert.equal(report.meta.intervalSeconds, 1, "a 10 s run gets one-second intervals");
    assert.ok(report.intervals.length >= 10, `${report.intervals.length} intervals`);
    assert.ok(report.total.counters["errors.match_failed"] > 0 && report.total.counters["errors.capture_failed"] > 0,
              JSON.stringify(report.total.counters));
    // `report` renders the same page from the JSON.
    const again = path.join(tmp, "run-again.html");
    assert.equal(load(["report", json, "-o", again]).code, 0);
    assert.equal(fs.readFileSync(again, "utf8"), fs.readFileSync(html, "utf8"));

    const charts = inspect(html, "run-report");
    assert.deepEqual(charts.map((c) => c.id), ["latency", "throughput", "users", "errors"]);
    const n = report.intervals.length;
    const withLatency = report.intervals.filter((i) => (i.histograms["socketio.response_time"] || {}).count > 0).length;
    for (const c of charts) {
      assert.equal(c.points, n, `chart ${c.id}: one x per interval`);
      for (const s of c.series) {
        assert.equal(s.count, c.id === "latency" ? withLatency : n, `chart ${c.id}, series ${s.name}`);
      }
    }
    assert.deepEqual(charts.find((c) => c.id === "errors").series.map((s) => s.name), ["capture_failed", "match_failed"]);
  });

  it("a capacity report: latency and error rate per step, the SLO lines, the verdict of each step", () => {
    const scenario = path.join(tmp, "capacity.yml");
    fs.writeFileSync(scenario, `
config:
  target: "http://127.0.0.1:1"
  phases: [{ duration: 1, arrivalRate: 1 }]
  socketio: { transports: ["websocket"] }
  timeout: 60
scenarios:
  - engine: socketio
    flow:
      - emit: { channel: "message", data: "echo capacity" }
        acknowledge: { match: { json: "$.0.ok", value: true } }
        response: { channel: "tool:request", capture: { json: "$.callId", as: "callId" } }
      - emit: { channel: "tool:approval", data: { callId: "{{ callId }}", approved: true } }
        response: { channel: "tool:result", match: { json: "$.callId", value: "{{ callId }}" } }
      - think: 0.2
`);
    const json = path.join(tmp, "capacity.json");
    const html = path.join(tmp, "capacity.html");
    // The counter limit fails the third step whatever the machine's speed: a certain verdict to show.
    const slo = "p95<60000ms,errors<50%,vusers.created<5";
    const r = load(["capacity", scenario, "--target", server.url, "--slo", slo, "--users", "2,4,6,8", "--ramp", "1",
                    "--hold", "2", "--quiet", "--seed", "7", "-o", json, "-o", `html=${html}`]);
    assert.equal(r.code, 0, r.out + r.err);  // 4 users met the SLO
    const result = JSON.parse(fs.readFileSync(json, "utf8"));
    assert.equal(result.schema, "phasekit-load/capacity@1");
    assert.deepEqual(result.steps.map((s) => [s.users, s.pass]), [[2, true], [4, true], [6, false]]);
    assert.equal(result.steps[2].why, "vusers.created<5: 6.00 (limit <5)");
    assert.ok(result.steps.every((s) => s.latencyMs.p95 > 0), JSON.stringify(result.steps.map((s) => s.latencyMs)));
    const page = fs.readFileSync(html, "utf8");
    assert.match(page, /4 users meet p95&lt;60000ms,errors&lt;50%,vusers.created&lt;5/);
    assert.match(page, /vusers.created&lt;5: 6.00 \(limit &lt;5\)/);
    const again = path.join(tmp, "capacity-again.html");
    assert.equal(load(["report", json, "-o", again]).code, 0);
    assert.equal(fs.readFileSync(again, "utf8"), page);

    const charts = inspect(html, "capacity-report");
    assert.deepEqual(charts.map((c) => [c.id, c.points]), [["capacity-latency", 3], ["capacity-errors", 3]]);
    for (const s of charts[0].series) assert.equal(s.count, 3, `latency ${s.name}`);
    assert.equal((page.match(/class="rule"/g) || []).length, 2, "one SLO line per chart: p95 and errors");
  });
});
