// What the schema cannot see, checked on a rendered overlay (kubectl kustomize … | node k8s_invariants.js PHASE -):
// the ConfigMap selects the phase's plugins; probes, drain timing and resources of the orchestrator;
// the operations port (ADMIN_PORT) scraped, never behind a Service or the Ingress; what each phase runs. PHASE is 1, 2, 3, "base" or "loadtest". Prints one line per problem, exit 1 on any.
"use strict";
const fs = require("fs");
const path = require("path");
const yaml = require(path.join(process.env.PHASEKIT_SOURCE_DIR, "tools/node/node_modules/js-yaml"));

const [phase, file] = process.argv.slice(2);
const docs = yaml.loadAll(fs.readFileSync(file === "-" ? 0 : file, "utf8")).filter(Boolean);
const problems = [];
const find = (kind, name) => docs.find((d) => d.kind === kind && d.metadata.name === name);
const expect = (cond, what) => { if (!cond) problems.push(what); };

const cm = find("ConfigMap", "phasekit-config");
expect(cm, "ConfigMap phasekit-config missing");
const data = (cm && cm.data) || {};
const presets = {
  1: { PHASE: "1", ENABLE_CONTAINER_POOL: "false", ENABLE_WORKER_MODE: "false", ENABLE_CONVERSATION_COMPRESSION: "false", ENABLE_AUTOSCALER: "false", REDIS_URL: "" },
  2: { PHASE: "2", ENABLE_CONTAINER_POOL: "true", ENABLE_WORKER_MODE: "false", ENABLE_CONVERSATION_COMPRESSION: "false", ENABLE_AUTOSCALER: "false", REDIS_URL: "redis://redis:6379/0" },
  3: { PHASE: "3", ENABLE_CONTAINER_POOL: "true", ENABLE_WORKER_MODE: "true", ENABLE_CONVERSATION_COMPRESSION: "true", ENABLE_AUTOSCALER: "true", REDIS_URL: "redis://redis:6379/0" },
};
const want = presets[phase === "loadtest" ? 2 : phase];
if (want) {
  for (const [k, v] of Object.entries(want)) {
    expect(data[k] === v, `ConfigMap ${k}=${JSON.stringify(data[k])}, phase ${phase} needs ${JSON.stringify(v)}`);
  }
}
for (const k of Object.keys(data)) {
  expect(/^[A-Z][A-Z0-9_]*$/.test(k), `ConfigMap key ${k} is not an environment name`);
}
expect(phase !== "loadtest" || data.AUTH_MODE === "none", "loadtest: AUTH_MODE must be none");

const orch = find("Deployment", "orchestrator");
expect(orch, "Deployment orchestrator missing");
if (orch) {
  const pod = orch.spec.template.spec;
  const c = pod.containers.find((x) => x.name === "orchestrator");
  expect(c && c.command && c.command[0] === "phasekit-orchestrator", "orchestrator container must run phasekit-orchestrator");
  expect(c.livenessProbe && c.livenessProbe.httpGet && c.livenessProbe.httpGet.path === "/health", "liveness must be GET /health");
  expect(c.readinessProbe && c.readinessProbe.httpGet && c.readinessProbe.httpGet.path === "/ready", "readiness must be GET /ready");
  expect(c.resources && c.resources.requests && c.resources.limits && c.resources.limits.memory, "requests and limits required");
  const pre = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec && c.lifecycle.preStop.exec.command;
  const sleepS = pre && pre[0] === "sleep" ? Number(pre[1]) : NaN;
  expect(sleepS > 0, "preStop must be a sleep");
  const graceS = Number(data.SHUTDOWN_GRACE_MS) / 1000;
  expect(pod.terminationGracePeriodSeconds > sleepS + graceS,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} must exceed preStop ${sleepS} s + SHUTDOWN_GRACE_MS ${graceS} s`);
  expect(pod.securityContext && pod.securityContext.runAsNonRoot === true, "orchestrator must run as non-root");
  const refs = (c.envFrom || []).map((e) => (e.configMapRef || e.secretRef || {}).name);
  expect(refs.includes("phasekit-config") && refs.includes("phasekit-secret"), "orchestrator must read phasekit-config and phasekit-secret");
  expect(c.ports.some((p) => String(p.containerPort) === data.PORT), `containerPort must equal PORT ${data.PORT}`);
}
// The operations routes (ADMIN_PORT): a port of their own, scraped there, never behind a Service or
// the Ingress, reachable only as the NetworkPolicy phasekit-admin allows.
const adminPort = data.ADMIN_PORT;
expect(adminPort && adminPort !== data.PORT, `ConfigMap ADMIN_PORT=${JSON.stringify(adminPort)} must be set and differ from PORT`);
const serverPorts = new Set([String(data.PORT), String(adminPort)]);
for (const d of docs.filter((x) => x.kind === "Deployment")) {
  const name = d.metadata.name;
  const c = d.spec.template.spec.containers[0];
  const ports = (c.ports || []).map((p) => String(p.containerPort));
  if (!ports.some((p) => serverPorts.has(p))) continue;  // not a phasekit server (redis, …)
  const ann = d.spec.template.metadata.annotations || {};
  expect(ann["prometheus.io/port"] === adminPort, `${name}: prometheus.io/port must be ADMIN_PORT ${adminPort}, not ${ann["prometheus.io/port"]}`);
  expect(ann["prometheus.io/path"] === "/metrics", `${name}: prometheus.io/path must be /metrics`);
  expect(ports.includes(adminPort), `${name}: containerPort ADMIN_PORT ${adminPort} missing`);
  for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe].filter(Boolean)) {
    expect(probe.httpGet.port === "http" || String(probe.httpGet.port) === data.PORT, `${name}: probes go to PORT`);
  }
}
for (const s of docs.filter((x) => x.kind === "Service")) {
  for (const p of s.spec.ports || []) {
    expect(String(p.port) !== adminPort && String(p.targetPort) !== adminPort && p.targetPort !== "admin",
      `Service ${s.metadata.name} must not expose ADMIN_PORT`);
  }
}
const adminPolicy = find("NetworkPolicy", "phasekit-admin");
expect(adminPolicy, "NetworkPolicy phasekit-admin missing");
if (adminPolicy) {
  for (const rule of adminPolicy.spec.ingress) {
    const ports = (rule.ports || []).map((p) => String(p.port));
    expect(ports.length > 0, "phasekit-admin: every rule names its ports");
    expect(!ports.includes(adminPort) || (rule.from && rule.from.length > 0), "phasekit-admin: ADMIN_PORT only from named sources");
  }
}
expect(data.ALLOWED_ORIGINS !== "*", "ConfigMap ALLOWED_ORIGINS=*: name the sites instead");
const svc = find("Service", "orchestrator");
expect(svc && svc.spec.sessionAffinity === "ClientIP", "Service orchestrator needs sessionAffinity ClientIP");
const ing = find("Ingress", "orchestrator");
const ann = (ing && ing.metadata.annotations) || {};
expect(ann["nginx.ingress.kubernetes.io/affinity"] === "cookie", "Ingress needs cookie affinity");
expect(Number(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 60, "Ingress needs a long proxy-read-timeout for WebSockets");
expect(find("PodDisruptionBudget", "orchestrator"), "PodDisruptionBudget orchestrator missing");
expect(data.MAX_CONNECTIONS_PER_ADDRESS !== "0" || Number(ann["nginx.ingress.kubernetes.io/limit-connections"]) > 0,
  "MAX_CONNECTIONS_PER_ADDRESS=0 needs the Ingress to limit connections per address (limit-connections)");
for (const rule of (ing && ing.spec.rules) || []) {
  for (const p of rule.http.paths) {
    expect(p.backend.service.port.name === "http", `Ingress path ${p.path} must go to the http port`);
  }
}

const workers = find("Deployment", "worker");
const redis = find("StatefulSet", "redis");
const hpa = find("HorizontalPodAutoscaler", "orchestrator");
if (phase === "1") {
  expect(!workers && !redis && !hpa, "phase 1 runs one orchestrator only (no workers, redis or HPA)");
  expect(orch && orch.spec.replicas === 1, "phase 1: exactly one orchestrator");
}
if (phase === "2" || phase === "loadtest") {
  expect(!workers, `${phase}: no workers (queue=inproc)`);
}
if (phase === "2" || phase === "3" || phase === "base" || phase === "loadtest") {
  expect(redis && redis.spec.volumeClaimTemplates && redis.spec.volumeClaimTemplates.length > 0, "redis StatefulSet with a volumeClaimTemplate");
  expect(hpa && hpa.apiVersion === "autoscaling/v2", "orchestrator HPA autoscaling/v2");
}
if (phase === "3" || phase === "base") {
  expect(workers && workers.spec.template.spec.containers[0].command[0] === "phasekit-worker", "workers run phasekit-worker");
  expect(find("HorizontalPodAutoscaler", "worker"), "worker HPA");
}
if (phase === "loadtest") {
  const job = find("Job", "phasekit-load");
  const merge = find("Job", "phasekit-load-merge");
  expect(job && job.spec.parallelism === job.spec.completions && job.spec.completionMode === "Indexed", "load Job: Indexed, parallelism = completions");
  const run = docs.find((d) => d.kind === "ConfigMap" && d.metadata.name.startsWith("loadtest-run"));
  expect(run && job && Number(run.data.LOAD_PODS) === job.spec.completions, "LOAD_PODS must equal the load Job's completions");
  expect(merge && /phasekit-load merge/.test(merge.spec.template.spec.containers[0].args.join(" ")), "merge Job runs phasekit-load merge");
}

for (const p of problems) console.log(`problem: ${p}`);
process.exitCode = problems.length ? 1 : 0;
