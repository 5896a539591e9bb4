// Helpers for the conformance tests: start phasekit-conformance-server on a free loopback port and
// speak raw Engine.IO to it over HTTP long-polling and WebSocket.
"use strict";
const { spawn } = require("node:child_process");
const http = require("node:http");
const path = require("node:path");
const readline = require("node:readline");

const modules = process.env.PHASEKIT_NODE_MODULES;
const WebSocket = require(path.join(modules, "ws"));

const SETTINGS = { PING_INTERVAL_MS: 300, PING_TIMEOUT_MS: 200, MAX_PAYLOAD_BYTES: 1000000, CONNECT_TIMEOUT_MS: 1000,
                   UPGRADE_TIMEOUT_MS: 600 };

/** Starts the server; resolves {port, url, wsUrl, stop()} once it printed server.listening. */
function startServer(extraEnv = {}) {
  const env = { PATH: process.env.PATH, PORT: "0", ...Object.fromEntries(Object.entries(SETTINGS).map(([k, v]) => [k, String(v)])), ...extraEnv };
  const child = spawn(process.env.CONFORMANCE_BIN, [], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 20000);
    child.on("exit", (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.msg !== "server.listening") return;
      clearTimeout(timer);
      const exited = new Promise((r) => child.on("exit", (code, signal) => r({ code, signal })));
      resolve({
        port: entry.port,
        url: `http://127.0.0.1:${entry.port}`,
        wsUrl: `ws://127.0.0.1:${entry.port}`,
        child,
        async stop() {
          if (child.exitCode === null) child.kill("SIGTERM");
          return exited;
        },
      });
    });
  });
}

/** One HTTP request; resolves {status, headers, body} (body as text). */
function request(server, method, pathAndQuery, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: server.port, method, path: pathAndQuery, agent: false }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on("error", reject);
    req.setTimeout(10000, () => req.destroy(new Error("request timeout")));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A raw WebSocket whose messages can be awaited one by one, and whose close can be awaited. */
function openWebSocket(url) {
  const ws = new WebSocket(url);
  const queue = [];
  const waiters = [];
  ws.on("message", (data, isBinary) => {
    const message = isBinary ? Buffer.from(data) : String(data);
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  const closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: String(reason) })));
  const opened = new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  ws.on("error", () => {});
  return {
    ws,
    opened,
    closed,
    send: (data) => ws.send(data),
    next(ms = 5000) {
      if (queue.length > 0) return Promise.resolve(queue.shift());
      return withTimeout(new Promise((resolve) => waiters.push(resolve)), ms, "websocket message");
    },
    waitClosed(ms = 5000) {
      return withTimeout(closed, ms, "websocket close");
    },
  };
}

module.exports = { startServer, request, openWebSocket, withTimeout, WebSocket, SETTINGS, modules };
