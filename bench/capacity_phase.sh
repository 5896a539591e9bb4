#!/usr/bin/env bash
# The per-phase table of docs/capacity.md: start a phase's topology on this machine, search for the
# most concurrent users of its shipped scenario that meet its SLO (scenarios/targets.json), and report
# memory and backend acquisition beside it.
#   bench/capacity_phase.sh PHASE USERS [RAMP] [HOLD] [SCENARIO]    (after ./scripts/build.sh; loopback only)
#     PHASE 1: one orchestrator, PHASE=1 (pool=none: a cold sandbox per session, in-process store)
#     PHASE 2: deploy/local/phasekit-local.sh -n 2 --phase 2 (2 orchestrators behind nginx, redis store,
#              warm pools)
#     PHASE 3: deploy/local/phasekit-local.sh -n 2 -m 2 --phase 3 (+ redis queue and 2 workers)
#     USERS:   the steps, e.g. 300,600,1200; RAMP / HOLD: seconds (default 10 / 20)
# Memory: `ps` every 5 s (with thousands of processes each `ps` costs a few percent of a core); "server" is the RSS of the phasekit processes, redis and nginx, "sandboxes" of
# every phasekit-sandbox and what runs in it, both as peaks minus the figure before the load.
# KEEP=1 keeps the work folder (logs, step reports).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
phase=${1:?usage: bench/capacity_phase.sh PHASE USERS [RAMP] [HOLD] [SCENARIO]}
users=${2:?the steps, e.g. 300,600,1200}
ramp=${3:-10}
hold=${4:-20}
scenario=${5:-scenarios/phase$phase.yml}
work=$(mktemp -d /tmp/phasekit-capacity-XXXXXX)
chmod 711 "$work"
server=
sampler=
cleanup() {
  [[ -n "$sampler" ]] && kill "$sampler" 2>/dev/null
  if [[ "$phase" == 1 ]]; then
    [[ -n "$server" ]] && { kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  else
    deploy/local/phasekit-local.sh stop --dir "$work/local" >/dev/null 2>&1 || true
  fi
  [[ -n "${KEEP:-}" ]] && echo "capacity_phase: work folder $work" || rm -rf "$work"
}
trap cleanup EXIT

ports=()
if [[ "$phase" == 1 ]]; then
  start_orchestrator "$work/orchestrator.log" PHASE=1 WORKSPACE_ROOT="$work/ws"
  target=http://127.0.0.1:$port
  ports=("$admin_port")
else
  workers=()
  [[ "$phase" == 3 ]] && workers=(-m 2)
  PHASE=$phase deploy/local/phasekit-local.sh start -n 2 "${workers[@]}" --phase "$phase" --dir "$work/local" > /dev/null
  # shellcheck disable=SC1091
  source "$work/local/state.env"
  target=$LB_URL
  read -r -a ports <<<"$ORCHESTRATOR_ADMIN_PORTS ${WORKER_ADMIN_PORTS:-}"
fi

# RSS in KiB: phasekit's own processes with redis and nginx, and the sandboxes with all they run.
sample() {
  ps -e -o pid=,ppid=,rss=,comm= | awk '
    { pid[$1] = $2; rss[$1] = $3; comm[$1] = $4 }
    END {
      for (p in pid) {
        c = comm[p]
        if (c ~ /^phasekit-(orches|worker)/ || c == "redis-server" || c == "nginx") { server += rss[p]; continue }
        for (q = p; q in pid && q > 1; q = pid[q]) { if (comm[q] == "phasekit-sandbo") { sandboxes += rss[p]; break } }
      }
      printf "%d %d\n", server, sandboxes
    }'
}
read -r base_server base_sandboxes < <(sample)
(while :; do sample; sleep 5; done) > "$work/memory.txt" &
sampler=$!

echo "capacity_phase: phase $phase, $scenario, steps $users (ramp $ramp s, hold $hold s) on $target"
build/bin/phasekit-load capacity "$scenario" --targets scenarios/targets.json --phase "$phase" --target "$target" \
  --users "$users" --ramp "$ramp" --hold "$hold" --quiet --out-dir "$work/steps" -o "$work/capacity.json" || true
kill "$sampler" 2>/dev/null
sampler=

jq -r '"most users meeting the SLO: \(.maxUsers) (target \(.targetUsers): \(if .targetMet then "met" else "missed" end))"' \
  "$work/capacity.json" 2>/dev/null || true
awk -v bs="$base_server" -v bx="$base_sandboxes" '
  { if ($1 > ms) ms = $1; if ($2 > mx) mx = $2 }
  END { printf "memory peaks above the start: server %.1f MiB, sandboxes %.1f MiB\n", (ms - bs) / 1024, (mx - bx) / 1024 }' \
  "$work/memory.txt"
: > "$work/metrics.txt"
for p in "${ports[@]}"; do curl -s "http://127.0.0.1:$p/metrics" >> "$work/metrics.txt" || true; done
if read -r count p50 p95 p99 < <(histogram_quantiles 'phasekit_backend_acquire_seconds_bucket{' "$work/metrics.txt"); then
  echo "backend acquisition ($count): p50 $p50 ms p95 $p95 ms p99 $p99 ms"
else
  echo "no backend acquisitions in /metrics"
fi
grep -E '^phasekit_backend_acquire_seconds_count' "$work/metrics.txt" | awk '{ split($1, a, "source=\""); split(a[2], b, "\""); n[b[1]] += $2 } END { for (s in n) printf "  %s: %d\n", s, n[s] }' || true
