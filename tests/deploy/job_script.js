// Prints the shell script a container of a rendered Job runs (node job_script.js FILE JOB CONTAINER
// [init]): args[0] of `sh -c`, for running the load-test Jobs' logic outside a cluster.
"use strict";
const fs = require("fs");
const path = require("path");
const yaml = require(path.join(process.env.PHASEKIT_SOURCE_DIR, "tools/node/node_modules/js-yaml"));
const [file, job, container, init] = process.argv.slice(2);
const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean);
const j = docs.find((d) => d.kind === "Job" && d.metadata.name === job);
const list = init === "init" ? j.spec.template.spec.initContainers : j.spec.template.spec.containers;
const c = list.find((x) => x.name === container);
if (!c || c.command.join(" ") !== "/bin/sh -c" || c.args.length !== 1) {
  console.error(`${job}/${container}: expected command [/bin/sh, -c] and one script in args`);
  process.exit(2);
}
process.stdout.write(c.args[0]);
