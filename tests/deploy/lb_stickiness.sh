#!/usr/bin/env bash
# The shipped load balancer configs, run for real on loopback in front of two real
# phasekit-orchestrators, with Engine.IO long-polling (the transport that needs stickiness: every
# request of a session must reach the process that holds its sid, else "Session ID unknown").
#
# HAProxy: deploy/haproxy.cfg with only the listen address and the servers replaced (two `server`
# lines on the orchestrators' ports instead of Docker-DNS server-template). Checked: each
# session's requests all succeed when the client keeps the phasekit_lb cookie, sessions spread
# over both orchestrators, a client that drops the cookie gets "Session ID unknown" (so stickiness
# is what makes it work), WebSocket sessions pass through, /metrics is not exposed, and handshakes
# past the rate limit get 429.
# nginx: deploy/nginx.conf with the listen address, the upstream servers and the pid/temp paths
# replaced. Checked: sessions keyed by X-Phasekit-Affinity spread over both orchestrators and each
# stays on its own (hash on the key, not ip_hash), key-less requests stay on one backend,
# WebSocket sessions pass through, and handshakes past limit_req get 429.
source "$(dirname "$0")/lib.sh"
need haproxy nginx curl jq
: "${HARNESS_BIN:?}"

# Behind a balancer every client has its address: no per-address limit in the orchestrators (as in
# deploy/docker-compose.scale.yml); the balancers limit per client address.
check "orchestrator A starts" start_orchestrator "$TMP/a.log" MAX_CONNECTIONS_PER_ADDRESS=0
A_PORT="$ORCH_PORT" A_ADMIN="$ORCH_ADMIN_PORT"
check "orchestrator B starts" start_orchestrator "$TMP/b.log" MAX_CONNECTIONS_PER_ADDRESS=0
B_PORT="$ORCH_PORT" B_ADMIN="$ORCH_ADMIN_PORT"
[[ -n "${A_PORT:-}" && -n "${B_PORT:-}" ]] || { summary; exit 1; }

# engineio_sessions ADMIN_PORT: the orchestrator's phasekit_engineio_sessions.
engineio_sessions() { curl -fsS "http://127.0.0.1:$1/metrics" | awk '$1 == "phasekit_engineio_sessions" { print $2 + 0 }'; }

# polling_session URL [curl options…]: handshake, CONNECT, 4 events, each a separate HTTP request,
# through URL; prints how many of the 5 POSTs failed ("handshake-failed" when the handshake did).
polling_session() {
  local url="$1/socket.io/?EIO=4&transport=polling" body sid bad=0 i
  shift
  body="$(curl -fsS "$@" "$url")" || { echo handshake-failed; return; }
  sid="$(jq -r .sid <<<"${body:1}")"
  for i in 0 1 2 3 4; do
    local data='42["probe"]'
    ((i == 0)) && data='40'
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "$@" -d "$data" "$url&sid=$sid")" == 200 ]] || bad=$((bad + 1))
  done
  echo "$bad"
}

# ---------------------------------------------------------------- HAProxy
LB_PORT="$(free_port)"
sed -e "s/^  bind :8080$/  bind 127.0.0.1:$LB_PORT/" \
    -e "s/^  bind :8404$/  bind 127.0.0.1:$(free_port)/" \
    -e "s/^  server-template orch 1-20 orchestrator:3000 resolvers docker init-addr none$/  server orch-a 127.0.0.1:$A_PORT\n  server orch-b 127.0.0.1:$B_PORT/" \
    -e '/^resolvers docker$/,/^$/d' \
    "$SRC/deploy/haproxy.cfg" >"$TMP/haproxy.cfg"
only_servers_changed() {
  diff "$SRC/deploy/haproxy.cfg" "$TMP/haproxy.cfg" | grep -E '^[<>]' | grep -vE 'bind |server-template|server orch-|resolvers|nameserver|resolve_retries|timeout (resolve|retry)|hold |accepted_payload_size|^< #|^< *$' && return 1
  grep -q "server orch-a 127.0.0.1:$A_PORT" "$TMP/haproxy.cfg"
}
check "test haproxy.cfg differs from the shipped one only in addresses" only_servers_changed
check "haproxy -c of the test copy" haproxy -c -q -f "$TMP/haproxy.cfg"
haproxy -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.log" 2>&1 &
track_pid $!
LB="http://127.0.0.1:$LB_PORT"
check "haproxy up, both orchestrators healthy (/ready)" wait_until 20 curl -fsS "$LB/health"

sticky_sessions() {
  local i bad total=0
  for i in $(seq 12); do
    bad="$(polling_session "$LB" -b "$TMP/jar$i" -c "$TMP/jar$i")"
    [[ "$bad" =~ ^[0-9]+$ ]] || return 1
    total=$((total + bad))
  done
  [[ $total -eq 0 ]] || { echo "$total of 60 requests failed"; return 1; }
  grep -q phasekit_lb "$TMP/jar1"
}
check "12 polling sessions keeping the phasekit_lb cookie: every request reaches its orchestrator" sticky_sessions
both_used() { (($(engineio_sessions "$A_ADMIN") > 0 && $(engineio_sessions "$B_ADMIN") > 0)); }
check "sessions spread over both orchestrators" both_used
without_cookie() {
  local i bad total=0
  for i in $(seq 6); do
    bad="$(polling_session "$LB")"
    [[ "$bad" =~ ^[0-9]+$ ]] || return 1
    total=$((total + bad))
  done
  echo "$total of 30 requests without the cookie failed"
  ((total > 0))
}
check "without the cookie, polls land on the other orchestrator (Session ID unknown)" without_cookie

cat >"$TMP/ws.yml" <<YAML
config:
  target: "$LB"
  phases:
    - { duration: 3, arrivalRate: 4, name: "through haproxy" }
  socketio:
    transports: ["websocket"]
  timeout: 15
  ensure:
    maxErrorRate: 0
scenarios:
  - engine: socketio
    flow:
      - emit: { channel: "message", data: "echo through-the-lb" }
        response: { channel: "tool:request", capture: { json: "\$.callId", as: "callId" } }
      - emit: { channel: "tool:approval", data: { callId: "{{ callId }}", approved: true } }
        response: { channel: "tool:result", match: { json: "\$.exitCode", value: 0 } }
YAML
check "WebSocket tool calls through haproxy (phasekit-load, 12 users, no errors)" "$HARNESS_BIN" run "$TMP/ws.yml" --quiet
metrics_hidden() { [[ "$(curl -s -o /dev/null -w '%{http_code}' "$LB/metrics")" == 404 ]]; }
check "/metrics is not exposed through the load balancer" metrics_hidden
rate_limited() {  # rate_limited BASE_URL COUNT
  # COUNT handshakes on one keep-alive connection (one curl), well inside the 10 s window.
  local urls=() codes
  for i in $(seq "$2"); do urls+=("$1/socket.io/?EIO=4&transport=polling&n=$i"); done
  codes="$(curl -s -o /dev/null -w '%{http_code}\n' "${urls[@]}" | sort | uniq -c | tr -s ' ' | tr '\n' ',')"
  echo "status codes: $codes"
  grep -q ' 429' <<<"$codes" && grep -q ' 200' <<<"$codes"
}
check "handshake rate limit: 429 past 200 per 10 s from one address" rate_limited "$LB" 260

# ---------------------------------------------------------------- nginx
NGX_PORT="$(free_port)"
mkdir -p "$TMP/nginx"
sed -e "s|^    listen 8080;$|    listen 127.0.0.1:$NGX_PORT;|" \
    -e "s|^    server orchestrator:3000 max_fails=2 fail_timeout=5s;$|    server 127.0.0.1:$A_PORT max_fails=2 fail_timeout=5s;\n    server 127.0.0.1:$B_PORT max_fails=2 fail_timeout=5s;|" \
    -e "s|^pid /tmp/nginx.pid;$|pid $TMP/nginx/nginx.pid;|" \
    -e "s|^  access_log /dev/stdout;$|  access_log $TMP/nginx/access.log;\n  client_body_temp_path $TMP/nginx/body;\n  proxy_temp_path $TMP/nginx/proxy;|" \
    -e "s|^worker_processes auto;$|worker_processes 1;\ndaemon off;|" \
    "$SRC/deploy/nginx.conf" >"$TMP/nginx/nginx.conf"
nginx_copy_ok() { grep -q "server 127.0.0.1:$B_PORT" "$TMP/nginx/nginx.conf" && grep -q "listen 127.0.0.1:$NGX_PORT" "$TMP/nginx/nginx.conf"; }
check "test nginx.conf: addresses replaced" nginx_copy_ok
nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx/out.log" 2>&1 &
track_pid $!
NGX="http://127.0.0.1:$NGX_PORT"
check "nginx up" wait_until 20 curl -fsS "$NGX/lb/health"

a0="$(engineio_sessions "$A_ADMIN")"
b0="$(engineio_sessions "$B_ADMIN")"
keyed_sessions() {
  local i bad total=0
  for i in $(seq 16); do
    bad="$(polling_session "$NGX" -H "X-Phasekit-Affinity: user-$i")"
    [[ "$bad" =~ ^[0-9]+$ ]] || return 1
    total=$((total + bad))
  done
  [[ $total -eq 0 ]] || { echo "$total of 80 requests failed"; return 1; }
}
check "16 polling sessions with X-Phasekit-Affinity keys: every request reaches its orchestrator" keyed_sessions
spread() {
  local a b
  a=$(($(engineio_sessions "$A_ADMIN") - a0))
  b=$(($(engineio_sessions "$B_ADMIN") - b0))
  echo "new sessions: A $a, B $b"
  ((a > 0 && b > 0))
}
check "keyed sessions spread over both orchestrators (not ip_hash)" spread
keyless() {
  local i bad total=0
  for i in $(seq 6); do
    bad="$(polling_session "$NGX")"
    [[ "$bad" =~ ^[0-9]+$ ]] || return 1
    total=$((total + bad))
  done
  [[ $total -eq 0 ]] || { echo "$total of 30 requests failed"; return 1; }
}
check "key-less polling sessions stay on one orchestrator (address fallback, never round-robin)" keyless
ws_nginx() { sed "s|target: \"$LB\"|target: \"$NGX\"|" "$TMP/ws.yml" >"$TMP/ws-nginx.yml" && "$HARNESS_BIN" run "$TMP/ws-nginx.yml" --quiet; }
check "WebSocket tool calls through nginx (phasekit-load, 12 users, no errors)" ws_nginx
# Last, as with haproxy: the flood fills the handshake bucket, which then takes 2.5 s to drain.
check "nginx limit_req on handshakes: 429 past 20/s (burst 50)" rate_limited "$NGX" 120

summary
