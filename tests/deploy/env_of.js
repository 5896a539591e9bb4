// Prints, one NAME=VALUE a line, the environment a phasekit container gets from a rendered
// manifest (node env_of.js k8s FILE: ConfigMap phasekit-config + Secret phasekit-secret) or from a
// rendered compose file (node env_of.js compose FILE SERVICE: that service's environment).
"use strict";
const fs = require("fs");
const path = require("path");
const yaml = require(path.join(process.env.PHASEKIT_SOURCE_DIR, "tools/node/node_modules/js-yaml"));
const [mode, file, service] = process.argv.slice(2);
const text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
let env = {};
if (mode === "k8s") {
  const docs = yaml.loadAll(text).filter(Boolean);
  const cm = docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === "phasekit-config");
  const secret = docs.find((d) => d.kind === "Secret" && d.metadata.name === "phasekit-secret");
  env = { ...(cm ? cm.data : {}), ...(secret ? secret.stringData || {} : {}) };
} else if (mode === "compose") {
  const doc = yaml.load(text);
  const e = doc.services[service].environment || {};
  env = Array.isArray(e) ? Object.fromEntries(e.map((l) => l.split(/=(.*)/s).slice(0, 2))) : e;
} else {
  console.error("usage: env_of.js k8s|compose FILE [SERVICE]");
  process.exit(2);
}
for (const [k, v] of Object.entries(env)) console.log(`${k}=${v === null || v === undefined ? "" : v}`);
