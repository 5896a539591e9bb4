#!/usr/bin/env bash
# The cost of containers, as a ratio measured in one run: the phase-2 topology (2 orchestrators, redis,
# nginx in front) as plain processes (deploy/local, through bench/capacity_phase.sh) and as the shipped
# compose stack (deploy/docker-compose.scale.yml + docker-compose.phase2.yml, its nginx profile, on a
# private dockerd), each searched with `phasekit-load capacity` over the same steps.
#   bench/compose_vs_plain.sh USERS [RAMP] [HOLD]     (as root, after ./scripts/build.sh; loopback only)
# The compose stack's orchestrators are privileged with sandboxes (as shipped); the plain ones
# sandbox as on a host. Prints each topology's steps and the ratio of their p95 at each step.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:?usage: bench/compose_vs_plain.sh USERS [RAMP] [HOLD], e.g. 250,500}
ramp=${2:-30}
hold=${3:-20}
DOCKER=/usr/bin/docker
docker_dir=${PHASEKIT_LIVE_DOCKER_DIR:-/var/cache/phasekit/docker}
work=$(mktemp -d /tmp/phasekit-compose-vs-plain-XXXXXX)
project="phasekit-bench-$(openssl rand -hex 3)"
files=(-f deploy/docker-compose.scale.yml -f deploy/docker-compose.phase2.yml)
started=0
cleanup() {
  if [[ -n "${DOCKER_HOST:-}" ]]; then
    REDIS_PASSWORD=${REDIS_PASSWORD:-unused} docker-compose -p "$project" "${files[@]}" --profile nginx down -v -t 5 >/dev/null 2>&1 || true
  fi
  ((started)) && scripts/dockerd.sh stop "$docker_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== plain processes (deploy/local, bench/capacity_phase.sh 2 $users $ramp $hold)"
KEEP=1 bench/capacity_phase.sh 2 "$users" "$ramp" "$hold" | tee "$work/plain.out"
plain_dir=$(sed -n 's/^capacity_phase: work folder //p' "$work/plain.out")
cp "$plain_dir/capacity.json" "$work/plain.json"
rm -rf "$plain_dir"

echo "== compose (deploy/docker-compose.scale.yml + docker-compose.phase2.yml, nginx profile, 2 orchestrators)"
export DOCKER_HOST="unix://$docker_dir/docker.sock"
if ! "$DOCKER" version >/dev/null 2>&1; then
  scripts/dockerd.sh start "$docker_dir" >/dev/null
  started=1
fi
scripts/images.sh >"$work/images.log" 2>&1 || { tail -30 "$work/images.log"; exit 1; }
export REDIS_PASSWORD=$(openssl rand -hex 32) AUTH_MODE=none LB_PORT=0 LB_STATS_PORT=0 PROMETHEUS_PORT=0
docker-compose -p "$project" "${files[@]}" --profile nginx up -d --no-build --scale orchestrator=2 lb-nginx orchestrator redis >/dev/null
target=http://127.0.0.1:8081
# deploy/nginx.conf routes /socket.io/ only: an Engine.IO handshake says the stack answers.
ready() { curl -fs "$target/socket.io/?EIO=4&transport=polling" >/dev/null; }
for _ in $(seq 1 120); do ready && break; sleep 1; done
ready || { echo "the compose stack never answered a handshake"; exit 1; }
build/bin/phasekit-load capacity scenarios/phase2.yml --targets scenarios/targets.json --phase 2 --target "$target" \
  --users "$users" --ramp "$ramp" --hold "$hold" --quiet --out-dir "$work/steps" -o "$work/compose.json" || true
jq -r '"most users meeting the SLO: \(.maxUsers)"' "$work/compose.json"

echo "== side by side"
node -e '
  const fs = require("fs");
  const [plain, compose] = process.argv.slice(1).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
  console.log(`most users meeting the SLO: plain ${plain.maxUsers}, compose ${compose.maxUsers}`);
  const by = (r) => Object.fromEntries((r.steps || []).map((s) => [s.users, s]));
  const p = by(plain), c = by(compose);
  for (const u of Object.keys(p)) {
    if (!c[u]) continue;
    const pp = p[u].latencyMs.p95, cp = c[u].latencyMs.p95;
    const verdict = (s) => (s.pass ? "meets" : "misses");
    console.log(`${u} users: p95 plain ${pp} ms (${verdict(p[u])}), compose ${cp} ms (${verdict(c[u])}), ` +
                `compose / plain ${(cp / pp).toFixed(2)}`);
  }' "$work/plain.json" "$work/compose.json"
