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
PORT=0 WORKSPACE_ROOT="$work/ws" ENABLE_CONTAINER_POOL=true POOL_MIN_SIZE="${POOL_MIN_SIZE:-40}" \
  POOL_MAX_SIZE="${POOL_MAX_SIZE:-400}" SESSION_GRACE_MS=0 build/bin/phasekit-orchestrator > "$work/log" 2>&1 &
server=$!
port=
for _ in $(seq 200); do
  port=$(grep -o '"msg":"server.listening".*"port":[0-9]*' "$work/log" | grep -o '[0-9]*$' || true)
  [[ -n "$port" ]] && break
  sleep 0.05
done
[[ -n "$port" ]] || { cat "$work/log"; exit 1; }
for _ in $(seq 1200); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" == 200 ]] && break
  sleep 0.1
done
cat > "$work/stream.yml" <<EOF
config:
  target: "http://127.0.0.1:$port"
  phases:
    - { duration: $seconds, arrivalRate: $rate }
  socketio:
    transports: ["websocket"]
  timeout: 30
scenarios:
  - engine: socketio
    flow:
      - emit:
          channel: "message"
          data: "$command"
        acknowledge:
          match: { json: "\$.0.ok", value: true }
        response:
          channel: "tool:request"
          capture: { json: "\$.callId", as: "callId" }
      - emit:
          channel: "tool:approval"
          data: { callId: "{{ callId }}", approved: true }
        response:
          channel: "tool:result"
          match: { json: "\$.callId", value: "{{ callId }}" }
EOF
build/bin/phasekit-load run "$work/stream.yml" --progress 10 -o "$work/run.json" 2>&1 | tail -25 || true
curl -s "http://127.0.0.1:$port/metrics" > "$work/metrics.txt"
# Quantiles of the server's histogram (cumulative buckets, linear within a bucket).
awk -v name='phasekit_tool_call_duration_seconds_bucket{tool="shell"' '
  index($0, name) == 1 {
    match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); v = $NF
    total[le] += v; if (!(le in seen)) { seen[le] = 1; order[n++] = le }
  }
  END {
    if (n == 0) { print "stream_output: no shell calls in /metrics"; exit 1 }
    count = total["+Inf"]
    printf "server: %d calls, approval -> tool:result", count
    for (qi = 1; qi <= 3; qi++) {
      q = (qi == 1 ? 0.5 : qi == 2 ? 0.95 : 0.99); rank = q * count; prev_le = 0; prev = 0
      for (i = 0; i < n; i++) {
        le = order[i]; if (le == "+Inf") continue
        if (total[le] >= rank) { f = (total[le] == prev) ? 0 : (rank - prev) / (total[le] - prev)
          printf "  p%s %.1f ms", (qi == 1 ? "50" : qi == 2 ? "95" : "99"), (prev_le + f * (le - prev_le)) * 1000; break }
        prev_le = le; prev = total[le]
      }
    }
    printf "\n"
  }' "$work/metrics.txt"
