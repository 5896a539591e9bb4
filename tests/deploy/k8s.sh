#!/usr/bin/env bash
# kubectl kustomize of the base and every overlay; each result through the schema validator
# (tools/node/k8s-validate.js, kubernetes-models 4.5.1) and the invariants the schema cannot see
# (k8s_invariants.js); phasekit-load validate of the load-test scenario. Self-tests: the validator
# and the invariants reject broken input.
source "$(dirname "$0")/lib.sh"
need kubectl node
VALIDATE="$SRC/tools/node/k8s-validate.js"

# validate_render DIR PHASE: kustomize, schema "N passed, 0 failed", invariants.
validate_render() {
  local dir="$1" phase="$2" out="$TMP/$(echo "$1" | tr / _).yaml"
  kubectl kustomize "$SRC/k8s/$dir" >"$out" || return 1
  node "$VALIDATE" "$out" | tee "$out.result" || return 1
  grep -Eq '^[1-9][0-9]* passed, 0 failed$' "$out.result" || return 1
  node "$(dirname "$0")/k8s_invariants.js" "$phase" "$out"
}

check "kustomize + schema + invariants: base" validate_render base base
for p in 1 2 3; do
  check "kustomize + schema + invariants: overlays/phase$p" validate_render "overlays/phase$p" "$p"
done
check "kustomize + schema + invariants: overlays/loadtest" validate_render overlays/loadtest loadtest
# The real configuration schema accepts each overlay's ConfigMap + Secret and picks the phase's plugins.
# config_ok OVERLAY NAME "pool=… queue=… store=… compression=… autoscaler=…"
# The Secret ships placeholders that phasekit refuses (findings 7 and 10): a deployment replaces them,
# and so does this check (NAME.shipped.env keeps them).
config_ok() {
  kubectl kustomize "$SRC/k8s/$1" | node "$(dirname "$0")/env_of.js" k8s - >"$TMP/$2.shipped.env" || return 1
  sed -e "s|^AUTH_SECRET=.*|AUTH_SECRET=$(openssl rand -base64 48)|" \
    -e "s|^REDIS_PASSWORD=.*|REDIS_PASSWORD=$(openssl rand -hex 32)|" "$TMP/$2.shipped.env" >"$TMP/$2.env"
  plugins_are "$TMP/$2.env" "$3"
}
check "phasekit config accepts overlays/phase1 (plugins of phase 1)" config_ok overlays/phase1 p1 \
  "pool=none queue=inproc store=memory compression=none autoscaler=none"
check "phasekit config accepts overlays/phase2 (plugins of phase 2)" config_ok overlays/phase2 p2 \
  "pool=warm queue=inproc store=redis compression=none autoscaler=none"
check "phasekit config accepts overlays/phase3 (plugins of phase 3)" config_ok overlays/phase3 p3 \
  "pool=warm queue=redis store=redis compression=zlib autoscaler=hpa"
check "phasekit config accepts overlays/loadtest" config_ok overlays/loadtest lt \
  "pool=warm queue=inproc store=redis compression=none autoscaler=none"
check "phasekit-load validate k8s/overlays/loadtest/scenario.yml" "${HARNESS_BIN:?}" validate "$SRC/k8s/overlays/loadtest/scenario.yml"

# The shipped placeholders are refused, each on its own, and for that reason.
placeholder_refused() { ! plugins_are "$1" "$2" && grep -q "not a placeholder" "$1.cfg"; }
grep -v '^AUTH_SECRET=' "$TMP/p2.env" >"$TMP/p2-auth-placeholder.env"
grep '^AUTH_SECRET=' "$TMP/p2.shipped.env" >>"$TMP/p2-auth-placeholder.env"
check "phasekit config refuses the AUTH_SECRET placeholder of k8s/base/secret.yaml" placeholder_refused \
  "$TMP/p2-auth-placeholder.env" "pool=warm queue=inproc store=redis compression=none autoscaler=none"
grep -v '^REDIS_PASSWORD=' "$TMP/p2.env" >"$TMP/p2-redis-placeholder.env"
grep '^REDIS_PASSWORD=' "$TMP/p2.shipped.env" >>"$TMP/p2-redis-placeholder.env"
check "phasekit config refuses the REDIS_PASSWORD placeholder of k8s/base/secret.yaml" placeholder_refused \
  "$TMP/p2-redis-placeholder.env" "pool=warm queue=inproc store=redis compression=none autoscaler=none"
redis_asks_password() {
  kubectl kustomize "$SRC/k8s/overlays/phase2" | node -e '
    const yaml = require(process.env.PHASEKIT_SOURCE_DIR + "/tools/node/node_modules/js-yaml");
    const docs = yaml.loadAll(require("fs").readFileSync(0, "utf8")).filter(Boolean);
    const c = docs.find((d) => d.kind === "StatefulSet" && d.metadata.name === "redis").spec.template.spec.containers[0];
    const i = c.args.indexOf("--requirepass");
    const env = (c.env || []).find((e) => e.name === "REDIS_PASSWORD");
    const ref = env && env.valueFrom && env.valueFrom.secretKeyRef;
    process.exit(i >= 0 && c.args[i + 1] === "$(REDIS_PASSWORD)" && ref && ref.name === "phasekit-secret" &&
      ref.key === "REDIS_PASSWORD" ? 0 : 1);'
}
check "redis asks for REDIS_PASSWORD of phasekit-secret (--requirepass)" redis_asks_password

# Self-tests.
cat >"$TMP/bad-hpa.yaml" <<'YAML'
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: x}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: x}
  maxReplicas: 3
  metrics:
    - type: Resource
      resource: {name: cpu, targetAverageUtilization: 50}
YAML
rejects "validator: HPA v2 with a v2beta1 field" node "$VALIDATE" "$TMP/bad-hpa.yaml"
printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n' >"$TMP/unknown.yaml"
rejects "validator: unknown kind" node "$VALIDATE" "$TMP/unknown.yaml"
kubectl kustomize "$SRC/k8s/overlays/phase2" | sed 's/^  replicas: 2$/  replicas: "two"/' >"$TMP/bad-replicas.yaml"
rejects "validator: replicas as a string" node "$VALIDATE" "$TMP/bad-replicas.yaml"
kubectl kustomize "$SRC/k8s/overlays/phase3" | sed 's/PHASE: "3"/PHASE: "2"/' >"$TMP/wrong-phase.yaml"
rejects "invariants: phase 3 overlay with PHASE=2" node "$(dirname "$0")/k8s_invariants.js" 3 "$TMP/wrong-phase.yaml"
kubectl kustomize "$SRC/k8s/overlays/phase2" | sed 's/terminationGracePeriodSeconds: 50/terminationGracePeriodSeconds: 30/' >"$TMP/short-grace.yaml"
rejects "invariants: grace period shorter than preStop + drain" node "$(dirname "$0")/k8s_invariants.js" 2 "$TMP/short-grace.yaml"
kubectl kustomize "$SRC/k8s/overlays/phase3" | sed 's|prometheus.io/port: "3001"|prometheus.io/port: "3000"|' >"$TMP/scrape-public.yaml"
rejects "invariants: Prometheus scraping PORT instead of ADMIN_PORT" node "$(dirname "$0")/k8s_invariants.js" 3 "$TMP/scrape-public.yaml"
kubectl kustomize "$SRC/k8s/overlays/phase2" | sed 's/targetPort: http$/targetPort: admin/' >"$TMP/svc-admin.yaml"
rejects "invariants: the Service routing to ADMIN_PORT" node "$(dirname "$0")/k8s_invariants.js" 2 "$TMP/svc-admin.yaml"
sed 's/^POOL_MIN_SIZE=.*/POOL_MIN_SIZE=ten/' "$TMP/p2.env" >"$TMP/bad.env"
rejects "phasekit config: POOL_MIN_SIZE=ten in the phase 2 ConfigMap" plugins_are "$TMP/bad.env" \
  "pool=warm queue=inproc store=redis compression=none autoscaler=none"
sed 's/^ENABLE_CONVERSATION_COMPRESSION=.*/ENABLE_CONVERSATION_COMPRESSION=false/' "$TMP/p3.env" >"$TMP/p3-plain.env"
rejects "plugin check: phase 3 with compression off is not phase 3's plugin set" plugins_are "$TMP/p3-plain.env" \
  "pool=warm queue=redis store=redis compression=zlib autoscaler=hpa"
mkdir -p "$TMP/broken-overlay" && printf 'resources:\n  - ../does-not-exist\n' >"$TMP/broken-overlay/kustomization.yaml"
rejects "kustomize: overlay of a missing base" kubectl kustomize "$TMP/broken-overlay"

summary
