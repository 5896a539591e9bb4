# Shared by the deployment tests (sourced). Every check prints "ok   NAME" or "FAIL NAME"; a test
# ends with "N passed, M failed" and exits 1 on any failure. Processes a test starts are recorded
# with track_pid and stopped by PID on exit; nothing waits on a fixed sleep.
set -uo pipefail

SRC="${PHASEKIT_SOURCE_DIR:?PHASEKIT_SOURCE_DIR must point at the source tree}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/phasekit-deploy.XXXXXX")"
PIDS=()
passed=0
failed=0

track_pid() { PIDS+=("$1"); }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    # Bounded: a process that ignores SIGTERM for 10 s gets SIGKILL.
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# check NAME CMD...: CMD must succeed (its output is shown when it does not). CMD runs in this
# shell, so a function may set variables and start processes (track_pid) for later checks.
check() {
  local name="$1"
  shift
  if "$@" >"$TMP/check.out" 2>&1; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    sed 's/^/     /' "$TMP/check.out" | head -40
    failed=$((failed + 1))
  fi
}

# rejects NAME CMD...: self-test, CMD must fail (a check that cannot fail proves nothing).
rejects() {
  local name="$1"
  shift
  if "$@" >"$TMP/rejects.out" 2>&1; then
    echo "FAIL $name (accepted what it must reject)"
    sed 's/^/     /' "$TMP/rejects.out" | head -20
    failed=$((failed + 1))
  else
    echo "ok   $name (rejected)"
    passed=$((passed + 1))
  fi
}

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "FAIL $tool is not installed (scripts/setup.sh installs it)"; exit 1; }
  done
}

summary() {
  echo "$passed passed, $failed failed"
  [[ $failed -eq 0 && $passed -gt 0 ]]
}

# A free loopback TCP port (the kernel's choice; released before use, so bind soon after).
free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# wait_until SECONDS CMD...: polls CMD every 0.2 s until it succeeds or the deadline passes.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# start_orchestrator LOG [ENV=VALUE…]: phasekit-orchestrator on kernel-chosen loopback ports; sets
# ORCH_PID, ORCH_PORT and ORCH_ADMIN_PORT (/metrics, /stats/pool, /api/*) once it logs server.listening.
start_orchestrator() {
  local log="$1"
  shift
  env "$@" "${ORCHESTRATOR_BIN:?}" --port 0 --bind-address 127.0.0.1 --admin-port 0 >"$log" 2>&1 &
  ORCH_PID=$!
  track_pid "$ORCH_PID"
  wait_until 20 grep -q '"msg":"server.listening"' "$log" || { echo "orchestrator did not start:"; cat "$log"; return 1; }
  ORCH_PORT="$(grep -o '"msg":"server.listening".*' "$log" | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2)"
  ORCH_ADMIN_PORT="$(grep -o '"msg":"server.listening".*' "$log" | grep -o '"admin_port":[0-9]*' | head -1 | cut -d: -f2)"
  wait_until 20 curl -fsS "http://127.0.0.1:$ORCH_PORT/ready"
}

# plugins_are ENV_FILE EXPECTED: `phasekit config` with exactly the NAME=VALUE lines of ENV_FILE as
# its environment succeeds and chooses EXPECTED ("pool=… queue=… store=… compression=… autoscaler=…").
plugins_are() {
  local out="$1.cfg" got
  mapfile -t vars <"$1"
  env -i PATH="$PATH" "${vars[@]}" "${PHASEKIT_BIN:?}" config >"$out" 2>&1 || { cat "$out"; return 1; }
  got="$(awk '$1 ~ /^(pool|queue|store|compression|autoscaler)$/ && NF >= 3 { printf "%s=%s ", $1, $2 }' "$out")"
  [[ "$got" == "$2 " ]] || { echo "plugins: $got, expected: $2"; return 1; }
}
