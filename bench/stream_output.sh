#!/usr/bin/env bash
# Large outputs at a steady rate: RATE users a second arrive for SECONDS, each runs one call whose
# command prints a lot (`seq 1 20000`: 108,894 bytes, streamed as tool:output chunks above
# STREAM_OUTPUT_THRESHOLD_BYTES), approves it, and waits for its tool:result. The approval → result
# time is read from the orchestrator's own histogram (phasekit_tool_call_duration_seconds{tool="shell"})
# and from phasekit-load's view of the same step. Target (issue 14): p95 under 200 ms at 20 calls/s.
#   bench/stream_output.sh [SECONDS] [RATE] [COMMAND]      (after ./scripts/build.sh; loopback only)
# The warm pool holds a backend per user in flight (POOL_MIN_SIZE, default 40); SESSION_GRACE_MS=0
# gives a backend back as its user leaves. KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
seconds=${1:-30}
rate=${2:-20}
command=${3:-seq 1 20000}
work=$(mktemp -d /tmp/phasekit-stream-XXXXXX)
chmod 711 "$work"
server=
cleanup() {
  [[ -n "$server" ]] && { kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  [[ -n "${KEEP:-}" ]] && echo "stream_output: work folder $work" || rm -rf "$work"
}
trap cleanup EXIT
start_orchestrator "$work/log" WORKSPACE_ROOT="$work/ws" ENABLE_CONTAINER_POOL=true \
  POOL_MIN_SIZE="${POOL_MIN_SIZE:-40}" POOL_MAX_SIZE="${POOL_MAX_SIZE:-400}" SESSION_GRACE_MS=0
call_scenario "$work/stream.yml" "http://127.0.0.1:$port" "{ duration: $seconds, arrivalRate: $rate }" "$command"
build/bin/phasekit-load run "$work/stream.yml" --progress 10 -o "$work/run.json" 2>&1 | tail -25 || true
curl -s "http://127.0.0.1:$admin_port/metrics" > "$work/metrics.txt"
read -r count p50 p95 p99 < <(histogram_quantiles 'phasekit_tool_call_duration_seconds_bucket{tool="shell"' \
  "$work/metrics.txt") || { echo "stream_output: no shell calls in /metrics"; exit 1; }
echo "server: $count calls, approval -> tool:result  p50 $p50 ms  p95 $p95 ms  p99 $p99 ms"
