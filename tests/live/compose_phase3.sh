#!/usr/bin/env bash
# live.compose_phase3: the phase-3 compose stack (deploy/docker-compose.scale.yml: HAProxy, 2
# orchestrators, 2 workers that run the tools, redis) in real containers, on a private dockerd, with
# load that the drills' checker counts call by call (tests/drills/client.js and checker.js: official
# socket.io-client users whose every command appends its op id to effects.log in its workspace).
#  1-2. a private dockerd and the images (tests/live/stack.sh);
#  3. every healthcheck healthy; the workers sandbox their tools, the orchestrators run none; a
#     tool's escape attempt (tests/live/tool_escape.js) finds no secret and no redis;
#  4. docker kill of a worker under load: every approved call gets one tool:result, nothing is
#     lost, and an effect runs twice only for a counted redelivery;
#  5. docker restart redis under load: any call refused or failed meanwhile says UNAVAILABLE, every
#     user succeeds again afterwards with nothing else restarted; the checker as in 4;
#  6. redis stopped for 6 s under load: the orchestrators' breakers open, a probe's calls meanwhile
#     are refused with UNAVAILABLE at once, and after redis starts again the breakers close, every
#     user succeeds, no container restarted, and the checker counts no anomaly;
#  7. docker-compose down -v leaves no container, network or volume of the project.
COMPOSE_FILES=("$PHASEKIT_SOURCE_DIR/deploy/docker-compose.scale.yml")
source "$(dirname "$0")/stack.sh"

# 3. The stack.
stamp "compose up"
up() { compose up -d --no-build --scale orchestrator=2 --scale worker=2 lb orchestrator worker redis 2>&1 | tail -20; return "${PIPESTATUS[0]}"; }
check "docker-compose up: lb, 2 orchestrators, 2 workers, redis (project $project)" up
check "every healthcheck turns healthy (redis, 2 orchestrators, 2 workers, lb) within 120 s" wait_healthy 6
stamp "healthy"
sandboxes() {
  local id log
  for id in $(compose ps -q worker); do
    "$DOCKER" logs "$id" >"$TMP/worker.log" 2>&1
    grep '"msg":"sandbox.ready".*"sandbox":"namespaces"' "$TMP/worker.log" >/dev/null ||
      { echo "$id: no sandbox.ready (namespaces):"; tail -20 "$TMP/worker.log"; return 1; }
  done
  for id in $(compose ps -q orchestrator); do
    [[ "$("$DOCKER" inspect -f '{{.HostConfig.Privileged}}' "$id")" == false ]] || { echo "$id: privileged"; return 1; }
  done
}
check "workers sandbox their tools; orchestrators run none and are not privileged" sandboxes
# In phase 3 the tools run in the workers, whose environment holds REDIS_PASSWORD too.
check "a tool (run by a worker) reads neither REDIS_PASSWORD nor AUTH_SECRET and cannot reach redis" escape

# Load that the checker counts (tests/drills/client.js), and what it needs.
effects_root() { echo "$("$DOCKER" volume inspect -f '{{.Mountpoint}}' "${project}_workspaces")/sessions"; }
declare -A load_pids
start_load() {  # start_load PREFIX [CONFIG_JSON]: 4 users through HAProxy, or as CONFIG_JSON changes it
  local cfg extra="${2:-}"
  [[ -n "$extra" ]] || extra='{}'
  cfg="$(node -e 'console.log(JSON.stringify({ modules: process.env.PHASEKIT_NODE_MODULES, secret: "none",
    urls: [process.argv[1]], users: 4, inflight: 1, pauseMs: 0, history: process.argv[2], stopFile: process.argv[3],
    commandSleepMs: 300, resultWaitMs: 60000, prefix: process.argv[4],
    ...JSON.parse(process.argv[5]) }))' "$LB_URL" "$TMP/history-$1.jsonl" "$TMP/stop-$1" "$1" "$extra")"
  node "$SRC/tests/drills/client.js" "$cfg" >"$TMP/client-$1.out" 2>&1 &
  load_pids[$1]=$!
  track_pid "$!"
}
# ok_since PREFIX T N [USERS]: at least N successful calls since unix ms T (and every user among them)
ok_since() {
  node -e '
    const fs = require("fs");
    const [file, since, n, users] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4] || 0)];
    const h = fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map(JSON.parse) : [];
    const ok = h.filter((e) => e.ev === "result" && e.exitCode === 0 && !e.code && e.t >= since);
    process.exit(ok.length >= n && new Set(ok.map((e) => e.user)).size >= users ? 0 : 1);' "$TMP/history-$1.jsonl" "$2" "$3" "${4:-0}"
}
wait_ok() {  # wait_ok PREFIX T N USERS SECONDS
  local deadline=$((SECONDS + $5))
  until ok_since "$1" "$2" "$3" "$4"; do
    ((SECONDS < deadline)) || { echo "fewer than $3 successful calls from $4 users within $5 s"; tail -5 "$TMP/client-$1.out"; return 1; }
    sleep 0.5
  done
}
now_ms() { node -e 'console.log(Date.now())'; }
stop_load() {
  touch "$TMP/stop-$1"
  wait "${load_pids[$1]}" || { echo "client.js exited with $?"; tail -20 "$TMP/client-$1.out"; return 1; }
}
checker() {  # checker PREFIX: the checker's table over this load's calls and effects; fails on any anomaly
  node -e '
    const { check, table, readHistory, readEffects } = require(process.argv[1]);
    const mine = readEffects(process.argv[3]).filter((op) => op.startsWith(process.argv[4] + "u"));
    const r = check(readHistory(process.argv[2]), mine);
    console.log(table(r));
    process.exit(r.anomalies.length > 0 || r.approvedCalls === 0 ? 1 : 0);' \
    "$SRC/tests/drills/checker.js" "$TMP/history-$1.jsonl" "$(effects_root)" "$1"
}

# under_load PREFIX FAULT...: load flowing (8 calls, every user), the fault, then 12 more calls from
# every user after it, then the load stops; fault_at is when the fault began (unix ms).
under_load() {
  local prefix="$1"
  shift
  start_load "$prefix"
  wait_ok "$prefix" 0 8 4 60 || return 1
  fault_at="$(now_ms)"
  "$@" || return 1
  wait_ok "$prefix" "$(now_ms)" 12 4 90 || return 1
  stop_load "$prefix"
}

# 4. A worker killed under load.
stamp "worker kill"
kill_worker() {
  local victim
  victim="$(compose ps -q worker | head -1)"
  "$DOCKER" kill "$victim" >/dev/null && echo "killed worker $victim"
}
worker_kill() { under_load w kill_worker && checker w; }
check "docker kill of a worker under load: every call ends once (checker: 0 anomalies)" worker_kill
sed 's/^/     /' "$TMP/check.out" | head -12

# 5. Redis restarted under load.
stamp "redis restart"
restart_redis() { "$DOCKER" restart -t 5 "$(compose ps -q redis)" >/dev/null && echo "restarted redis"; }
only_unavailable() {  # only_unavailable PREFIX: every error since the fault is UNAVAILABLE
  node -e '
    const h = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse);
    const codes = h.filter((e) => e.t >= Number(process.argv[2]) && e.code).map((e) => e.code);
    const other = codes.filter((c) => c !== "UNAVAILABLE");
    console.log(`errors since the fault: ${codes.length}, other than UNAVAILABLE: ${other.length} ${other.join(" ")}`);
    process.exit(other.length === 0 ? 0 : 1);' "$TMP/history-$1.jsonl" "$fault_at"
}
redis_restart() { under_load r restart_redis && only_unavailable r && checker r; }
check "docker restart redis under load: no error but UNAVAILABLE, every user back, checker 0 anomalies" redis_restart
sed 's/^/     /' "$TMP/check.out" | head -12

# 6. Redis down for 6 s under load: the breakers open, calls are refused with UNAVAILABLE at once,
# and everything comes back when redis does, with no container restarted. A probe (2 users, connected
# before the outage) calls only while it lasts, one call every 300 ms, so what users see is measured.
stamp "redis outage"
started_at() { "$DOCKER" inspect -f '{{.Name}} {{.State.StartedAt}} {{.RestartCount}}' $(compose ps -q orchestrator worker lb); }
outage_facts() {  # outage_facts FROM TO: the probe's refusals between unix ms FROM and TO
  node -e '
    const h = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse);
    const [from, to] = [Number(process.argv[2]), Number(process.argv[3])];
    const refused = h.filter((e) => e.t >= from && e.t <= to && (e.ev === "refused" || e.ev === "approval_refused"));
    const ok = h.filter((e) => e.t >= from && e.t <= to && e.ev === "result" && e.exitCode === 0 && !e.code);
    const other = refused.filter((e) => e.code !== "UNAVAILABLE");
    const ms = refused.map((e) => e.ms).sort((a, b) => a - b);
    const q = (p) => (ms.length ? ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] : 0);
    console.log(`probe during the outage: ${refused.length} refused (${other.length} not UNAVAILABLE: ${other.map((e) => e.code).join(" ")}), ` +
                `send to refusal p50 ${q(0.5)} ms, p95 ${q(0.95)} ms, max ${ms.length ? ms[ms.length - 1] : 0} ms; ${ok.length} succeeded`);
    // Fast: no refusal waits for the call timeout (CIRCUIT_BREAKER_TIMEOUT_MS, 3 s); most are immediate.
    process.exit(refused.length >= 5 && other.length === 0 && q(0.5) < 100 && ms[ms.length - 1] < 2000 ? 0 : 1);' \
    "$TMP/history-p.jsonl" "$1" "$2"
}
breakers() {  # breakers FROM: the orchestrators logged a breaker opening after FROM (RFC 3339) and closing again
  local id opened=0 reopened=0
  for id in $(compose ps -q orchestrator); do
    "$DOCKER" logs --since "$1" "$id" 2>&1 | grep '"msg":"breaker.state"' >"$TMP/breakers.log" || true
    sed 's/^/       /' "$TMP/breakers.log" | head -6
    grep -q '"state":"open"' "$TMP/breakers.log" && opened=$((opened + 1))
    # The last word of each breaker that opened is closed: it recovered by itself.
    if grep -q '"state":"open"' "$TMP/breakers.log"; then
      node -e '
        const last = new Map();
        for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)) {
          const e = JSON.parse(l); last.set(e.breaker, e.state);
        }
        process.exit([...last.values()].every((s) => s === "closed") ? 0 : 1);' "$TMP/breakers.log" &&
        reopened=$((reopened + 1))
    fi
  done
  echo "orchestrators whose breakers opened: $opened, closed again: $reopened"
  ((opened > 0 && reopened == opened))
}
redis_outage() {
  local before since healed_at
  before="$(started_at)"
  since="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  start_load o
  start_load p "{\"users\": 2, \"commandSleepMs\": 0, \"pauseMs\": 300, \"resultWaitMs\": 30000, \"goFile\": \"$TMP/go-p\"}"
  wait_ok o 0 8 4 60 || return 1
  "$DOCKER" stop -t 5 "$(compose ps -q redis)" >/dev/null || return 1
  fault_at="$(now_ms)"
  touch "$TMP/go-p"
  sleep 6
  healed_at="$(now_ms)"
  "$DOCKER" start "$(compose ps -q redis)" >/dev/null || return 1
  echo "redis stopped for $((healed_at - fault_at)) ms: docker stop returned at $(date -u -d "@$((fault_at / 1000))" +%T).$(printf %03d $((fault_at % 1000))), docker start began at $(date -u -d "@$((healed_at / 1000))" +%T).$(printf %03d $((healed_at % 1000)))"
  wait_ok o "$healed_at" 12 4 90 || return 1
  wait_ok p "$healed_at" 4 2 90 || return 1
  stop_load p && stop_load o || return 1
  # The first second is the breakers' to open (their volume threshold); from then on, every call fast.
  outage_facts "$((fault_at + 1000))" "$healed_at" || return 1
  breakers "$since" || return 1
  [[ "$(started_at)" == "$before" ]] || { echo "a container restarted:"; echo "$before"; started_at; return 1; }
  checker o && checker p
}
check "redis stopped 6 s under load: breakers open, the probe refused UNAVAILABLE at once, all back, none restarted" redis_outage
sed 's/^/     /' "$TMP/check.out" | head -24

# 7. Down.
stack_down
summary
