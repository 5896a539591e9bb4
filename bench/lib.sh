# What the bench scripts do alike. Sourced, from the repository's root:
#   source bench/lib.sh

# start_orchestrator LOG [NAME=value ...]: build/bin/phasekit-orchestrator on free loopback ports
# (PORT=0, ADMIN_PORT=0) with the given settings, its output in LOG; in the cgroup whose tasks file is
# $CGROUP_TASKS when that is set. The load generator is one address: no per-address connection limit.
# Sets `server` (its pid), `port` and `admin_port` (/metrics, /stats/pool), and returns once /ready
# answers 200 (a warm pool is full), or fails after 120 s saying why.
start_orchestrator() {
  local log=$1
  shift
  sh -c '[ -z "$1" ] || echo $$ > "$1"; shift; exec env "$@"' _ "${CGROUP_TASKS:-}" PORT=0 ADMIN_PORT=0 \
    MAX_CONNECTIONS_PER_ADDRESS=0 "$@" \
    build/bin/phasekit-orchestrator > "$log" 2>&1 &
  server=$!
  port=
  local _
  for _ in $(seq 400); do
    port=$(grep -o '"msg":"server.listening".*"port":[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    [[ -n "$port" ]] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n "$port" ]] || { echo "the orchestrator did not start:" >&2; cat "$log" >&2; return 1; }
  admin_port=$(grep -o '"msg":"server.listening".*"admin_port":[0-9]*' "$log" | grep -o '[0-9]*$')
  for _ in $(seq 1200); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" == 200 ]] && return 0
    sleep 0.1
  done
  echo "the orchestrator was not ready after 120 s:" >&2
  tail -5 "$log" >&2
  return 1
}

# call_scenario FILE TARGET PHASE COMMAND [COUNT]: an Artillery scenario whose users each make COUNT
# (default 1) tool calls of COMMAND back to back: message, wait for tool:request, approve, wait for
# the tool:result. PHASE is one phase in YAML flow form, e.g. "{ duration: 1, arrivalCount: 2 }".
call_scenario() {
  local file=$1 target=$2 phase=$3 command=$4 count=${5:-1}
  cat > "$file" <<EOF
config:
  target: "$target"
  phases:
    - $phase
  socketio:
    transports: ["websocket"]
  timeout: 60
scenarios:
  - engine: socketio
    flow:
      - loop:
          - emit:
              channel: "message"
              data: "$command"
            acknowledge:
              match: { json: "\$.0.ok", value: true }
            response:
              channel: "tool:request"
              capture: { json: "\$.callId", as: "callId" }
          - emit:
              channel: "tool:approval"
              data: { callId: "{{ callId }}", approved: true }
            response:
              channel: "tool:result"
              match: { json: "\$.callId", value: "{{ callId }}" }
        count: $count
EOF
}

# histogram_quantiles SERIES FILE: count, p50, p95 and p99 (in ms) of the Prometheus histogram whose
# bucket lines start with SERIES (e.g. 'phasekit_backend_acquire_seconds_bucket{' or one with a label),
# every series and instance in FILE added bucket by bucket; linear within a bucket. Prints
# "COUNT P50 P95 P99", or nothing when FILE holds no such histogram.
histogram_quantiles() {
  awk -v name="$1" '
    index($0, name) == 1 {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); v = $NF
      total[le] += v; if (!(le in seen)) { seen[le] = 1; order[n++] = le }
    }
    END {
      if (n == 0) exit
      count = total["+Inf"]
      printf "%d", count
      for (qi = 1; qi <= 3; qi++) {
        q = (qi == 1 ? 0.5 : qi == 2 ? 0.95 : 0.99); rank = q * count; prev_le = 0; prev = 0
        for (i = 0; i < n; i++) {
          le = order[i]; if (le == "+Inf") continue
          if (total[le] >= rank) { f = total[le] > prev ? (rank - prev) / (total[le] - prev) : 0
            printf " %.3f", 1000 * (prev_le + f * (le - prev_le)); break }
          prev_le = le; prev = total[le]
        }
      }
      printf "\n"
    }' "$2"
}
