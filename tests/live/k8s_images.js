// The rendered Kubernetes manifests against the images the live test built: every image a manifest
// names exists; the phasekit containers run as the image's user; their command is a program in the
// image; their ports are the ones the ConfigMap gives PORT and ADMIN_PORT; and every HTTP probe answers
// in a running container of that image (PROBE_CONTAINER_<command>: a container id to exec curl in).
//   node tests/live/k8s_images.js RENDERED.yaml IMAGES.json
// IMAGES.json: {"tags": ["phasekit:0.1.0", …], "inspect": {"phasekit:0.1.0": <docker inspect>},
//               "programs": {"phasekit:0.1.0": ["phasekit-orchestrator", …]}}
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const yaml = require(path.join(process.env.PHASEKIT_NODE_MODULES, "js-yaml"));

const docs = yaml.loadAll(fs.readFileSync(process.argv[2], "utf8")).filter(Boolean);
const images = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const problems = [];
const config = Object.assign({}, ...docs.filter((d) => d.kind === "ConfigMap").map((d) => d.data || {}));
const port = Number(config.PORT || 3000);
const adminPort = Number(config.ADMIN_PORT || 3001);
let checked = 0;
let probed = 0;

for (const d of docs.filter((x) => ["Deployment", "StatefulSet", "Job"].includes(x.kind))) {
  const pod = d.spec.template.spec;
  for (const c of [...(pod.initContainers || []), ...pod.containers]) {
    const where = `${d.kind}/${d.metadata.name} ${c.name}`;
    if (!images.tags.includes(c.image)) {
      problems.push(`${where}: image ${c.image} was not built (built: ${images.tags.join(", ")})`);
      continue;
    }
    if (!c.image.startsWith("phasekit:")) continue;
    checked += 1;
    const cfg = images.inspect[c.image].Config;
    const [uid, gid] = String(cfg.User || "0:0").split(":").map(Number);
    const sc = { ...(pod.securityContext || {}), ...(c.securityContext || {}) };
    if (sc.runAsUser !== uid || (sc.runAsGroup !== undefined && sc.runAsGroup !== gid)) {
      problems.push(`${where}: runs as ${sc.runAsUser}:${sc.runAsGroup}, the image's user is ${cfg.User}`);
    }
    const program = (c.command || cfg.Entrypoint || cfg.Cmd || [])[0];
    if (!(images.programs[c.image] || []).includes(program)) {
      problems.push(`${where}: ${program} is not a program of ${c.image}`);
    }
    const ports = Object.fromEntries((c.ports || []).map((p) => [p.name, p.containerPort]));
    if (ports.http !== port || ports.admin !== adminPort) {
      problems.push(`${where}: ports ${JSON.stringify(ports)}, the ConfigMap says PORT ${port}, ADMIN_PORT ${adminPort}`);
    }
    const running = process.env[`PROBE_CONTAINER_${program.replace(/-/g, "_")}`];
    for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      const get = c[kind] && c[kind].httpGet;
      if (!get) continue;
      const target = typeof get.port === "string" ? ports[get.port] : get.port;
      if (target === undefined) {
        problems.push(`${where}: ${kind} names port ${get.port}, which the container does not have`);
        continue;
      }
      if (!running) continue;
      try {
        execFileSync(process.env.DOCKER || "docker",
                     ["exec", running, "curl", "-fsS", "-o", "/dev/null", `http://127.0.0.1:${target}${get.path}`],
                     { stdio: ["ignore", "ignore", "pipe"], timeout: 10000 });
        probed += 1;
      } catch (e) {
        problems.push(`${where}: ${kind} GET ${get.path} on ${target} fails in a running ${program}: ${String(e.stderr || e.message).trim()}`);
      }
    }
  }
}
if (checked === 0) problems.push("no phasekit container in the manifests");
if (Object.keys(process.env).some((k) => k.startsWith("PROBE_CONTAINER_")) && probed === 0) {
  problems.push("running containers were given, but no probe was tried");
}
if (problems.length > 0) {
  console.log(problems.join("\n"));
  process.exit(1);
}
console.log(`${checked} phasekit containers match the built image; ${probed} probes answered`);
