#!/usr/bin/env bash
# What one approved tool call costs the machine, against the floor of one spawn of the same command
# line, measured in the same run:
#   * the call: phasekit-orchestrator (warm fixed pool, in-process queue) in a cpuacct cgroup of its
#     own, which holds it and every sandbox it starts; phasekit-load (outside it) runs USERS users
#     doing CALLS calls each (message → tool:request → approval → tool:result, no think time). CPU of
#     the cgroup during the run, less its idle rate, divided by the calls that completed.
#   * the spawn: bench/spawn_cost in a cgroup of its own, posix_spawn of the same command line (read
#     to the end, reaped) COUNT times; the cgroup's CPU divided by COUNT.
# Targets (issue 14): `echo hi` at most 1.0× one spawn of `sh -c 'echo hi'`; `ls -la` at most 1.5× one
# spawn of `ls -la`. `command ls -la` is the same program started by bash rather than by the
# supervisor (phasekit/sandbox/direct.hpp), for comparison.
#   [ROUNDS=3] bench/toolcall_cost.sh [CALLS] [USERS]   (after ./scripts/build.sh; root; loopback only)
# KEEP=1 keeps the work folder (logs, reports) and prints its name.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
calls=${1:-100}
users=${2:-2}
acct=/sys/fs/cgroup/cpuacct
[[ -w "$acct" ]] || { echo "toolcall_cost: needs the cgroup v1 cpuacct hierarchy, writable (root)" >&2; exit 2; }
for bin in build/bin/phasekit-orchestrator build/bin/phasekit-load build/bench/spawn_cost; do
  [[ -x "$bin" ]] || { echo "toolcall_cost: $bin missing; run ./scripts/build.sh" >&2; exit 2; }
done
work=$(mktemp -d /tmp/phasekit-cost-XXXXXX)
chmod 711 "$work"
cg="$acct/phasekit-cost-$$"
mkdir -p "$cg/orchestrator" "$cg/spawn"
server=
cleanup() {
  [[ -n "$server" ]] && { kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  for d in "$cg/spawn" "$cg/orchestrator" "$cg"; do
    while read -r pid; do echo "$pid" > "$acct/tasks"; done < "$d/tasks" 2>/dev/null || true
    rmdir "$d" 2>/dev/null || true
  done
  [[ -n "${KEEP:-}" ]] && echo "toolcall_cost: work folder $work" || rm -rf "$work"
}
trap cleanup EXIT
usage() { cat "$1/cpuacct.usage"; }

# A warm fixed pool of one backend per user: acquisition costs nothing, each call runs in its user's
# persistent shell.
CGROUP_TASKS="$cg/orchestrator/tasks" start_orchestrator "$work/log" WORKSPACE_ROOT="$work/ws" \
  ENABLE_CONTAINER_POOL=true POOL_MIN_SIZE="$users" POOL_MAX_SIZE="$users"

# CPU ns of `cg` while COMMAND runs CALLS times per user, less the idle rate; and the calls done.
measure_calls() {
  local command=$1
  call_scenario "$work/cost.yml" "http://127.0.0.1:$port" "{ duration: 1, arrivalCount: $users }" "$command" 5
  build/bin/phasekit-load run "$work/cost.yml" --quiet -o "$work/warmup.json" >/dev/null 2>&1 || true
  local i0 t0 i1 t1
  i0=$(usage "$cg/orchestrator"); t0=$(date +%s%N)
  sleep 1
  i1=$(usage "$cg/orchestrator"); t1=$(date +%s%N)
  idle_rate=$(awk -v u=$((i1 - i0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.9f", u / t }')
  call_scenario "$work/cost.yml" "http://127.0.0.1:$port" "{ duration: 1, arrivalCount: $users }" "$command" "$calls"
  local u0 u1 s0 s1
  u0=$(usage "$cg/orchestrator"); s0=$(date +%s%N)
  build/bin/phasekit-load run "$work/cost.yml" --quiet -o "$work/run.json" >/dev/null 2>&1 || true
  u1=$(usage "$cg/orchestrator"); s1=$(date +%s%N)
  # Calls that ended with their tool:result (each call waits for two responses: request and result).
  call_jobs=$(jq '(.total.counters["socketio.response"] // 0) / 2 | floor' "$work/run.json")
  call_ns=$(awk -v u=$((u1 - u0)) -v r="$idle_rate" -v t=$((s1 - s0)) -v n="$call_jobs" \
    'BEGIN { if (n <= 0) { print "nan"; exit } printf "%.0f", (u - r * t) / n }')
}

# CPU ns of one posix_spawn of ARGV (in its own cgroup), over COUNT spawns, run where a call runs: in
# an empty folder of the backends' user, with the same locale.
measure_spawn() {
  local count=$((calls * users)) u0 u1
  mkdir -p "$work/empty"
  [[ $(id -u) -ne 0 ]] || chown 65534:65534 "$work/empty"
  u0=$(usage "$cg/spawn")
  (cd "$work/empty" && sh -c 'echo $$ > "$1/tasks"; shift; exec env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.utf8 "$@"' \
    _ "$cg/spawn" "$OLDPWD/build/bench/spawn_cost" "$count" "$@")
  u1=$(usage "$cg/spawn")
  spawn_ns=$(awk -v u=$((u1 - u0)) -v n="$count" 'BEGIN { printf "%.0f", u / n }')
}

printf '%-14s %8s %14s %18s %12s %8s %6s\n' command calls "call CPU ms" "spawn of" "spawn CPU ms" ratio target
# ROUNDS rounds of calls then spawns, back to back, so both see the same machine; the row is the
# round of median ratio (this VM's CPU cost of a spawn drifts by a third from minute to minute).
rounds=${ROUNDS:-3}
row() {
  local command=$1 label=$2 target=$3 results=()
  shift 3
  for ((r = 0; r < rounds; r++)); do
    measure_calls "$command"
    measure_spawn "$@"
    results+=("$(awk -v cn="$call_ns" -v sn="$spawn_ns" -v n="$call_jobs" 'BEGIN { printf "%.6f %s %s %s", cn / sn, cn, sn, n }')")
  done
  printf '%s\n' "${results[@]}" | sort -n | awk -v c="$command" -v l="$label" -v t="$target" -v k="$rounds" '
    { ratio[NR] = $1; cn[NR] = $2; sn[NR] = $3; n += $4; all = all sprintf("%s%.2f", NR > 1 ? " " : "", $1) }
    END {
      m = int((NR + 1) / 2)
      verdict = t == "-" ? "     - (for comparison)" : sprintf("%5.1fx %s", t, ratio[m] <= t ? "met" : "MISSED")
      printf "%-14s %8d %14.3f %18s %12.3f %7.2fx %s (ratios of %d rounds: %s)\n", c, n, cn[m] / 1e6, l,
        sn[m] / 1e6, ratio[m], verdict, k, all
    }'
}
row "echo hi" "sh -c 'echo hi'" 1.0 sh -c 'echo hi'
row "ls -la" "ls -la" 1.5 ls -la
# The same program through the session's shell (`command` is a builtin, so the supervisor leaves the
# call to bash, which forks): what starting it without the shell saves, in this run.
row "command ls -la" "ls -la" - ls -la
echo "toolcall_cost: $users users x $calls calls per command; orchestrator idle $(awk -v r="$idle_rate" 'BEGIN { printf "%.2f", r * 100 }') % of a CPU; $(nproc) CPUs"
