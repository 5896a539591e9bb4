#!/usr/bin/env bash
# yamllint of every YAML file in k8s/, deploy/ and dashboards/ (relaxed, lines up to 160).
# Self-test: a duplicate key is rejected.
source "$(dirname "$0")/lib.sh"
need yamllint
CONF='{extends: relaxed, rules: {line-length: {max: 160}, key-duplicates: enable}}'
lint() { yamllint -s -d "$CONF" "$@"; }
check "yamllint k8s deploy dashboards" lint "$SRC/k8s" "$SRC/deploy" "$SRC/dashboards"
printf 'a: 1\nb: 2\na: 3\n' >"$TMP/dup.yaml"
rejects "yamllint: duplicate key" lint "$TMP/dup.yaml"
summary
