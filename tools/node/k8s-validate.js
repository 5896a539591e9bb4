#!/usr/bin/env node
// Validates Kubernetes objects against the OpenAPI schemas of kubernetes-models (offline).
//   kubectl kustomize k8s/overlays/phase2 | node tools/node/k8s-validate.js -
//   node tools/node/k8s-validate.js rendered.yaml other.yaml
// Prints one line per invalid object and a last line "N passed, M failed"; exit 1 when any object is
// invalid, has an apiVersion/kind the models do not know, or a document is not an object; exit 2
// on unreadable input or YAML syntax errors. Not strict: an unknown (misspelled) field passes, as in
// the models' schemas.
"use strict";
const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");

function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9]+$/.test(kind) ||
      !/^([a-z0-9.-]+\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(apiVersion)) {
    return null;
  }
  let mod;
  try {
    mod = require(`kubernetes-models/${apiVersion}/${kind}`);
  } catch (e) {
    return null;
  }
  const cls = mod && mod[kind];
  // Only top-level resources carry their own apiVersion and kind (DeploymentSpec does not).
  if (typeof cls !== "function" || cls.apiVersion !== apiVersion || cls.kind !== kind) {
    return null;
  }
  return cls;
}

function describe(doc) {
  const name = doc && doc.metadata && doc.metadata.name ? doc.metadata.name : "(no name)";
  return `${doc && doc.kind}/${name} (${doc && doc.apiVersion})`;
}

function main(args) {
  if (args.length === 0) {
    process.stderr.write("usage: k8s-validate.js FILE.yaml|- …\n");
    return 2;
  }
  let passed = 0;
  let failed = 0;
  for (const arg of args) {
    let text;
    let docs;
    try {
      text = fs.readFileSync(arg === "-" ? 0 : arg, "utf8");
      docs = yaml.loadAll(text);
    } catch (e) {
      process.stderr.write(`${arg}: ${e.message.split("\n")[0]}\n`);
      return 2;
    }
    docs.forEach((doc, i) => {
      if (doc === null || doc === undefined) {
        return;  // an empty document between two "---"
      }
      const where = `${arg === "-" ? "stdin" : path.basename(arg)}#${i}`;
      if (typeof doc !== "object" || Array.isArray(doc)) {
        console.log(`FAIL ${where}: not an object`);
        failed++;
        return;
      }
      const cls = modelFor(doc.apiVersion, doc.kind);
      if (!cls) {
        console.log(`FAIL ${where} ${describe(doc)}: unknown apiVersion/kind`);
        failed++;
        return;
      }
      try {
        new cls(doc).validate();
        passed++;
      } catch (e) {
        const detail = e.errors ? e.errors.map((x) => `${x.instancePath || "/"} ${x.message}`).join("; ") : e.message;
        console.log(`FAIL ${where} ${describe(doc)}: ${detail}`);
        failed++;
      }
    });
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
