#!/usr/bin/env bash
# Grafana dashboards (no Grafana here): a structural jq check of each dashboard, and every panel
# query through promtool's PromQL parser (Grafana's $__rate_interval/$__interval/$__range become
# 5m, template variables like $job become .*). Self-tests: a broken query and duplicate panel ids
# are rejected.
source "$(dirname "$0")/lib.sh"
need jq promtool

STRUCTURE='
  (.uid | type == "string" and length > 0) and (.title | type == "string") and
  (.schemaVersion | type == "number") and
  ([.panels[].id] | length == (unique | length)) and
  all(.panels[]; has("gridPos") and has("type") and (.gridPos | (.x + .w) <= 24 and .h > 0)) and
  all(.panels[] | select(.type != "row" and .type != "text");
      (.targets | length > 0) and ([.targets[].refId] | length == (unique | length)) and
      all(.targets[]; (.expr | type == "string" and length > 0)) and (.datasource.type == "prometheus")) and
  all(.templating.list[]; (.name | type == "string") and (.type | type == "string"))'

structure() { jq -e "$STRUCTURE" "$1" >/dev/null; }

# exprs_as_rules DASHBOARD OUT: one recording rule per panel query, in a JSON rules file.
exprs_as_rules() {
  jq '{groups: [{name: "dashboard", rules: [[.panels[] | .targets[]? | .expr] | to_entries[] |
        {record: "dashboard:expr_\(.key)",
         expr: (.value | gsub("\\$__(rate_interval|interval|range)"; "5m") | gsub("\\$\\{?[A-Za-z_]+\\}?"; ".*"))}]}]}' "$1" >"$2"
}
queries() { exprs_as_rules "$1" "$TMP/q.json" && promtool check rules "$TMP/q.json"; }

count=0
for d in "$SRC"/dashboards/*.json; do
  count=$((count + 1))
  check "structure: ${d#"$SRC"/}" structure "$d"
  check "every query parses: ${d#"$SRC"/}" queries "$d"
done
two_dashboards() { ((count >= 2)); }
check "orchestrator and load-test dashboards present" two_dashboards

first="$SRC/dashboards/orchestrator.json"
jq '.panels[1].targets[0].expr = "sum(rate(phasekit_events_total[$__rate_interval])"' "$first" >"$TMP/broken-expr.json"
rejects "queries: an unbalanced parenthesis" queries "$TMP/broken-expr.json"
jq '.panels[2].id = .panels[1].id' "$first" >"$TMP/dup-id.json"
rejects "structure: duplicate panel ids" structure "$TMP/dup-id.json"
jq '.panels[1].targets = []' "$first" >"$TMP/no-targets.json"
rejects "structure: a graph panel without queries" structure "$TMP/no-targets.json"

summary
