#!/usr/bin/env bash
# What each way of isolating tools costs a call (docs/security.md, "Sandboxes inside containers"),
# all in one run, each running scenarios/smoke.yml ROUNDS times; prints the approval-to-result latency
# of each run. In the phase-2 compose stack with one orchestrator behind HAProxy:
#   sandboxed   as shipped: privileged, SANDBOX=namespaces;
#   narrow      the same orchestrator started by the docker CLI in its place with no privilege, the
#               seccomp profile deploy/seccomp/phasekit-sandbox.json and systempaths=unconfined
#               (what docker-compose 1.29 cannot say; the CLI, compose v2 and Kubernetes can);
#   none        an override that turns the sandbox off (unprivileged, SANDBOX=none).
# On this host, no container around the orchestrator (memory store):
#   host process   the process backend (SANDBOX=namespaces), as a dedicated host would run it, with a
#                  warm pool of 120: each of the scenario's 100 users takes a warm backend;
#   host docker    the docker backend (BACKEND=docker: each backend a container of the phasekit image
#                  on the same private dockerd, network none), with phase 2's warm pool of 10: a
#                  user holds its backend for its session, so most users take a backend made for them
#                  (/stats/pool counts them). A warm pool of 120 docker backends did not fill within
#                  120 s on a 2-core machine (creates timed out at 3 s, 8 at once), so it is not run.
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
  # server: set by start_orchestrator as soon as it starts one, also when it is never ready
  [[ -n "${server:-}" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  "$DOCKER" rm -f "$project-narrow" >/dev/null 2>&1 || true
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
rounds_at() {  # rounds_at NAME URL: ROUNDS runs of the smoke scenario at URL, one line each
  local name="$1" url="$2" r
  for r in $(seq 1 "$rounds"); do
    build/bin/phasekit-load run scenarios/smoke.yml --target "$url" -o "json=$work/$name-$r.json" --quiet >/dev/null 2>&1 || true
    node -e '
      const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).total;
      const h = t.histograms["socketio.response_time.tool:approval"];
      if (!h) { console.log(`${process.argv[2]} run ${process.argv[3]}: no tool:result (${JSON.stringify(t.counters)})`); process.exit(0); }
      console.log(`${process.argv[2]} run ${process.argv[3]}: approval to tool:result p50 ${h.summaryMs.p50} ms, p95 ${h.summaryMs.p95} ms (${h.count} calls)`);' \
      "$work/$name-$r.json" "$name" "$r"
  done
}
wait_lb_ready() {
  for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$LB_PORT/ready" >/dev/null && return 0; sleep 1; done
  echo "the stack was not ready within 120 s" >&2
  return 1
}
measure() {  # measure NAME [extra compose -f]
  local name="$1"
  shift
  docker-compose -p "$project" "${files[@]}" "$@" up -d --no-build --scale orchestrator=1 lb orchestrator redis >/dev/null 2>&1
  wait_lb_ready
  rounds_at "$name" "http://127.0.0.1:$LB_PORT"
  docker-compose -p "$project" "${files[@]}" "$@" down -v -t 5 >/dev/null 2>&1
}
# The compose stack's orchestrator replaced by one the docker CLI starts with the narrow grant: the
# same image, command, environment, network name and volume, no privilege.
measure_narrow() {
  local ref network
  docker-compose -p "$project" "${files[@]}" up -d --no-build --scale orchestrator=1 lb orchestrator redis >/dev/null 2>&1
  wait_lb_ready
  ref="$(docker-compose -p "$project" "${files[@]}" ps -q orchestrator)"
  "$DOCKER" inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$ref" | grep -v '^$' >"$work/narrow.env"
  network="$("$DOCKER" inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$ref")"
  docker-compose -p "$project" "${files[@]}" rm -sf orchestrator >/dev/null 2>&1
  "$DOCKER" run -d --name "$project-narrow" --network "$network" --network-alias orchestrator \
    --env-file "$work/narrow.env" --read-only --tmpfs /tmp -v "${project}_workspaces:/var/lib/phasekit/workspaces" \
    --security-opt seccomp=deploy/seccomp/phasekit-sandbox.json --security-opt systempaths=unconfined \
    phasekit:0.1.0 phasekit-orchestrator >/dev/null
  for _ in $(seq 1 120); do
    "$DOCKER" logs "$project-narrow" 2>&1 | grep -q '"msg":"sandbox.ready".*"namespaces"' && break
    "$DOCKER" inspect -f '{{.State.Running}}' "$project-narrow" | grep -q true || break
    sleep 1
  done
  "$DOCKER" logs "$project-narrow" 2>&1 | grep -q '"msg":"sandbox.ready".*"namespaces"' ||
    { echo "narrow: no sandbox.ready (namespaces):" >&2; "$DOCKER" logs "$project-narrow" 2>&1 | tail -5 >&2; return 1; }
  echo "narrow: $("$DOCKER" exec "$project-narrow" grep -E '^(Seccomp|CapEff):' /proc/1/status | tr '\n\t' '  ')privileged $("$DOCKER" inspect -f '{{.HostConfig.Privileged}}' "$project-narrow")"
  sleep 12  # HAProxy resolves the name again (hold valid 10 s in deploy/haproxy.cfg)
  wait_lb_ready
  rounds_at narrow "http://127.0.0.1:$LB_PORT"
  "$DOCKER" rm -f "$project-narrow" >/dev/null
  docker-compose -p "$project" "${files[@]}" down -v -t 5 >/dev/null 2>&1
}
# The orchestrator on this host, memory store, a warm pool, with the backend given.
measure_host() {  # measure_host NAME POOL_MIN_SIZE [NAME=value ...]
  local name="$1" min="$2"
  shift 2
  source bench/lib.sh
  start_orchestrator "$work/$name.log" AUTH_MODE=none PHASE=1 ENABLE_CONTAINER_POOL=true POOL_MIN_SIZE="$min" \
    WORKSPACE_ROOT="$work/workspaces-$name" "$@"
  rounds_at "$name" "http://127.0.0.1:$port"
  curl -s "http://127.0.0.1:$admin_port/stats/pool" | node -e '
    const p = JSON.parse(require("fs").readFileSync(0, "utf8"));
    console.log(`${process.argv[1]}: acquisitions warm ${p.acquisitions.warm}, made for the user ${p.acquisitions.cold}, after a wait ${p.acquisitions.afterWait}; timeouts ${p.timeouts}`);' "$name"
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=
}
measure sandboxed
measure_narrow
measure "SANDBOX=none" -f "$work/none.yml"
measure_host "host process" 120
measure_host "host docker" 10 BACKEND=docker DOCKER_HOST="$DOCKER_HOST" DOCKER_IMAGE=phasekit:0.1.0
