#!/usr/bin/env bash
# promtool check config (with the rule files it names), check rules, and the rule unit tests.
# Self-tests: a rules file whose latency threshold was changed fails the unit tests, and a
# PromQL syntax error fails check rules.
source "$(dirname "$0")/lib.sh"
need promtool
M="$SRC/dashboards"

check "promtool check config dashboards/prometheus.yml" promtool check config "$M/prometheus.yml"
check "promtool check rules dashboards/rules.yml" promtool check rules "$M/rules.yml"
check "promtool test rules dashboards/rules_test.yml" promtool test rules "$M/rules_test.yml"
thresholds() {
  grep -q 'instance:phasekit_tool_call_duration_seconds:p95_1m > 0.05' "$M/rules.yml" &&
    grep -q ') / max_over_time(job:phasekit_engineio_sessions:sum\[5m\]) > 0.05' "$M/rules.yml" &&
    grep -q 'phasekit_process_resident_memory_bytes > 0.8 \* 2147483648' "$M/rules.yml"
}
check "thresholds of the origin design (50 ms, 5 %, 80 %)" thresholds

mkdir -p "$TMP/changed"
sed 's/p95_1m > 0.05$/p95_1m > 0.5/' "$M/rules.yml" >"$TMP/changed/rules.yml"
cp "$M/rules_test.yml" "$TMP/changed/"
rejects "unit tests catch a latency threshold raised to 500 ms" promtool test rules "$TMP/changed/rules_test.yml"
sed 's/expr: phasekit_process_resident_memory_bytes > 0.8/expr: phasekit_process_resident_memory_bytes >> 0.8/' "$M/rules.yml" >"$TMP/syntax.yml"
rejects "check rules: PromQL syntax error" promtool check rules "$TMP/syntax.yml"

summary
