#!/usr/bin/env bash
# scripts/capacity-regression.sh against this build (--no-build), stored-baseline mode, with short
# copies of scenarios/regression.yml (4 s): it writes a baseline, passes against a baseline of slow
# tool calls, and exits 1 (REGRESSION) when every command sleeps 0.5 s longer than in the baseline.
# The "previous commit" mode compiles HEAD~1 and is too heavy for a 2-core test run; it shares
# every step after the build with the mode tested here.
source "$(dirname "$0")/lib.sh"
need curl git
SCRIPT="$SRC/scripts/capacity-regression.sh"
BUILD="$(dirname "$(dirname "${ORCHESTRATOR_BIN:?}")")"

sed -e 's/duration: 10, arrivalRate: 5/duration: 4, arrivalRate: 5/' "$SRC/scenarios/regression.yml" >"$TMP/fast.yml"
sed -e 's/data: "echo regression/data: "sleep 0.5; echo regression/' "$TMP/fast.yml" >"$TMP/slow.yml"
shortened() { grep -q 'duration: 4' "$TMP/fast.yml" && grep -q 'sleep 0.5' "$TMP/slow.yml"; }
check "test scenarios derived from scenarios/regression.yml" shortened

MARK="capreg-$$"
export PHASEKIT_CAPREG_MARK="$MARK"

# Only the metrics the slow commands move (connect time is left out: at a few ms it is noise here).
run() { "$SCRIPT" --no-build --build-dir "$BUILD" --rounds 1 --metrics socketio.response_time.p95,vusers.session_length.p50,error_rate "$@"; }
check "--write-baseline (fast commands) writes a report" run --write-baseline --scenario "$TMP/fast.yml" --baseline "$TMP/fast-baseline.json"
is_report() { jq -e '.schema == "phasekit-load/report@1" and .total != null' "$1"; }
check "the baseline is a phasekit-load report" is_report "$TMP/fast-baseline.json"
check "--write-baseline (slow commands)" run --write-baseline --scenario "$TMP/slow.yml" --baseline "$TMP/slow-baseline.json"
check "fast commands against the slow baseline: no regression (exit 0)" run --against stored --scenario "$TMP/fast.yml" --baseline "$TMP/slow-baseline.json"
rejects "slow commands against the fast baseline: REGRESSION (exit 1)" run --against stored --scenario "$TMP/slow.yml" --baseline "$TMP/fast-baseline.json"
said_regression() { grep -q 'capacity-regression: REGRESSION' "$TMP/rejects.out" && grep -q 'socketio.response_time.p95 .*REGRESSION' "$TMP/rejects.out"; }
check "... and says which metric regressed" said_regression
exit_code_1() { run --against stored --scenario "$TMP/slow.yml" --baseline "$TMP/fast-baseline.json" >/dev/null 2>&1; [[ $? -eq 1 ]]; }
check "a regression is exit code 1 (not 2)" exit_code_1
rejects "a missing stored baseline is an error" run --against stored --scenario "$TMP/fast.yml" --baseline "$TMP/none.json"
# Its own orchestrators only (they inherit this mark): another test may run one from the same build.
leftovers() {
  local pid
  for pid in $(pgrep -f "$ORCHESTRATOR_BIN"); do
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "PHASEKIT_CAPREG_MARK=$MARK" && return 1
  done
  return 0
}
check "no orchestrator left running" leftovers

summary
