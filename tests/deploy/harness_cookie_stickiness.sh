#!/usr/bin/env bash
# phasekit-load's cookie jar against the shipped HAProxy config: Engine.IO long-polling only (every
# request of a session must reach the orchestrator that holds its sid), through deploy/haproxy.cfg
# (cookie phasekit_lb insert, balance leastconn) in front of three real phasekit-orchestrators.
# Checked: with each user keeping its cookies, a polling run has no error and its sessions spread
# over all three orchestrators. Self-test: the same run with --no-cookies fails with "Session ID
# unknown" (the balancer sends a user's polls and POSTs to other orchestrators), so the cookie is
# what makes it work.
# The HAProxy copy differs from the shipped one only in its addresses, as in lb_stickiness.sh.
source "$(dirname "$0")/lib.sh"
need haproxy curl jq node
: "${HARNESS_BIN:?}"

# Behind a balancer every client has its address: no per-address limit in the orchestrators.
ORCH_PORTS=()
ORCH_ADMINS=()
start_three() {
  local name
  for name in a b c; do
    start_orchestrator "$TMP/$name.log" MAX_CONNECTIONS_PER_ADDRESS=0 || return 1
    ORCH_PORTS+=("$ORCH_PORT")
    ORCH_ADMINS+=("$ORCH_ADMIN_PORT")
  done
}
check "three orchestrators start" start_three
((${#ORCH_PORTS[@]} == 3)) || { summary; exit 1; }

LB_PORT="$(free_port)"
STATS_PORT="$(free_port)"
servers="  server orch-a 127.0.0.1:${ORCH_PORTS[0]}\n  server orch-b 127.0.0.1:${ORCH_PORTS[1]}\n  server orch-c 127.0.0.1:${ORCH_PORTS[2]}"
sed -e "s/^  bind :8080$/  bind 127.0.0.1:$LB_PORT/" \
    -e "s/^  bind :8404$/  bind 127.0.0.1:$STATS_PORT/" \
    -e "s/^  server-template orch 1-20 orchestrator:3000 resolvers docker init-addr none$/$servers/" \
    -e '/^resolvers docker$/,/^$/d' \
    "$SRC/deploy/haproxy.cfg" >"$TMP/haproxy.cfg"
only_addresses_changed() {
  diff "$SRC/deploy/haproxy.cfg" "$TMP/haproxy.cfg" | grep -E '^[<>]' | grep -vE 'bind |server-template|server orch-|resolvers|nameserver|resolve_retries|timeout (resolve|retry)|hold |accepted_payload_size|^< #|^< *$' && return 1
  grep -q "server orch-c 127.0.0.1:${ORCH_PORTS[2]}" "$TMP/haproxy.cfg" && grep -q 'cookie phasekit_lb insert' "$TMP/haproxy.cfg"
}
check "test haproxy.cfg differs from the shipped one only in addresses" only_addresses_changed
check "haproxy -c of the test copy" haproxy -c -q -f "$TMP/haproxy.cfg"
haproxy -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.log" 2>&1 &
track_pid $!
LB="http://127.0.0.1:$LB_PORT"
# All three servers UP by HAProxy's own health checks (its stats CSV: column 18 is the status).
three_up() { [[ "$(curl -fsS "http://127.0.0.1:$STATS_PORT/;csv" | awk -F, '$1 == "orchestrators" && $2 ~ /^orch-/ && $18 == "UP"' | wc -l)" == 3 ]]; }
check "haproxy up, all three orchestrators UP" wait_until 30 three_up

# jobs_run ADMIN_PORT: tool calls the orchestrator ran (phasekit_jobs_total over every outcome).
jobs_run() { curl -fsS "http://127.0.0.1:$1/metrics" | awk '$1 ~ /^phasekit_jobs_total/ { n += $2 } END { print n + 0 }'; }
jobs_before=()
for admin in "${ORCH_ADMINS[@]}"; do jobs_before+=("$(jobs_run "$admin")"); done

cat >"$TMP/polling.yml" <<YAML
config:
  target: "$LB"
  phases:
    - { duration: 3, arrivalRate: 10, name: "polling through haproxy" }
  socketio:
    transports: ["polling"]
  timeout: 15
  ensure:
    maxErrorRate: 0
scenarios:
  - engine: socketio
    flow:
      - loop:
          - emit: { channel: "message", data: "echo sticky-{{ \$loopCount }}" }
            response: { channel: "tool:request", capture: { json: "\$.callId", as: "callId" } }
          - emit: { channel: "tool:approval", data: { callId: "{{ callId }}", approved: true } }
            response: { channel: "tool:result", match: { json: "\$.exitCode", value: 0 } }
          - think: 0.3
        count: 2
YAML

with_jar() {
  "$HARNESS_BIN" run "$TMP/polling.yml" --quiet -o "$TMP/with.json" || return 1
  jq -e '.total.counters["vusers.completed"] == 30 and (.total.counters | keys | map(select(startswith("errors."))) | length == 0)' \
    "$TMP/with.json"
}
check "30 polling users through haproxy, each keeping its cookies: no error" with_jar
spread() {
  local i n
  for i in 0 1 2; do
    n=$(($(jobs_run "${ORCH_ADMINS[$i]}") - jobs_before[i]))
    echo "orchestrator $i ran $n tool calls"
    ((n > 0)) || return 1
  done
}
check "the sessions spread over all three orchestrators" spread
spread | sed 's/^/     /'

without_jar() {
  "$HARNESS_BIN" run "$TMP/polling.yml" --quiet --no-cookies -o "$TMP/without.json"
  local code=$?
  jq -r '"failed users: \(.total.counters["vusers.failed"]); first: \(.meta.errorDetails | tostring)"' "$TMP/without.json"
  ((code == 1)) && jq -e '.total.counters["vusers.failed"] > 0 and (.meta.errorDetails | tostring | test("Session ID unknown"))' \
    "$TMP/without.json" >/dev/null
}
check "self-test: the same run with --no-cookies fails with \"Session ID unknown\"" without_jar
[[ -f "$TMP/without.json" ]] && jq -r '"     without cookies: \(.total.counters["vusers.failed"]) of \(.total.counters["vusers.created"]) users failed: \(.meta.errorDetails | to_entries | map("\(.key): \(.value)") | join("; "))"' "$TMP/without.json"

summary
