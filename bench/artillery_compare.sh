#!/usr/bin/env bash
# phasekit-load beside Artillery 2 (with artillery-engine-socketio-v3), in one run, against the same
# node socket.io server (tests/harness/delay_server.js), each load generator pinned to ONE core.
#
#   bench/artillery_compare.sh [RATE ...]        (default rates: 50 100 200 400 600 800 1200 1600 arrivals/s)
#
# For each rate it writes ONE Artillery scenario file (engine socketio-v3, websocket transport; each
# virtual user connects, emits "echo" EMITS times awaiting each ack, then leaves) and runs that very
# file with both tools, one after the other, under `/usr/bin/time -v` and `taskset -c $TOOL_CPU`
# (the server runs on `taskset -c $SERVER_CPU`). A tool's series stops at the first rate it does not
# sustain. "Sustains" = every arrival created and completed, no errors, and over the steady part of
# the arrival window the server sees at least 95 % of the asked connections per second; plus, for
# phasekit-load, no late or dropped arrivals and its CPU below 95 % of one core; for Artillery, which
# counts no late arrivals, its phase ends within 1 s of its duration. (Artillery's CPU is reported but
# not judged: its arrival timer busy-waits, so it takes the whole core at any rate of 40/s and up.)
#
# SERVER=node (default) is that node server; SERVER=cpp is phasekit's own network layer
# (build/bin/phasekit-conformance-server, which acks `echo` at once and serves the same /counts): a
# server that is not the limit, to find the load generators' own ceiling.
# Environment: SERVER (node), DURATION (s per rate, 20), EMITS (5), DELAY_MS (server ack delay, 1), TOOLS
# ("phasekit-load artillery"), TOOL_CPU (1), SERVER_CPU (0), OUT (work dir, default a new temp dir),
# PHASEKIT_LOAD (binary, default build/bin/phasekit-load; never built here), PHASEKIT_NODE_MODULES,
# NICE (0; e.g. -10 as root on a machine busy with other work: the script, the server and the tools).
# Writes $OUT/results.jsonl (one line per run), $OUT/table.md, the scenario files, each tool's JSON
# report, log and `time -v` output. Loopback only; every run is bounded by `timeout`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-20}
EMITS=${EMITS:-5}
DELAY_MS=${DELAY_MS:-1}
TOOLS=${TOOLS:-"phasekit-load artillery"}
SERVER=${SERVER:-node}
[[ $SERVER == node || $SERVER == cpp ]] || { echo "SERVER: node or cpp" >&2; exit 2; }
TOOL_CPU=${TOOL_CPU:-1}
SERVER_CPU=${SERVER_CPU:-0}
PHASEKIT_LOAD=${PHASEKIT_LOAD:-$ROOT/build/bin/phasekit-load}
export PHASEKIT_NODE_MODULES=${PHASEKIT_NODE_MODULES:-$ROOT/tools/node/node_modules}
export ARTILLERY_DISABLE_TELEMETRY=1          # no phoning home: loopback only
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 8 && $DURATION -le 120 ]] || { echo "DURATION: 8 to 120 seconds" >&2; exit 2; }
if [[ $# -gt 0 ]]; then RATES=("$@"); else RATES=(50 100 200 400 600 800 1200 1600); fi
OUT=${OUT:-$(mktemp -d /tmp/artillery_compare.XXXXXX)}
mkdir -p "$OUT"
ART_DIR=$ROOT/bench/artillery
ARTILLERY=$ART_DIR/node_modules/.bin/artillery
TICK=$(getconf CLK_TCK)
NICE=${NICE:-0}
# the whole script (server, tools, samplers) at that priority, so the samples are taken on time too
[[ $NICE == 0 ]] || renice -n "$NICE" -p $$ >/dev/null

log() { printf '[compare] %s\n' "$*" >&2; }

# --- prerequisites (never builds the C++ tree) ---
command -v node >/dev/null || { log "node is required (scripts/setup.sh installs it)"; exit 2; }
command -v taskset >/dev/null || { log "taskset (util-linux) is required"; exit 2; }
if [[ ! -x /usr/bin/time ]]; then
  log "installing GNU time (apt package 'time')"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get install -y -qq time >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq time >/dev/null; }
fi
[[ -x $PHASEKIT_LOAD ]] || { log "no $PHASEKIT_LOAD: build it first (./scripts/build.sh)"; exit 2; }
[[ -f $PHASEKIT_NODE_MODULES/socket.io/package.json ]] || { log "no socket.io in $PHASEKIT_NODE_MODULES (scripts/setup.sh)"; exit 2; }
if [[ ! -d $ART_DIR/node_modules ]]; then
  log "installing Artillery from bench/artillery/package-lock.json (npm ci; a few minutes, ~600 MB)"
  (cd "$ART_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
fi
[[ $(nproc) -ge 2 ]] || log "warning: fewer than 2 cores; server and tool will share a core"

# --- the server, on its own core, stopped by PID ---
SERVER_PID=""; CUR_PID=""; TOOL_PID=""
cleanup() {
  local p
  for p in "$TOOL_PID" "$CUR_PID" "$SERVER_PID"; do
    if [[ -n $p ]]; then kill "$p" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [[ $SERVER == cpp ]]; then
  CPP_SERVER=$(dirname "$PHASEKIT_LOAD")/phasekit-conformance-server
  [[ -x $CPP_SERVER ]] || { log "no $CPP_SERVER: build it first (./scripts/build.sh)"; exit 2; }
  # pings far apart, as a production server's (a user's session lasts milliseconds); no limit per
  # client address: every user comes from the few loopback addresses of one load generator
  taskset -c "$SERVER_CPU" env PORT=0 PING_INTERVAL_MS=25000 PING_TIMEOUT_MS=20000 CONNECT_TIMEOUT_MS=45000 \
    MAX_CONNECTIONS_PER_ADDRESS=0 \
    "$CPP_SERVER" >"$OUT/server.out" 2>"$OUT/server.err" &
else
  taskset -c "$SERVER_CPU" node "$ROOT/tests/harness/delay_server.js" "$DELAY_MS" >"$OUT/server.out" 2>"$OUT/server.err" &
fi
SERVER_PID=$!
PORT=""
for _ in $(seq 100); do
  PORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$OUT/server.out")
  [[ -n $PORT ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { log "server died: $(cat "$OUT/server.err")"; exit 1; }
  sleep 0.1
done
[[ -n $PORT ]] || { log "server did not print its port"; exit 1; }
TARGET=http://127.0.0.1:$PORT
if [[ $SERVER == cpp ]]; then
  log "phasekit-conformance-server $TARGET (pid $SERVER_PID, core $SERVER_CPU, acks at once); work dir $OUT"
else
  log "node socket.io server $TARGET (pid $SERVER_PID, core $SERVER_CPU, ack delay ${DELAY_MS} ms); work dir $OUT"
fi

counts() {
  if command -v curl >/dev/null; then curl -s --max-time 10 "$TARGET/counts" || true
  else node -e 'fetch(process.argv[1]).then(r => r.text()).then(t => process.stdout.write(t))' "$TARGET/counts"; fi
}
# a snapshot of a process: "ticks N" (utime + stime of all its threads), then "TID NS" per thread with the
# nanoseconds it spent runnable but waiting for a CPU (other work on the core)
snap() {
  { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null || true; } | awk '{print "ticks", $12 + $13}'
  awk '{split(FILENAME, a, "/"); print a[5], $2}' /proc/"$1"/task/*/schedstat 2>/dev/null || true
}
sleep_until() { sleep "$(awk -v m="$1" -v o="$2" -v n="$(date +%s.%N)" 'BEGIN{d = m + o - n; print (d > 0 ? d : 0)}')"; }
child() { pgrep -P "$1" | head -1; }

# the scenario, in Artillery's format for the socketio-v3 engine; both tools run this very file
scenario() {
  local rate=$1 file=$OUT/echo-$1.yml
  [[ $rate =~ ^[0-9]+$ && $rate -ge 1 && $rate -le 20000 ]] || { log "rate $rate: 1 to 20000 arrivals/s"; exit 2; }
  cat >"$file" <<EOF
# bench/artillery_compare.sh: $rate arrivals/s for $DURATION s; each user emits "echo" $EMITS times (ack awaited), then leaves
config:
  target: "$TARGET"
  phases:
    - duration: $DURATION
      arrivalRate: $rate
      name: "rate $rate"
  engines:
    socketio-v3:
      transports: ["websocket"]
scenarios:
  - name: "echo x$EMITS"
    engine: socketio-v3
    flow:
      - loop:
          - emit: ["echo", "x"]
            acknowledge: {}
        count: $EMITS
EOF
  echo "$file"
}

# run one tool at one rate; its verdict ("SUSTAINED" or "NOT SUSTAINED: why") goes to $OUT/TOOL-RATE.verdict
run_one() {
  local tool=$1 rate=$2 file report logf timef cpuf marker
  file=$(scenario "$rate")
  report=$OUT/$tool-$rate.json logf=$OUT/$tool-$rate.log timef=$OUT/$tool-$rate.time cpuf=$OUT/$tool-$rate.cpu
  local -a cmd
  if [[ $tool == phasekit-load ]]; then
    cmd=("$PHASEKIT_LOAD" run "$file" --threads 1 -o "$report"); marker='arrivals over'
  else
    cmd=("$ARTILLERY" run "$file" -o "$report"); marker='Phase started'
  fi
  echo "taskset -c $TOOL_CPU ${cmd[*]}" >"$OUT/$tool-$rate.cmd"
  cut -d' ' -f1-3 /proc/loadavg >"$OUT/$tool-$rate.load"
  counts >"$OUT/$tool-$rate.before"
  rm -f "$report"
  /usr/bin/time -v -o "$timef" taskset -c "$TOOL_CPU" timeout -k 10 $((DURATION + 90)) "${cmd[@]}" >"$logf" 2>&1 &
  local tpid=$! pid="" m w0 w1 c0a c0b c1a c1b rc=0
  CUR_PID=$tpid
  for _ in $(seq 1200); do
    grep -q "$marker" "$logf" 2>/dev/null && break
    kill -0 "$tpid" 2>/dev/null || break
    sleep 0.05
  done
  m=$(date +%s.%N)
  pid=$(child "$(child "$tpid")" || true)
  TOOL_PID=$pid
  # the steady part of the arrival window: from 2 s after the phase starts to 3 s before it should end
  if [[ -n $pid ]] && grep -q "$marker" "$logf"; then
    sleep_until "$m" 2
    w0=$(date +%s.%N); snap "$pid" >"$OUT/$tool-$rate.s0"; snap "$SERVER_PID" >"$OUT/$tool-$rate.v0"
    c0a=$(date +%s.%N); counts >"$OUT/$tool-$rate.t0"; c0b=$(date +%s.%N)
    sleep_until "$m" $((DURATION - 3))
    w1=$(date +%s.%N); snap "$pid" >"$OUT/$tool-$rate.s1"; snap "$SERVER_PID" >"$OUT/$tool-$rate.v1"
    c1a=$(date +%s.%N); counts >"$OUT/$tool-$rate.t1"; c1b=$(date +%s.%N)
    awk -v a="$w0" -v b="$w1" -v c="$c0a" -v d="$c0b" -v e="$c1a" -v f="$c1b" -v t="$TICK" \
      'BEGIN{printf "{\"seconds\":%.3f,\"countSeconds\":%.3f,\"tick\":%d}\n", b - a, (e + f - c - d) / 2, t}' >"$cpuf"
  fi
  wait "$tpid" || rc=$?
  CUR_PID=""; TOOL_PID=""
  sleep 1   # let the last disconnects reach the server
  counts >"$OUT/$tool-$rate.after"
  node - "$tool" "$rate" "$DURATION" "$EMITS" "$OUT" "$rc" >"$OUT/$tool-$rate.verdict" <<'JS'
const fs = require("node:fs");
const [tool, rate, duration, emits, out, rc] = process.argv.slice(2);
const p = (f) => `${out}/${tool}-${rate}.${f}`;
const readJson = (f) => { try { return JSON.parse(fs.readFileSync(f, "utf8")); } catch { return null; } };
const r = { tool, rate: +rate, duration: +duration, exit: +rc };
try { r.loadavg = fs.readFileSync(p("load"), "utf8").trim(); } catch {}
const time = fs.existsSync(p("time")) ? fs.readFileSync(p("time"), "utf8") : "";
const tv = (re) => { const m = re.exec(time); return m ? m[1] : null; };
r.userS = +tv(/User time \(seconds\): ([\d.]+)/); r.sysS = +tv(/System time \(seconds\): ([\d.]+)/);
const wall = tv(/Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)/) || "0";
r.wallS = wall.split(":").reduce((a, x) => a * 60 + +x, 0);
r.maxRssMiB = +tv(/Maximum resident set size \(kbytes\): (\d+)/) / 1024;
const cpu = readJson(p("cpu"));
const snap = (f) => {
  const lines = fs.existsSync(p(f)) ? fs.readFileSync(p(f), "utf8").trim().split("\n") : [];
  const o = { ticks: null, wait: new Map() };
  for (const l of lines) { const [k, v] = l.split(" "); if (k === "ticks") o.ticks = +v; else if (k) o.wait.set(k, +v); }
  return o;
};
const delta = (a, b) => {  // CPU ticks, and run-queue wait summed over the threads alive at both ends
  if (a.ticks === null || b.ticks === null) return null;
  let w = 0; for (const [tid, v] of b.wait) if (a.wait.has(tid)) w += v - a.wait.get(tid);
  return { ticks: b.ticks - a.ticks, waitNs: w };
};
const td = cpu && delta(snap("s0"), snap("s1")), sd = cpu && delta(snap("v0"), snap("v1"));
if (cpu && td && sd) {
  r.cpuPct = (100 * td.ticks) / cpu.tick / cpu.seconds; r.serverCpuPct = (100 * sd.ticks) / cpu.tick / cpu.seconds;
  r.toolWaitPct = td.waitNs / 1e7 / cpu.seconds; r.serverWaitPct = sd.waitNs / 1e7 / cpu.seconds;
  // what the server saw per second over the same steady window: new connections, acks sent
  const c0 = readJson(p("t0")), c1 = readJson(p("t1"));
  if (c0 && c1) { r.serverArrivalRate = (c1.connections - c0.connections) / cpu.countSeconds; r.serverAckRate = (c1.acks - c0.acks) / cpu.countSeconds; }
}
// the arrival window as the tool itself ran it: Artillery prints when its phase started and completed
if (tool === "artillery") {
  const log = fs.existsSync(p("log")) ? fs.readFileSync(p("log"), "utf8") : "";
  const at = (w) => { const m = new RegExp(`Phase ${w}: .* (\\d\\d):(\\d\\d):(\\d\\d)\\(`).exec(log); return m ? +m[1] * 3600 + +m[2] * 60 + +m[3] : null; };
  const a0 = at("started"), a1 = at("completed");
  if (a0 !== null && a1 !== null) r.arrivalWindowS = (a1 - a0 + 86400) % 86400;
}
const b = readJson(p("before")), a = readJson(p("after"));
if (a && b) { r.serverEchoes = a.events.echo - (b.events.echo || 0); r.serverAcks = a.acks - b.acks; r.serverConnections = a.connections - b.connections; }
const rep = readJson(`${out}/${tool}-${rate}.json`);
r.errors = {};
if (rep && tool === "phasekit-load") {
  const c = rep.total.counters, h = rep.total.histograms;
  r.created = c["vusers.created"] || 0; r.completed = c["vusers.completed"] || 0; r.failed = c["vusers.failed"] || 0;
  r.emits = c["socketio.emit"] || 0; r.acks = c["socketio.ack"] || 0;
  r.late = c["arrivals.late"] || 0; r.dropped = c["arrivals.dropped"] || 0;
  for (const [k, v] of Object.entries(c)) if (k.startsWith("errors.")) r.errors[k.slice(7)] = v;
  const s = (n) => h[n] && h[n].summaryMs;
  if (s("socketio.response_time")) { const x = s("socketio.response_time"); r.ack = [x.p50, x.p95, x.p99]; }
  if (s("vusers.session_length")) { const x = s("vusers.session_length"); r.session = [x.p50, x.p95, x.p99]; }
  if (s("socketio.connect_time")) { const x = s("socketio.connect_time"); r.connect = [x.p50, x.p95, x.p99]; }
} else if (rep) {
  const c = rep.aggregate.counters, s = rep.aggregate.summaries || {};
  r.created = c["vusers.created"] || 0; r.completed = c["vusers.completed"] || 0; r.failed = c["vusers.failed"] || 0;
  r.emits = c["engine.socketio.emit"] || 0; r.acks = null;  // the v3 engine counts no acks
  for (const [k, v] of Object.entries(c)) if (k.startsWith("errors.")) r.errors[k.slice(7)] = v;
  // Artillery 2 drops the v3 engine's per-ack 'response' events: no ack latency metric exists
  const ackH = s["socketio.response_time"] || s["engine.socketio.response_time"];
  if (ackH) r.ack = [ackH.p50, ackH.p95, ackH.p99];
  const x = s["vusers.session_length"]; if (x) r.session = [x.p50, x.p95, x.p99];
}
const expected = +rate * +duration, why = [];
if (!rep) why.push("no report");
if (rep && r.created < expected * 0.99) why.push(`created ${r.created} of ${expected}`);
if (rep && r.completed < r.created) why.push(`completed ${r.completed} of ${r.created}`);
if (r.failed) why.push(`${r.failed} users failed`);
const nerr = Object.values(r.errors).reduce((a, x) => a + x, 0);
if (nerr) why.push(`errors ${JSON.stringify(r.errors)}`);
if (r.cpuPct === undefined) why.push("CPU not sampled");
else if (r.cpuPct >= 95 && tool === "phasekit-load") why.push(`CPU ${r.cpuPct.toFixed(0)} %`);
// Artillery's arrival timer (nanotimer) spins on setImmediate for any interval under 25 ms, so it takes
// all the CPU it can get at every rate of 40/s and up: its CPU is reported, but lateness shows instead
// as fewer connections per second at the server and a phase that runs past its duration.
if (r.serverArrivalRate !== undefined && r.serverArrivalRate < 0.95 * +rate) why.push(`server saw ${r.serverArrivalRate.toFixed(0)} connections/s`);
if (r.arrivalWindowS !== undefined && r.arrivalWindowS > +duration + 1) why.push(`phase took ${r.arrivalWindowS} s`);
if (r.late) why.push(`${r.late} late arrivals`);
if (r.dropped) why.push(`${r.dropped} dropped arrivals`);
if (r.exit !== 0) why.push(`exit ${r.exit}`);
r.sustained = why.length === 0; r.why = why.join(", ");
fs.appendFileSync(`${out}/results.jsonl`, JSON.stringify(r) + "\n");
const f = (v, d = 1) => (v === undefined || v === null ? "-" : (+v).toFixed(d));
console.log(`${tool} @ ${rate}/s: created ${r.created} completed ${r.completed} failed ${r.failed}, server acks ${r.serverAcks}, ` +
  `ack p50/p99 ${r.ack ? f(r.ack[0], 2) + "/" + f(r.ack[2], 2) : "-"} ms, session p50/p99 ${r.session ? f(r.session[0]) + "/" + f(r.session[2]) : "-"} ms, ` +
  `CPU ${f(r.cpuPct, 0)} % (server ${f(r.serverCpuPct, 0)} %), ${f(r.userS + r.sysS, 2)} CPU s over ${f(r.wallS)} s, peak RSS ${f(r.maxRssMiB)} MiB`);
console.log(r.sustained ? "SUSTAINED" : `NOT SUSTAINED: ${r.why}`);
JS
}

rm -f "$OUT/results.jsonl"
declare -A STOPPED=()
for rate in "${RATES[@]}"; do
  for tool in $TOOLS; do
    [[ -n ${STOPPED[$tool]:-} ]] && continue
    log "$tool at $rate arrivals/s for $DURATION s"
    run_one "$tool" "$rate"
    sed 's/^/[compare]   /' "$OUT/$tool-$rate.verdict" >&2
    [[ $(tail -1 "$OUT/$tool-$rate.verdict") == SUSTAINED ]] || STOPPED[$tool]=1
    sleep 2
  done
done

# --- the table ---
node - "$OUT" "$DURATION" "$EMITS" >"$OUT/table.md" <<'JS'
const fs = require("node:fs");
const [out, duration, emits] = process.argv.slice(2);
const rows = fs.readFileSync(`${out}/results.jsonl`, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const f = (v, d = 1) => (v === undefined || v === null ? "–" : (+v).toFixed(d));
const trip = (x, d = 2) => (x ? x.map((v) => f(v, d)).join(" / ") : "not reported");
console.log("| tool | asked /s | users created → completed (failed) | connections/s seen by the server | arrival window s | acks/s seen by the server | ack p50 / p95 / p99 ms | session p50 / p95 / p99 ms | errors | CPU % of one core | waited for CPU % | CPU s, whole run | peak RSS MiB | server CPU % (waited %) | load avg | sustained |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  const errs = Object.entries(r.errors).map(([k, v]) => `${k}=${v}`).join(", ") || "0";
  const lateDrop = r.tool === "phasekit-load" ? ` (late ${r.late}, dropped ${r.dropped})` : "";
  const win = r.tool === "artillery" ? f(r.arrivalWindowS, 0) : `${r.duration} (schedule)`;
  console.log(`| ${r.tool} | ${r.rate} | ${r.created} → ${r.completed} (${r.failed}) | ${f(r.serverArrivalRate, 0)} | ${win} | ${f(r.serverAckRate, 0)} | ${trip(r.ack)} | ${trip(r.session, 1)} | ${errs}${lateDrop} | ${f(r.cpuPct, 0)} | ${f(r.toolWaitPct, 0)} | ${f(r.userS + r.sysS, 2)} | ${f(r.maxRssMiB)} | ${f(r.serverCpuPct, 0)} (${f(r.serverWaitPct, 0)}) | ${(r.loadavg || "").split(" ")[0]} | ${r.sustained ? "yes" : "no: " + r.why} |`);
}
const best = {};
for (const r of rows) if (r.sustained) best[r.tool] = Math.max(best[r.tool] || 0, r.rate);
console.log("");
for (const t of Object.keys(Object.fromEntries(rows.map((r) => [r.tool, 1])))) console.log(`highest sustained rate, ${t}: ${best[t] ? best[t] + " arrivals/s" : "none"}`);
if (best["phasekit-load"] && best.artillery) console.log(`ratio phasekit-load / artillery: ${(best["phasekit-load"] / best.artillery).toFixed(1)}×`);
JS
cat "$OUT/table.md"
log "versions: node $(node --version), socket.io $(node -p "require('$PHASEKIT_NODE_MODULES/socket.io/package.json').version"), artillery $(node -p "require('$ART_DIR/node_modules/artillery/package.json').version"), artillery-engine-socketio-v3 $(node -p "require('$ART_DIR/node_modules/artillery-engine-socketio-v3/package.json').version") (socket.io-client $(node -p "require('$ART_DIR/node_modules/socket.io-client/package.json').version"))"
log "results: $OUT/results.jsonl, $OUT/table.md"
