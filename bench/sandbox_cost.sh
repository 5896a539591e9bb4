#!/usr/bin/env bash
# What the sandbox costs a call inside the shipped containers (docs/security.md, "Sandboxes inside
# containers"): the phase-2 compose stack with one orchestrator behind HAProxy, as shipped (privileged,
# SANDBOX=namespaces) and with an override that turns the sandbox off (unprivileged, SANDBOX=none),
# each running scenarios/smoke.yml ROUNDS times; prints the approval-to-result latency of each run.
#   bench/sandbox_cost.sh [ROUNDS]     (as root, after ./scripts/build.sh; loopback only)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
DOCKER=/usr/bin/docker
docker_dir=${PHASEKIT_LIVE_DOCKER_DIR:-/var/cache/phasekit/docker}
work=$(mktemp -d /tmp/phasekit-sandbox-cost-XXXXXX)
project="phasekit-sbx-$(openssl rand -hex 3)"
files=(-f deploy/docker-compose.scale.yml -f deploy/docker-compose.phase2.yml)
export REDIS_PASSWORD=$(openssl rand -hex 32) AUTH_MODE=none LB_STATS_PORT=0 PROMETHEUS_PORT=0
LB_PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export LB_PORT
started=0
cleanup() {
  docker-compose -p "$project" "${files[@]}" -f "$work/none.yml" down -v -t 5 >/dev/null 2>&1 || true
  ((started)) && scripts/dockerd.sh stop "$docker_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/none.yml" <<'YAML'
services:
  orchestrator:
    privileged: false
    environment:
      SANDBOX: "none"
YAML
export DOCKER_HOST="unix://$docker_dir/docker.sock"
if ! "$DOCKER" version >/dev/null 2>&1; then
  scripts/dockerd.sh start "$docker_dir" >/dev/null
  started=1
fi
scripts/images.sh >"$work/images.log" 2>&1 || { tail -30 "$work/images.log"; exit 1; }
measure() {  # measure NAME [extra compose -f]
  local name="$1"
  shift
  docker-compose -p "$project" "${files[@]}" "$@" up -d --no-build --scale orchestrator=1 lb orchestrator redis >/dev/null 2>&1
  for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$LB_PORT/ready" >/dev/null && break; sleep 1; done
  for r in $(seq 1 "$rounds"); do
    build/bin/phasekit-load run scenarios/smoke.yml --target "http://127.0.0.1:$LB_PORT" -o "json=$work/$name-$r.json" --quiet >/dev/null 2>&1 || true
    node -e '
      const h = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).total.histograms["socketio.response_time.tool:approval"];
      console.log(`${process.argv[2]} run ${process.argv[3]}: approval to tool:result p50 ${h.summaryMs.p50} ms, p95 ${h.summaryMs.p95} ms (${h.count} calls)`);' \
      "$work/$name-$r.json" "$name" "$r"
  done
  docker-compose -p "$project" "${files[@]}" "$@" down -v -t 5 >/dev/null 2>&1
}
measure sandboxed
measure "SANDBOX=none" -f "$work/none.yml"
