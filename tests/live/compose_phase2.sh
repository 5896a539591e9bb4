#!/usr/bin/env bash
# live.compose_phase2: the phase-2 compose stack (deploy/docker-compose.scale.yml with
# deploy/docker-compose.phase2.yml: HAProxy, 3 orchestrators that run the tools, redis; no workers) in
# real containers, on a private dockerd.
#  1-2. a private dockerd and the images (tests/live/stack.sh);
#  3. the stack comes up under a project name of its own, and every healthcheck turns healthy
#     (deadline);
#  3b. tools run sandboxed in the containers: the orchestrators say sandbox.ready (namespaces), and a
#     tool that tries to read their environment (REDIS_PASSWORD, AUTH_SECRET) and reach redis finds
#     neither (tests/live/tool_escape.js, through HAProxy); nor does it in an orchestrator given the
#     narrower grant instead of privileged (deploy/seccomp/phasekit-sandbox.json, systempaths=unconfined);
#  4. phasekit-load runs scenarios/smoke.yml through HAProxy over WebSocket, then over polling
#     (HAProxy's cookie keeps each polling session on its orchestrator): 0 errors;
#  5. tests/live/failover.js: a user's orchestrator is killed (docker kill); the user resumes on
#     another with its files, cwd, exports and history; over WebSocket and over polling;
#  6. docker-compose down -v leaves no container, network or volume of the project.
COMPOSE_FILES=("$PHASEKIT_SOURCE_DIR/deploy/docker-compose.scale.yml" "$PHASEKIT_SOURCE_DIR/deploy/docker-compose.phase2.yml")
source "$(dirname "$0")/stack.sh"

# 3. The stack.
stamp "compose up"
up() { compose up -d --no-build --scale orchestrator=3 lb orchestrator redis 2>&1 | tail -20; return "${PIPESTATUS[0]}"; }
check "docker-compose up: lb, 3 orchestrators, redis (project $project)" up
check "every healthcheck turns healthy (redis, 3 orchestrators, lb) within 120 s" wait_healthy 5
stamp "healthy"
lb_ready() { curl -fsS "$LB_URL/lb/health" >/dev/null && curl -fsS "$LB_URL/ready"; }
check "through HAProxy: /lb/health and an orchestrator's /ready" lb_ready
# The images run as uid 10001 with a read-only root filesystem.
orch_ids() { compose ps -q orchestrator; }
read_only_non_root() {
  local id
  for id in $(orch_ids); do
    [[ "$("$DOCKER" inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}' "$id")" == "true 10001:10001" ]] || return 1
    "$DOCKER" exec "$id" sh -c 'id -u; touch /opt/x' >"$TMP/ro.out" 2>&1 && return 1
    grep -qx 10001 "$TMP/ro.out" && grep -q 'Read-only file system' "$TMP/ro.out" || { cat "$TMP/ro.out"; return 1; }
  done
}
check "orchestrators: uid 10001, read-only root filesystem" read_only_non_root
# The log goes to a file first: under pipefail, `docker logs | grep -q` fails whenever grep leaves
# early and docker logs writes again (EPIPE), which is how this check once failed in CI.
sandboxed() {
  local id
  for id in $(orch_ids); do
    "$DOCKER" logs "$id" >"$TMP/orch.log" 2>&1 || { echo "docker logs $id failed"; return 1; }
    grep '"msg":"sandbox.ready".*"sandbox":"namespaces"' "$TMP/orch.log" >/dev/null ||
      { echo "$id: no sandbox.ready (namespaces) in its log:"; tail -20 "$TMP/orch.log"; return 1; }
    ! grep 'sandbox.none' "$TMP/orch.log" >/dev/null || { echo "$id: says sandbox.none"; return 1; }
  done
}
check "orchestrators sandbox their tools (sandbox.ready, namespaces)" sandboxed
check "a tool in the stack reads neither REDIS_PASSWORD nor AUTH_SECRET and cannot reach redis" escape
# The narrower grant (docs/security.md): no privilege, the seccomp profile deploy/seccomp/phasekit-sandbox.json
# and systempaths=unconfined, as the docker CLI sets them (docker-compose 1.29 cannot). One more
# orchestrator of the stack's image, environment and network, published on loopback only, outside
# the balancer: its sandbox starts, the profile is on, and the same attack finds nothing.
narrow() {
  local ref name="$project-narrow" port
  ref="$(orch_ids | head -1)"
  port="$(free_port)"
  "$DOCKER" inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$ref" | grep -v '^$' >"$TMP/narrow.env"
  "$DOCKER" run -d --name "$name" --label "com.docker.compose.project=$project" \
    --network "$("$DOCKER" inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$ref")" \
    -p "127.0.0.1:$port:3000" --env-file "$TMP/narrow.env" --read-only --tmpfs /tmp \
    -v "${project}_workspaces:/var/lib/phasekit/workspaces" \
    --security-opt "seccomp=$SRC/deploy/seccomp/phasekit-sandbox.json" --security-opt systempaths=unconfined \
    phasekit:0.1.0 phasekit-orchestrator >/dev/null || return 1
  local deadline=$((SECONDS + 60))
  until curl -fs "http://127.0.0.1:$port/ready" >/dev/null; do
    ((SECONDS < deadline)) || { echo "not ready within 60 s:"; "$DOCKER" logs "$name" 2>&1 | tail -10; "$DOCKER" rm -f "$name" >/dev/null; return 1; }
    sleep 0.5
  done
  "$DOCKER" logs "$name" >"$TMP/narrow.log" 2>&1
  grep '"msg":"sandbox.ready".*"sandbox":"namespaces"' "$TMP/narrow.log" >/dev/null || { echo "no sandbox.ready (namespaces)"; tail -10 "$TMP/narrow.log"; }
  "$DOCKER" exec "$name" grep -E '^(Seccomp|CapEff):' /proc/1/status >"$TMP/narrow.status"
  local privileged seccomp caps status=0
  privileged="$("$DOCKER" inspect -f '{{.HostConfig.Privileged}}' "$name")"
  seccomp="$(awk '/^Seccomp:/ {print $2}' "$TMP/narrow.status")"
  caps="$(awk '/^CapEff:/ {print $2}' "$TMP/narrow.status")"
  echo "privileged $privileged, Seccomp $seccomp (2: a filter), CapEff $caps"
  [[ "$privileged" == false && "$seccomp" == 2 && "$caps" == 0000000000000000 ]] || status=1
  grep '"msg":"sandbox.ready".*"sandbox":"namespaces"' "$TMP/narrow.log" >/dev/null || status=1
  ((status == 0)) && escape "http://127.0.0.1:$port" || status=1
  "$DOCKER" rm -f "$name" >/dev/null
  return "$status"
}
check "the narrower grant (seccomp profile, systempaths=unconfined, not privileged): sandboxed, and the attack finds nothing" narrow

# Kubernetes: no cluster here; the rendered overlays against the images just built (names, user,
# programs, ports), and their probes against running containers of the image: an orchestrator of
# this stack, and a worker started beside it for the purpose.
k8s_images() {
  command -v kubectl >/dev/null || { echo "kubectl not found: scripts/setup.sh installs it"; return 1; }
  local tags image="phasekit:0.1.0" overlay worker status=0
  tags="$("$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>' | node -e '
    console.log(JSON.stringify(require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean)))')"
  "$DOCKER" inspect "$image" >"$TMP/image.json" || return 1
  "$DOCKER" run --rm --network none --entrypoint sh "$image" -c 'for p in phasekit phasekit-orchestrator phasekit-worker phasekit-sandbox; do command -v "$p" >/dev/null && echo "$p"; done' >"$TMP/programs.txt" || return 1
  OUT="$TMP/images.json" node -e '
    const fs = require("fs");
    const [tags, inspect, programs, image] = process.argv.slice(1);
    fs.writeFileSync(process.env.OUT, JSON.stringify({ tags: JSON.parse(tags),
      inspect: { [image]: JSON.parse(fs.readFileSync(inspect, "utf8"))[0] },
      programs: { [image]: fs.readFileSync(programs, "utf8").split("\n").filter(Boolean) } }));' \
    "$tags" "$TMP/image.json" "$TMP/programs.txt" "$image" || return 1
  compose up -d --no-deps --no-build --scale worker=1 worker >"$TMP/worker-up.out" 2>&1 || { cat "$TMP/worker-up.out"; return 1; }
  worker="$(compose ps -q worker | head -1)"
  local deadline=$((SECONDS + 60))
  until "$DOCKER" exec "$worker" curl -fsS -o /dev/null http://127.0.0.1:3000/ready 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "the worker never became ready:"; "$DOCKER" logs --tail 20 "$worker" 2>&1; return 1; }
    sleep 1
  done
  for overlay in phase1 phase2 phase3; do
    kubectl kustomize "$SRC/k8s/overlays/$overlay" >"$TMP/k8s-$overlay.yaml" || return 1
    PROBE_CONTAINER_phasekit_orchestrator="$(orch_ids | head -1)" PROBE_CONTAINER_phasekit_worker="$worker" \
      DOCKER="$DOCKER" node "$SRC/tests/live/k8s_images.js" "$TMP/k8s-$overlay.yaml" "$TMP/images.json" || status=1
  done
  compose rm -sf worker >/dev/null 2>&1
  return "$status"
}
check "k8s overlays match the built image (user, programs, ports) and their probes answer in it" k8s_images
# Self-tests: the same check refuses a manifest that is wrong in each of those ways.
k8s_mutant() {  # k8s_mutant SED-EXPRESSION
  sed "$1" "$TMP/k8s-phase3.yaml" >"$TMP/k8s-mutant.yaml" && node "$SRC/tests/live/k8s_images.js" "$TMP/k8s-mutant.yaml" "$TMP/images.json"
}
rejects "k8s image check: an image never built" k8s_mutant 's|image: phasekit:0.1.0|image: phasekit:9.9.9|'
rejects "k8s image check: a container running as root" k8s_mutant 's|runAsUser: 10001|runAsUser: 0|'
rejects "k8s image check: a program the image does not have" k8s_mutant 's|phasekit-worker|phasekit-wrker|'
rejects "k8s image check: a port that is not PORT" k8s_mutant 's|containerPort: 3000|containerPort: 8080|'

# 4. Load through the balancer.
load() {  # load TRANSPORT
  sed "s/transports: \[\"websocket\"\]/transports: [\"$1\"]/" "$SRC/scenarios/smoke.yml" >"$TMP/smoke-$1.yml"
  grep -q "transports: \[\"$1\"\]" "$TMP/smoke-$1.yml" || { echo "could not set transports in the scenario"; return 1; }
  timeout 120 "$HARNESS_BIN" run "$TMP/smoke-$1.yml" --target "$LB_URL" -o "json=$TMP/load-$1.json" >"$TMP/load-$1.out" 2>&1 ||
    { tail -30 "$TMP/load-$1.out"; return 1; }
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const counters = (r.total && r.total.counters) || {};
    const errors = Object.entries(counters).filter(([k, v]) => k.startsWith("errors.") && v > 0);
    const done = counters["vusers.completed"] || 0;
    if (errors.length > 0 || done < 50) { console.log(JSON.stringify({ errors, done })); process.exit(1); }
    console.log(`users completed ${done}, errors 0`);' "$TMP/load-$1.json" || { tail -30 "$TMP/load-$1.out"; return 1; }
}
stamp "load"
check "phasekit-load smoke through HAProxy over WebSocket: 0 errors" load websocket
check "phasekit-load smoke through HAProxy over polling: 0 errors" load polling

# 5. Failover: one orchestrator killed under a user's session.
failover() {  # failover TRANSPORT
  local orchs="[" id ip
  for id in $(orch_ids); do
    [[ "$("$DOCKER" inspect -f '{{.State.Running}}' "$id")" == true ]] || continue
    ip="$("$DOCKER" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")"
    orchs+="{\"id\":\"$id\",\"ip\":\"$ip\"},"
  done
  orchs="${orchs%,}]"
  coproc FAILOVER { ORCHESTRATORS="$orchs" node "$SRC/tests/live/failover.js" "$LB_URL" "$1" 2>&1; }
  # Copies of the coprocess's pipes: bash unsets FAILOVER when it ends.
  local pid="$FAILOVER_PID" line victim="" from to
  exec {from}<&"${FAILOVER[0]}" {to}>&"${FAILOVER[1]}"
  while IFS= read -r -t 120 line <&"$from"; do
    echo "$line"
    if [[ "$line" == KILL\ * ]]; then
      victim="${line#KILL }"
      if "$DOCKER" kill "$victim" >/dev/null; then echo KILLED >&"$to"; else echo FAILED >&"$to"; fi
    fi
  done
  exec {from}<&- {to}>&-
  wait "$pid"
  local status=$?
  [[ -n "$victim" ]] || { echo "the client never asked for a kill"; return 1; }
  last_victim="$victim"
  return "$status"
}
restarted() {  # the operator starts the killed orchestrator again: the stack is whole and healthy
  [[ -n "$last_victim" ]] || { echo "no orchestrator was killed before"; return 1; }
  "$DOCKER" start "$last_victim" >/dev/null && wait_healthy 5
}
last_victim=""
stamp "failover"
check "docker kill of a user's orchestrator (WebSocket): resumed on another with files, cwd, exports, history" failover websocket
check "the killed orchestrator started again: every healthcheck healthy" restarted
check "docker kill of a user's orchestrator (polling): resumed on another with files, cwd, exports, history" failover polling

# 6. Down.
stack_down
summary
