#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job: the orchestrator on its embedded defaults,
# driven by phasekit-load with a shipped scenario, ending with a capacity report.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh --preset release

echo
echo "== effective configuration (build/bin/phasekit config) =="
build/bin/phasekit config
echo
echo "== plugins (build/bin/phasekit plugins) =="
build/bin/phasekit plugins || true

workspaces=$(mktemp -d /tmp/phasekit-run-XXXXXX)
chmod 711 "$workspaces"
log="$workspaces/orchestrator.log"
# The load generator is one address (600 users): no per-address connection limit.
PORT=0 ADMIN_PORT=0 MAX_CONNECTIONS_PER_ADDRESS=0 WORKSPACE_ROOT="$workspaces/ws" build/bin/phasekit-orchestrator > "$log" 2>&1 &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$workspaces"' EXIT
for _ in $(seq 100); do
  port=$(grep -o '"msg":"server.listening".*"port":[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  admin_port=$(grep -o '"msg":"server.listening".*"admin_port":[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  [[ -n "$port" ]] && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[[ -n "$port" ]] || { echo "run.sh: the orchestrator did not start"; cat "$log"; exit 1; }
echo
echo "== phasekit-orchestrator on 127.0.0.1:$port (embedded defaults: $(grep -o '"plugins":"[^"]*"' "$log")) =="

echo
echo "== phasekit-load run scenarios/smoke.yml =="
build/bin/phasekit-load run scenarios/smoke.yml --target "http://127.0.0.1:$port" \
  -o "$workspaces/smoke.json" -o build/smoke-report.html
echo
echo "== capacity: the most concurrent phase-1 users (scenarios/phase1.yml, repeated) that meet the phase-1 SLO =="
build/bin/phasekit-load capacity scenarios/phase1.yml --target "http://127.0.0.1:$port" \
  --targets scenarios/targets.json --phase 1 --users 100,300,600 --ramp 10 --hold 15 --quiet \
  --out-dir "$workspaces/capacity" -o "$workspaces/capacity.json" -o build/capacity-report.html || true
echo "HTML report of the smoke run: build/smoke-report.html"
echo "HTML report of the capacity search: build/capacity-report.html"
echo
echo "== /metrics (excerpt, from ADMIN_PORT $admin_port) =="
curl -s "http://127.0.0.1:$admin_port/metrics" | grep -E '^phasekit_(sessions|jobs_total|backend_acquire_seconds_(sum|count)|process_resident)' || true
