// Helpers for the interop tests: start phasekit-orchestrator for real on a free loopback port, mint
// tokens with Node's own crypto (an independent HS256 implementation), connect official clients.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawnListening, stopProcess, httpRequest } = require("../support/node/server_process.js");

const modules = process.env.PHASEKIT_NODE_MODULES;
const { io } = require(path.join(modules, "socket.io-client"));
const WebSocket = require(path.join(modules, "ws"));

const SECRET = "interop-secret-0123456789abcdef0123456789";

function token(user, ttlSeconds = 3600) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: user, exp: Math.floor(Date.now() / 1000) + ttlSeconds })}`;
  return `${input}.${crypto.createHmac("sha256", SECRET).update(input).digest("base64url")}`;
}

/**
 * The orchestrator as another user can run it: the build tree may sit below a folder only its owner
 * may enter (a clone in `mktemp -d`, mode 0700), so the binaries that run (the orchestrator, the
 * sandbox beside it, the plugins in ../lib/phasekit) are linked, or copied across file systems, into
 * a folder of the test's own that every user may enter. Made once per test process.
 */
let staged = null;
function orchestratorForOtherUsers() {
  if (staged) return staged;
  const bin = process.env.ORCHESTRATOR_BIN;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "phasekit-bin-"));
  const place = (from, to) => {
    try {
      fs.linkSync(from, to);
    } catch {
      fs.copyFileSync(from, to);
      fs.chmodSync(to, fs.statSync(from).mode);
    }
  };
  fs.mkdirSync(path.join(dir, "bin"));
  fs.mkdirSync(path.join(dir, "lib/phasekit"), { recursive: true });
  for (const name of [path.basename(bin), "phasekit-sandbox"]) {
    place(path.join(path.dirname(bin), name), path.join(dir, "bin", name));
  }
  const plugins = path.join(path.dirname(bin), "../lib/phasekit");
  for (const name of fs.readdirSync(plugins)) place(path.join(plugins, name), path.join(dir, "lib/phasekit", name));
  for (const d of [dir, path.join(dir, "bin"), path.join(dir, "lib"), path.join(dir, "lib/phasekit")]) fs.chmodSync(d, 0o755);
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  staged = path.join(dir, "bin", path.basename(bin));
  return staged;
}

/**
 * Starts the orchestrator; resolves {port, adminPort, child, logs, stop()} once it logged server.listening
 * (PORT and ADMIN_PORT are free ports unless extraEnv says otherwise).
 * spawnOptions go to child_process.spawn (uid and gid, to run it as another user).
 */
/** launcher: a command that runs the orchestrator (its path appended), e.g. ["prlimit", "--nofile=256:", "--"]. */
async function startServer(extraEnv = {}, spawnOptions = {}, { launcher = [] } = {}) {
  const workspaces = fs.mkdtempSync(path.join(os.tmpdir(), "phasekit-interop-"));
  fs.chmodSync(workspaces, 0o711);  // backends run as nobody when the tests run as root
  const env = {
    PATH: process.env.PATH,
    PORT: "0",
    ADMIN_PORT: "0",
    AUTH_MODE: "token",
    AUTH_SECRET: SECRET,
    WORKSPACE_ROOT: workspaces,
    LOG_LEVEL: "info",
    SESSION_GRACE_MS: "0",
    ...extraEnv,
  };
  const bin = spawnOptions.uid !== undefined ? orchestratorForOtherUsers() : process.env.ORCHESTRATOR_BIN;
  const { child, entry, logs, exited } = launcher.length > 0
    ? await spawnListening(launcher[0], env, spawnOptions, 20000, "server.listening", [...launcher.slice(1), bin])
    : await spawnListening(bin, env, spawnOptions);
  return {
    port: entry.port,
    url: `http://127.0.0.1:${entry.port}`,
    adminPort: entry.admin_port,
    child,
    logs,
    exited,
    async stop() {
      const result = await stopProcess(child, exited);
      fs.rmSync(workspaces, { recursive: true, force: true });
      return result;
    },
  };
}

/** An HTTP request to the public listener, or the admin one with admin: true; resolves {status, headers, body}. */
function request(server, { admin = false, ...options }) {
  return httpRequest({ port: admin ? server.adminPort : server.port, ...options });
}

function connect(server, user, options = {}) {
  const socket = io(server.url, {
    transports: ["websocket"],
    reconnection: false,
    auth: user === undefined ? undefined : { token: token(user) },
    forceNew: true,
    ...options,
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("connect timeout")), 10000);
    socket.on("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.on("connect_error", (e) => {
      clearTimeout(timer);
      socket.close();
      reject(e);
    });
  });
}

/// A tool command that waits in its workspace for the file `name`, which the test makes when it is
/// ready for the call to end (seconds at most), then runs `then`: a call held in flight for as long as
/// the test needs, where a `sleep` could end before the test looked.
function whenFileThen(name, then, seconds) {
  return `i=0; while [ ! -e ${name} ] && [ $i -lt ${seconds * 20} ]; do sleep 0.05; i=$((i + 1)); done; ` +
    `[ -e ${name} ] && ${then}`;
}

/** message → tool:request → approval → tool:result; resolves the result. */
async function runTool(socket, message, timeoutMs = 15000) {
  const ack = await socket.timeout(timeoutMs).emitWithAck("message", message);
  if (!ack.ok) throw new Error(`message refused: ${JSON.stringify(ack)}`);
  const result = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no tool:result for ${ack.callId}`)), timeoutMs);
    const onResult = (r) => {
      if (r.callId !== ack.callId) return;
      clearTimeout(timer);
      socket.off("tool:result", onResult);
      resolve(r);
    };
    socket.on("tool:result", onResult);
  });
  const approval = await socket.timeout(timeoutMs).emitWithAck("tool:approval", { callId: ack.callId, approved: true });
  if (!approval.ok) throw new Error(`approval refused: ${JSON.stringify(approval)}`);
  return result;
}

function once(emitter, event, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/**
 * Starts tests/harness/delay_server.js (a node socket.io server that answers after delayMs); resolves
 * {port, url, stop()} once it logged server.listening.
 */
async function startDelayServer(delayMs) {
  const script = path.join(__dirname, "../harness/delay_server.js");
  const { child, entry, exited } = await spawnListening(process.execPath, { ...process.env }, {}, 10000,
                                                        "server.listening", [script, String(delayMs)]);
  return { port: entry.port, url: `http://127.0.0.1:${entry.port}`, stop: () => stopProcess(child, exited) };
}

module.exports = { io, startDelayServer, WebSocket, token, startServer, request, connect, runTool, whenFileThen, once,
                   SECRET };
