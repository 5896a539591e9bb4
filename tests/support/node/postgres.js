// A real PostgreSQL 15 for the node tests, as tests/support/postgres_server.cpp makes one for the C++
// ones: initdb in a temporary folder, the server on a free loopback port, waited for with a deadline
// (pg_isready), stopped by its PID. As root both run as the `postgres` user (PostgreSQL refuses root).
"use strict";
const { execFileSync, execFile, spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const BIN = "/usr/lib/postgresql/15/bin";

function available() {
  return fs.existsSync(path.join(BIN, "initdb")) && fs.existsSync(path.join(BIN, "postgres"));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

// Asked on the server's own unix socket, in its own folder: an answer comes from our server and no
// other (a port picked free can be taken by another test's server before ours binds it). PostgreSQL
// binds its one TCP address before it accepts anything, or exits, so an answer means it holds the port.
function ready(dir, port) {
  return new Promise((resolve) => {
    execFile(path.join(BIN, "pg_isready"), ["-h", dir, "-p", String(port), "-t", "1"], (error) => resolve(!error));
  });
}

/** Resolves {url(database), port, log(), halt(), resume(), stop()} once the server accepts connections. */
async function startPostgres() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "phasekit-pg-"));
  const as = {};
  if (process.getuid() === 0) {
    as.uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    as.gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    fs.chownSync(dir, as.uid, as.gid);
  }
  const env = { PATH: "/usr/bin:/bin", LC_ALL: "C" };
  execFileSync(path.join(BIN, "initdb"), ["-D", path.join(dir, "data"), "-U", "phasekit", "--auth=trust", "-E", "UTF8",
                                          "--no-sync", "--no-instructions"], { ...as, env, stdio: "ignore" });
  let port;
  let log = "";
  let child;
  let exited;
  /** Starts the server on the folder and port it keeps; resolves once it accepts connections. */
  async function launch() {
    child = spawn(path.join(BIN, "postgres"), ["-D", path.join(dir, "data"), "-k", dir, "-p", String(port),
                                               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                  { ...as, env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (d) => (log += d));
    child.stderr.on("data", (d) => (log += d));
    const self = child;
    exited = new Promise((resolve) => self.on("exit", (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 20000;
    while (!(await ready(dir, port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        const exitedByItself = child.exitCode !== null;
        child.kill("SIGKILL");
        await exited;
        throw Object.assign(new Error(`postgres did not start: ${log}`), { exitedByItself });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  /** Stops the server by its PID (a fast shutdown: its sessions are cut), keeping its data. */
  async function halt() {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
    await exited;
  }
  // A port picked free can be taken before the server binds it, and the server then exits at once: a
  // few tries, each on a new port. One that did not answer in time is not tried again.
  for (let attempt = 1; ; ++attempt) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (e) {
      if (attempt === 5 || !e.exitedByItself) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw e;
      }
      log = "";
    }
  }
  return {
    port,
    url: (database = "postgres") => `postgres://phasekit@127.0.0.1:${port}/${database}`,
    log: () => log,
    halt,
    /** Starts it again on the same port and data after halt(). */
    resume: launch,
    async stop() {
      await halt();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { available, startPostgres };
