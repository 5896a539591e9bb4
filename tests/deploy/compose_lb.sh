#!/usr/bin/env bash
# docker-compose config -q of both compose files (Debian's docker-compose 1.29: no engine needed),
# haproxy -c of deploy/haproxy.cfg, nginx -t of deploy/nginx.conf (in a private mount namespace
# whose /etc/hosts resolves the compose service names: nginx resolves upstreams at load time), and
# the properties the brief asks of them. Self-tests: broken copies are rejected.
source "$(dirname "$0")/lib.sh"
need docker-compose haproxy nginx unshare
D="$SRC/deploy"
# Both files require a Redis password (finding 10): the checks below render them with one.
REDIS_PASSWORD="$(openssl rand -hex 32)"
export REDIS_PASSWORD

compose_ok() { docker-compose -f "$1" config -q; }
check "docker-compose config -q deploy/docker-compose.yml" compose_ok "$D/docker-compose.yml"
check "docker-compose config -q deploy/docker-compose.scale.yml" compose_ok "$D/docker-compose.scale.yml"
no_redis_password() { env -u REDIS_PASSWORD docker-compose -f "$1" config -q; }
rejects "docker-compose.yml without REDIS_PASSWORD" no_redis_password "$D/docker-compose.yml"
rejects "docker-compose.scale.yml without REDIS_PASSWORD" no_redis_password "$D/docker-compose.scale.yml"
# Redis asks for the password, and phasekit is given the same one.
redis_password_used() {
  local out
  out="$(docker-compose -f "$1" config)" || return 1
  grep -q -- "- --requirepass" <<<"$out" && [ "$(grep -c "$REDIS_PASSWORD" <<<"$out")" -ge 3 ]
}
check "docker-compose.yml: redis --requirepass, phasekit has REDIS_PASSWORD" redis_password_used "$D/docker-compose.yml"
check "docker-compose.scale.yml: redis --requirepass, phasekit has REDIS_PASSWORD" redis_password_used "$D/docker-compose.scale.yml"
no_top_level_name() { ! grep -q '^name:' "$D/docker-compose.yml" "$D/docker-compose.scale.yml"; }
check "no top-level name: (docker-compose 1.29 refuses it)" no_top_level_name
# Everything published binds loopback only (as docker-compose renders it: "- HOST_IP:PUBLISHED:TARGET/tcp").
loopback_ports() {
  docker-compose -f "$1" config | awk '
    /^    ports:$/ { inports = 1; next }
    inports && /^    - / { n++; if ($2 !~ /^127\.0\.0\.1:/) { print "not loopback: " $2; bad = 1 } next }
    { inports = 0 }
    END { exit (bad || n == 0) }'
}
check "published ports bind 127.0.0.1 only: docker-compose.yml" loopback_ports "$D/docker-compose.yml"
check "published ports bind 127.0.0.1 only: docker-compose.scale.yml" loopback_ports "$D/docker-compose.scale.yml"
sed 's/"127.0.0.1:3000:3000"/"3000:3000"/' "$D/docker-compose.yml" >"$TMP/public.yml"
rejects "port check: a port published on every address" loopback_ports "$TMP/public.yml"
scale_services() { docker-compose -f "$D/docker-compose.scale.yml" config --services | sort | tr '\n' ' ' | grep 'lb lb-nginx orchestrator prometheus redis worker' >/dev/null; }
check "scale file: orchestrator, worker, redis, lb, prometheus" scale_services

# The environment each compose file gives phasekit, through the real configuration schema.
compose_env() {  # compose_env FILE SERVICE OUT [VAR=VALUE…]: rendered environment of SERVICE
  local f="$1" svc="$2" out="$3"
  shift 3
  env "$@" docker-compose -f "$f" config | node "$(dirname "$0")/env_of.js" compose - "$svc" >"$out"
}
compose_plugins() { compose_env "$1" "$2" "$TMP/$2.env" "${@:4}" && plugins_are "$TMP/$2.env" "$3"; }
check "docker-compose.yml orchestrator: phase 2 plugins by default" compose_plugins "$D/docker-compose.yml" orchestrator \
  "pool=warm queue=inproc store=redis compression=none autoscaler=none"
check "docker-compose.yml with PHASE=1 REDIS_URL= : phase 1 plugins" compose_plugins "$D/docker-compose.yml" orchestrator \
  "pool=none queue=inproc store=memory compression=none autoscaler=none" PHASE=1 REDIS_URL=
check "docker-compose.scale.yml orchestrator: phase 3 plugins" compose_plugins "$D/docker-compose.scale.yml" orchestrator \
  "pool=warm queue=redis store=redis compression=zlib autoscaler=hpa"
check "docker-compose.scale.yml worker: phase 3 plugins" compose_plugins "$D/docker-compose.scale.yml" worker \
  "pool=warm queue=redis store=redis compression=zlib autoscaler=hpa"
worker_cmd() { docker-compose -f "$D/docker-compose.scale.yml" config | grep -A1 'command:' | grep 'phasekit-worker' >/dev/null; }
check "docker-compose.scale.yml runs phasekit-worker" worker_cmd
rejects "compose environment check: PHASE=ten" compose_plugins "$D/docker-compose.yml" orchestrator \
  "pool=warm queue=inproc store=redis compression=none autoscaler=none" PHASE=ten

# Tools run sandboxed in the shipped stacks (issue 18): no phasekit service says SANDBOX=none, and the
# services that run tools (the workers; the orchestrators of docker-compose.yml and of phase 2) are
# privileged, which the sandbox needs under Docker (its seccomp profile and masked /proc); the phase-3
# orchestrators run no tools and keep Docker's defaults.
service_block() {  # service_block FILE SERVICE [compose -f args...]: the service's rendered config
  local f="$1" svc="$2"
  shift 2
  docker-compose -f "$f" "$@" config | awk -v s="  $svc:" '$0 == s {b=1; next} /^  [a-z]/ {b=0} b'
}
no_sandbox_none() {  # no_sandbox_none FILE SERVICE...
  local f="$1" svc
  shift
  for svc in "$@"; do
    compose_env "$f" "$svc" "$TMP/$svc.sandbox.env" || return 1
    if grep -q '^SANDBOX=' "$TMP/$svc.sandbox.env" && ! grep -qx 'SANDBOX=namespaces' "$TMP/$svc.sandbox.env"; then
      echo "$f $svc: $(grep '^SANDBOX=' "$TMP/$svc.sandbox.env")"
      return 1
    fi
  done
}
privileged() {  # privileged FILE SERVICE [-f OVERRIDE]
  local f="$1" svc="$2"
  shift 2
  service_block "$f" "$svc" "$@" | grep '^    privileged: true$' >/dev/null || { echo "$svc: not privileged"; return 1; }
}
not_privileged() { ! privileged "$@" >/dev/null; }
check "docker-compose.yml: tools sandboxed (no SANDBOX=none)" no_sandbox_none "$D/docker-compose.yml" orchestrator
check "docker-compose.scale.yml: tools sandboxed (no SANDBOX=none)" no_sandbox_none "$D/docker-compose.scale.yml" orchestrator worker
check "docker-compose.yml: the orchestrator runs tools, privileged for their sandboxes" privileged "$D/docker-compose.yml" orchestrator
check "docker-compose.scale.yml: the workers run tools, privileged for their sandboxes" privileged "$D/docker-compose.scale.yml" worker
check "docker-compose.scale.yml: the phase-3 orchestrators run no tools and are not privileged" \
  not_privileged "$D/docker-compose.scale.yml" orchestrator
check "with docker-compose.phase2.yml the orchestrators run tools, privileged" \
  privileged "$D/docker-compose.scale.yml" orchestrator -f "$D/docker-compose.phase2.yml"
phase2_plugins() {
  docker-compose -f "$D/docker-compose.scale.yml" -f "$D/docker-compose.phase2.yml" config |
    node "$(dirname "$0")/env_of.js" compose - orchestrator >"$TMP/phase2.env" &&
    plugins_are "$TMP/phase2.env" "pool=warm queue=inproc store=redis compression=none autoscaler=none"
}
check "docker-compose.scale.yml + docker-compose.phase2.yml: phase 2 plugins in the orchestrators" phase2_plugins
sed 's/^  ENABLE_WORKER_MODE: .*/&\n  SANDBOX: "none"/' "$D/docker-compose.scale.yml" >"$TMP/unsandboxed.yml"
rejects "sandbox check: a compose file that says SANDBOX=none" no_sandbox_none "$TMP/unsandboxed.yml" worker
sed '/privileged: true/d' "$D/docker-compose.scale.yml" >"$TMP/unprivileged.yml"
rejects "privileged check: a worker left unprivileged" privileged "$TMP/unprivileged.yml" worker
readme_says() { grep -q 'privileged' "$SRC/README.md" && ! grep -q 'SANDBOX=none`, set explicitly' "$SRC/README.md"; }
check "README says which containers are privileged, and no longer that tools run unsandboxed" readme_says
read_only_root() {  # read_only_root FILE SERVICE...: read_only: true and a tmpfs /tmp
  local f="$1" svc out
  shift
  out="$(docker-compose -f "$f" config)" || return 1
  for svc in "$@"; do
    awk -v s="  $svc:" '$0 == s {b=1; next} /^  [a-z]/ {b=0} b' <<<"$out" | grep '^    read_only: true$' >/dev/null ||
      { echo "$svc: no read_only: true"; return 1; }
  done
}
check "phasekit services run with a read-only root filesystem" read_only_root "$D/docker-compose.scale.yml" orchestrator worker
check "docker-compose.yml: orchestrator read-only root filesystem" read_only_root "$D/docker-compose.yml" orchestrator
sed '/read_only: true/d' "$D/docker-compose.yml" >"$TMP/rw.yml"
rejects "read-only check: read_only left out" read_only_root "$TMP/rw.yml" orchestrator

{ cat "$D/docker-compose.yml"; echo 'name: phasekit'; } >"$TMP/named.yml"
rejects "docker-compose: top-level name:" compose_ok "$TMP/named.yml"
sed 's/stop_grace_period: 30s/stop_grace_periodd: 30s/' "$D/docker-compose.yml" >"$TMP/typo.yml"
rejects "docker-compose: misspelled key" compose_ok "$TMP/typo.yml"

# HAProxy.
check "haproxy -c deploy/haproxy.cfg" haproxy -c -q -f "$D/haproxy.cfg"
haproxy_props() {
  grep -q '^  timeout tunnel 1h' "$D/haproxy.cfg" &&
    grep -Eq '^  cookie phasekit_lb insert .*dynamic' "$D/haproxy.cfg" &&
    grep -q 'http-check send meth GET uri /ready' "$D/haproxy.cfg" &&
    grep -Eq 'deny_status 429 if socketio !has_sid \{ sc[0-9]?_http_req_rate' "$D/haproxy.cfg"
}
check "haproxy: tunnel timeout, cookie stickiness, /ready check, handshake rate limit" haproxy_props
# The request-rate table is tracked for handshakes only (an http-request rule with !has_sid), never
# for a whole connection: a connection-tracked entry counts every poll of a running session too.
handshake_only() {  # handshake_only CFG
  local cfg="$1" table
  # The section holding the table: a backend of its own, not the frontend (whose table every
  # track-sc of the frontend without "table" uses).
  table="$(awk '/^(backend|frontend|defaults|global|resolvers) /{s=$1" "$2} /stick-table .*http_req_rate/{print s}' "$cfg")"
  [[ "$table" == "backend "* ]] || { echo "http_req_rate is not in a backend's table of its own: [$table]"; return 1; }
  table="${table#backend }"
  grep -Eq "^  http-request track-sc[0-9] src table $table if socketio !has_sid$" "$cfg" ||
    { echo "table $table is not tracked for handshakes only"; return 1; }
  ! grep -Eq "^  tcp-request .*track-sc[0-9] .*table $table( |$)" "$cfg" ||
    { echo "table $table is tracked for whole connections"; return 1; }
}
check "haproxy: the rate limit counts handshakes only, not every polling request" handshake_only "$D/haproxy.cfg"
# The lost branch's bug: one table, tracked per connection, storing both counters.
sed -e '/^backend conn_per_address/,/^$/d' -e '/^backend handshakes_per_address/,/^$/d' \
    -e 's/^  tcp-request connection track-sc1 src table conn_per_address/  stick-table type ip size 200k expire 60s store http_req_rate(10s),conn_cur\n  tcp-request connection track-sc1 src/' \
    -e 's/sc1_conn_cur(conn_per_address)/sc1_conn_cur/' \
    -e 's/http-request track-sc0 src table handshakes_per_address/http-request track-sc0 src/' \
    -e 's/sc0_http_req_rate(handshakes_per_address)/sc_http_req_rate(0)/' "$D/haproxy.cfg" >"$TMP/haproxy-onetable.cfg"
check "haproxy -c: the one-table variant of the self-test is valid" haproxy -c -q -f "$TMP/haproxy-onetable.cfg"
rejects "rate-limit check: one table tracked per connection (every poll counted)" handshake_only "$TMP/haproxy-onetable.cfg"
failover_opts() { awk '/^backend orchestrators/{b=1} /^backend |^frontend /{if($2!="orchestrators")b=0} b' "$1" | grep '^  option redispatch$' >/dev/null &&
  awk '/^backend orchestrators/{b=1} /^backend |^frontend /{if($2!="orchestrators")b=0} b' "$1" | grep -Eq '^  retries [1-9]$'; }
check "haproxy: option redispatch and retries in the orchestrators' backend (a killed replica's users move on)" failover_opts "$D/haproxy.cfg"
sed '/^  option redispatch$/d' "$D/haproxy.cfg" >"$TMP/haproxy-noredispatch.cfg"
rejects "failover check: no option redispatch" failover_opts "$TMP/haproxy-noredispatch.cfg"
sed 's/^  balance leastconn/  balance leastconnn/' "$D/haproxy.cfg" >"$TMP/haproxy-bad.cfg"
rejects "haproxy -c: unknown balance algorithm" haproxy -c -q -f "$TMP/haproxy-bad.cfg"

# nginx: names resolved through a private /etc/hosts (the real one is untouched).
printf '127.0.0.1 localhost orchestrator redis prometheus\n' >"$TMP/hosts"
nginx_t() { unshare --mount sh -c 'mount --bind "$1" /etc/hosts && nginx -t -q -e stderr -c "$2"' sh "$TMP/hosts" "$1"; }
check "nginx -t deploy/nginx.conf" nginx_t "$D/nginx.conf"
nginx_props() {
  grep -q 'proxy_set_header Upgrade $http_upgrade' "$D/nginx.conf" &&
    grep -q 'proxy_set_header Connection $connection_upgrade' "$D/nginx.conf" &&
    grep -q 'proxy_read_timeout 3600s' "$D/nginx.conf" &&
    grep -q 'limit_req zone=handshake' "$D/nginx.conf" &&
    grep -q 'hash $phasekit_affinity consistent' "$D/nginx.conf" &&
    ! grep -Eq '^\s*ip_hash' "$D/nginx.conf"
}
check "nginx: WebSocket headers, long read timeout, handshake limit_req, keyed hash (no ip_hash)" nginx_props
sed 's/limit_req zone=handshake burst=50 nodelay;/limit_req zone=handshake burst=fifty;/' "$D/nginx.conf" >"$TMP/nginx-bad.conf"
rejects "nginx -t: bad limit_req burst" nginx_t "$TMP/nginx-bad.conf"
rejects "nginx -t: upstream name that does not resolve" nginx -t -q -e stderr -c "$D/nginx.conf"

summary
