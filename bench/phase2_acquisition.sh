#!/usr/bin/env bash
# Backend acquisition under the phase-2 load: phasekit-orchestrator with the warm pool
# (ENABLE_CONTAINER_POOL=true, the phase-2 pool sizes) driven by scenarios/phase2.yml, then the
# p50/p95/p99 of phasekit_backend_acquire_seconds read from the server's own /metrics.
#   bench/phase2_acquisition.sh [SECONDS] [--autoscaler] [--local N]   (after ./scripts/build.sh; loopback only)
#     --autoscaler  ENABLE_AUTOSCALER=true, evaluated every second, one backend per session
#                   (AUTOSCALER_TARGET_SESSIONS_PER_REPLICA=1, AUTOSCALER_MAX_REPLICAS=POOL_MAX_SIZE)
#     --local N     the phase-2 topology instead of one process: deploy/local/phasekit-local.sh start
#                   -n N --phase 2 (redis store, nginx in front); load on its LB_URL, and the quantiles
#                   of all N orchestrators' /metrics added bucket by bucket
# Without --local, PHASE=2's store=redis is left out: one orchestrator on the in-process store.
# POOL_MIN_SIZE / POOL_MAX_SIZE from the environment override the phase-2 sizes (10 / 5000). KEEP=1 keeps
# the work folder (logs, report, /metrics) and prints its name.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
seconds=60
autoscaler=0
local_n=0
while (($# > 0)); do
  case "$1" in
    --autoscaler) autoscaler=1; shift ;;
    --local) local_n=$2; shift 2 ;;
    [0-9]*) seconds=$1; shift ;;
    *) echo "phase2_acquisition: unknown argument $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d /tmp/phasekit-phase2-XXXXXX)
chmod 711 "$work"
[[ -z "${KEEP:-}" ]] || echo "phase2_acquisition: work folder $work"
export ENABLE_CONTAINER_POOL=true POOL_MIN_SIZE=${POOL_MIN_SIZE:-10} POOL_MAX_SIZE=${POOL_MAX_SIZE:-5000}
if ((autoscaler)); then
  export ENABLE_AUTOSCALER=true AUTOSCALER_INTERVAL_MS=1000 AUTOSCALER_TARGET_SESSIONS_PER_REPLICA=1 \
    AUTOSCALER_MAX_REPLICAS=$POOL_MAX_SIZE
fi
ports=()
if ((local_n > 0)); then
  trap 'deploy/local/phasekit-local.sh stop --dir "$work/local" >/dev/null; [[ -n "${KEEP:-}" ]] || rm -rf "$work"' EXIT
  deploy/local/phasekit-local.sh start -n "$local_n" --phase 2 --dir "$work/local"
  # shellcheck disable=SC1091
  source "$work/local/state.env"
  target=$LB_URL
  read -r -a ports <<<"$ORCHESTRATOR_ADMIN_PORTS"
else
  trap 'kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null; [[ -n "${KEEP:-}" ]] || rm -rf "$work"' EXIT
  # As a load balancer would: no traffic before /ready, which waits for POOL_MIN_SIZE idle backends.
  start_orchestrator "$work/log" WORKSPACE_ROOT="$work/ws"
  grep -o '"msg":"server.ready".*' "$work/log"
  target=http://127.0.0.1:$port
  ports=("$admin_port")
fi
build/bin/phasekit-load run scenarios/phase2.yml --target "$target" --max-duration "$seconds" \
  --progress 10 -o "$work/phase2.json" || true
: > "$work/metrics.txt"
for p in "${ports[@]}"; do curl -s "http://127.0.0.1:$p/metrics" >> "$work/metrics.txt"; done
read -r count p50 p95 p99 < <(histogram_quantiles 'phasekit_backend_acquire_seconds_bucket{' "$work/metrics.txt") ||
  { echo "no phasekit_backend_acquire_seconds in /metrics"; exit 1; }
printf 'backend acquisition p50: %s ms\nbackend acquisition p95: %s ms\nbackend acquisition p99: %s ms\nacquisitions: %d\n' \
  "$p50" "$p95" "$p99" "$count"
grep -E '^phasekit_backend_acquire_seconds_count|^phasekit_pool_backends_created_total|^phasekit_pool_waits_total|^phasekit_pool_acquire_timeouts_total|^phasekit_pool_target_idle|^phasekit_autoscaler_desired_replicas' \
  "$work/metrics.txt" || true
