# Shared by the live tests (sourced, after COMPOSE_FILES is set to the stack's compose files): the
# private dockerd, the images, a project of the test's own, and its teardown.
#  1. scripts/dockerd.sh starts a daemon of the test's own (data-root in $PHASEKIT_LIVE_DOCKER_DIR,
#     default /var/cache/phasekit/docker, kept between runs so images are reused; one test at a
#     time holds it, by flock), stopped by its PID at the end;
#  2. scripts/images.sh builds the images (the base tarball and unchanged layers are cached).
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/lib.sh"
need docker-compose flock node curl openssl
DOCKER=/usr/bin/docker  # Debian's client (scripts/images.sh says why)
[[ -x "$DOCKER" ]] || { echo "FAIL $DOCKER not found: scripts/setup.sh installs docker.io"; exit 1; }
BUILD_DIR="$(cd "$(dirname "${ORCHESTRATOR_BIN:?}")/.." && pwd)"
: "${HARNESS_BIN:?}" "${PHASEKIT_NODE_MODULES:?}" "${COMPOSE_FILES:?set COMPOSE_FILES before sourcing stack.sh}"
export PHASEKIT_NODE_MODULES
DOCKER_DIR="${PHASEKIT_LIVE_DOCKER_DIR:-/var/cache/phasekit/docker}"
t_start=$SECONDS
stamp() { echo "---- $* ($((SECONDS - t_start)) s)"; }

# One live test at a time owns the daemon directory.
mkdir -p "$DOCKER_DIR"
exec 9>"$DOCKER_DIR.lock"
flock -w 600 9 || { echo "FAIL another live test held $DOCKER_DIR.lock for 10 min"; exit 1; }

project="phasekit-live-$(openssl rand -hex 4)"
compose_args=()
for f in "${COMPOSE_FILES[@]}"; do compose_args+=(-f "$f"); done
compose() { docker-compose -p "$project" "${compose_args[@]}" "$@"; }
started_daemon=0
teardown() {
  if [[ -n "${DOCKER_HOST:-}" ]] && "$DOCKER" version >/dev/null 2>&1; then
    # What a failure leaves for reading, then the stack goes (idempotent after a clean down).
    if ((failed > 0)); then
      compose logs --no-color --tail 40 2>/dev/null | tail -150
    fi
    compose down -v --remove-orphans -t 5 >/dev/null 2>&1
  fi
  ((started_daemon)) && "$SRC/scripts/dockerd.sh" stop "$DOCKER_DIR"
  cleanup
}
trap teardown EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# 1. The daemon: ours, or one already running in DOCKER_DIR (left by a person: kept running).
stamp "dockerd"
export DOCKER_HOST="unix://$DOCKER_DIR/docker.sock"
if ! "$DOCKER" version >/dev/null 2>&1; then
  "$SRC/scripts/dockerd.sh" start "$DOCKER_DIR" >/dev/null || { echo "FAIL scripts/dockerd.sh start"; exit 1; }
  started_daemon=1
fi
daemon_up() { "$DOCKER" version --format '{{.Server.Version}}'; }
check "private dockerd answers at $DOCKER_HOST" daemon_up

# What an earlier live test left in this data root (one killed before its teardown ran, by a timeout's
# SIGKILL say) goes first. This test holds the directory's lock, so any live project here is a
# leftover. Left alone, a dockerd that starts restarts its containers: one found on 2026-12-07 had
# its bind mount's source in a deleted clone, and dockerd made a folder at that path.
leftover_projects() {
  "$DOCKER" ps -a --format '{{.Label "com.docker.compose.project"}}'
  "$DOCKER" volume ls --format '{{.Label "com.docker.compose.project"}}'
  "$DOCKER" network ls --format '{{.Label "com.docker.compose.project"}}'
}
remove_leftovers() {
  local p ids
  for p in $(leftover_projects | grep -E '^phasekit-live-[0-9a-f]+$' | grep -vx "$project" | sort -u); do
    echo "removing what project $p left"
    ids="$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$p")"
    [[ -z "$ids" ]] || "$DOCKER" rm -f $ids >/dev/null || return 1
    ids="$("$DOCKER" network ls -q --filter "label=com.docker.compose.project=$p")"
    [[ -z "$ids" ]] || "$DOCKER" network rm $ids >/dev/null || return 1
    ids="$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$p")"
    [[ -z "$ids" ]] || "$DOCKER" volume rm -f $ids >/dev/null || return 1
  done
  [[ -z "$(leftover_projects | grep -E '^phasekit-live-[0-9a-f]+$' | grep -vx "$project")" ]]
}
# Self-test first: a volume labelled as an earlier project's goes with the rest.
"$DOCKER" volume create --label "com.docker.compose.project=phasekit-live-0000dead" phasekit-live-0000dead_selftest >/dev/null
check "what earlier live tests left in $DOCKER_DIR is removed" remove_leftovers

# 2. Images.
stamp "images"
images() { "$SRC/scripts/images.sh" --build-dir "$BUILD_DIR" >"$TMP/images.log" 2>&1 || { tail -60 "$TMP/images.log"; return 1; }; }
check "scripts/images.sh builds every image" images
sed -n '/images (size/,$p' "$TMP/images.log"
((failed == 0)) || { summary; exit 1; }

export REDIS_PASSWORD="$(openssl rand -hex 32)" AUTH_MODE=none AUTH_SECRET="$(openssl rand -hex 32)"
export LB_PORT="$(free_port)" LB_STATS_PORT="$(free_port)"
LB_URL="http://127.0.0.1:$LB_PORT"

# escape [URL]: the attack of a user's tool (tests/live/tool_escape.js) looking for the stack's secrets
# and for redis; fails when it finds either or sees more processes than its own pid namespace holds.
escape() {  # escape [URL]: through HAProxy unless another URL is given
  timeout 90 node "$SRC/tests/live/tool_escape.js" "${1:-http://127.0.0.1:$LB_PORT}" >"$TMP/escape.json" 2>"$TMP/escape.err" ||
    { cat "$TMP/escape.err"; return 1; }
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const out = String(r.output);
    const bad = [];
    for (const [name, value] of [["REDIS_PASSWORD", process.env.REDIS_PASSWORD], ["AUTH_SECRET", process.env.AUTH_SECRET]]) {
      if (value && out.includes(value)) bad.push(`${name} is readable`);
    }
    if (out.includes("REACHED-REDIS")) bad.push("redis is reachable");
    if (!out.includes("--- redis")) bad.push("the command did not run to its end");
    const procs = Number((out.split("--- processes\n")[1] || "").split("\n")[0]);
    if (!(procs > 0 && procs < 10)) bad.push(`it sees ${procs} processes (its own pid namespace would show a few)`);
    if (bad.length) { console.log(bad.join("; ")); console.log(out.slice(0, 3000)); process.exit(1); }
    console.log(`no secret, no redis, ${procs} processes visible`);' "$TMP/escape.json"
}
containers() { "$DOCKER" ps -aq --filter "label=com.docker.compose.project=$project" "$@"; }
all_healthy() {  # all_healthy N: N containers of the project, each with a healthcheck that says healthy
  local ids id st n=0 bad=""
  mapfile -t ids < <(containers)
  for id in "${ids[@]}"; do
    st="$("$DOCKER" inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}' "$id")"
    [[ "$st" == *" healthy" ]] && n=$((n + 1)) || bad+=" $st"
  done
  [[ $n -eq $1 && -z "$bad" ]] || { echo "healthy: $n of ${#ids[@]};$bad"; return 1; }
}
wait_healthy() {  # wait_healthy N
  local deadline=$((SECONDS + 120))
  until all_healthy "$1" >"$TMP/health.out"; do
    ((SECONDS < deadline)) || { cat "$TMP/health.out"; return 1; }
    sleep 1
  done
  cat "$TMP/health.out"
}

# The end of every live test: down -v leaves no container, network or volume of the project.
stack_down() {
  stamp "down"
  down() { compose down -v --remove-orphans -t 10 >"$TMP/down.out" 2>&1 || { cat "$TMP/down.out"; return 1; }; }
  check "docker-compose down -v" down
  nothing_left() {
    local c n v
    c="$(containers)"
    n="$("$DOCKER" network ls -q --filter "label=com.docker.compose.project=$project")"
    v="$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$project")"
    [[ -z "$c$n$v" ]] || { echo "left behind: containers [$c] networks [$n] volumes [$v]"; return 1; }
  }
  check "nothing of project $project is left: no container, network or volume" nothing_left
  # Self-test: the same query sees a project's leftovers (a volume labelled as compose labels it).
  leftover_seen() {
    "$DOCKER" volume create --label "com.docker.compose.project=$project" "${project}_selftest" >/dev/null || return 0
    local status=0
    nothing_left || status=$?
    "$DOCKER" volume rm "${project}_selftest" >/dev/null
    return "$status"
  }
  rejects "leftover check: a volume of the project" leftover_seen
  stamp "end"
}
