#!/usr/bin/env bash
# Backend acquisition under the phase-2 load: phasekit-orchestrator with the warm pool
# (ENABLE_CONTAINER_POOL=true, the phase-2 pool sizes) driven by scenarios/phase2.yml, then the
# p50/p95/p99 of phasekit_backend_acquire_seconds read from the server's own /metrics.
#   bench/phase2_acquisition.sh [SECONDS]      (after ./scripts/build.sh; loopback only)
# PHASE=2 itself also selects store=redis (REDIS_URL preset), which is the scale-out issue's; this
# runs the phase-2 pool on the in-process store.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
work=$(mktemp -d /tmp/phasekit-phase2-XXXXXX)
chmod 711 "$work"
PORT=0 WORKSPACE_ROOT="$work/ws" ENABLE_CONTAINER_POOL=true POOL_MIN_SIZE=10 POOL_MAX_SIZE=5000 \
  build/bin/phasekit-orchestrator > "$work/log" 2>&1 &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
port=
for _ in $(seq 100); do
  port=$(grep -o '"msg":"server.listening".*"port":[0-9]*' "$work/log" | grep -o '[0-9]*$' || true)
  [[ -n "$port" ]] && break
  sleep 0.1
done
[[ -n "$port" ]] || { cat "$work/log"; exit 1; }
build/bin/phasekit-load run scenarios/phase2.yml --target "http://127.0.0.1:$port" --max-duration "$seconds" \
  --progress 10 -o "$work/phase2.json" || true
curl -s "http://127.0.0.1:$port/metrics" > "$work/metrics.txt"
# Quantiles of a Prometheus histogram (cumulative buckets, all sources added), linear within a bucket.
awk -v name=phasekit_backend_acquire_seconds_bucket '
  index($0, name "{") == 1 {
    match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); v = $NF
    total[le] += v; if (!(le in seen)) { seen[le] = 1; order[n++] = le }
  }
  END {
    if (n == 0) { print "no phasekit_backend_acquire_seconds in /metrics"; exit 1 }
    count = total["+Inf"]
    for (qi = 1; qi <= 3; qi++) {
      q = (qi == 1 ? 0.5 : qi == 2 ? 0.95 : 0.99); rank = q * count; prev_le = 0; prev = 0
      for (i = 0; i < n; i++) {
        le = order[i]; if (le == "+Inf") continue
        if (total[le] >= rank) { frac = total[le] > prev ? (rank - prev) / (total[le] - prev) : 0
          printf "backend acquisition p%g: %.3f ms (bucket %s–%s s)\n", q * 100, 1000 * (prev_le + frac * (le - prev_le)), prev_le, le; break }
        prev_le = le; prev = total[le]
      }
    }
    printf "acquisitions: %d\n", count
  }' "$work/metrics.txt"
grep -E '^phasekit_backend_acquire_seconds_count' "$work/metrics.txt"
