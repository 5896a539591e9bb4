// Helpers for the conformance tests: start phasekit-conformance-server on a free loopback port and
// speak raw Engine.IO to it over HTTP long-polling and WebSocket.
"use strict";
const path = require("node:path");
const { spawnListening, stopProcess, httpRequest } = require("../support/node/server_process.js");

const modules = process.env.PHASEKIT_NODE_MODULES;
const WebSocket = require(path.join(modules, "ws"));

const SETTINGS = { PING_INTERVAL_MS: 300, PING_TIMEOUT_MS: 200, MAX_PAYLOAD_BYTES: 1000000, CONNECT_TIMEOUT_MS: 1000,
                   UPGRADE_TIMEOUT_MS: 600 };

/** Starts the server; resolves {port, url, wsUrl, child, stop()} once it printed server.listening. */
async function startServer(extraEnv = {}) {
  const env = { PATH: process.env.PATH, PORT: "0", ...Object.fromEntries(Object.entries(SETTINGS).map(([k, v]) => [k, String(v)])), ...extraEnv };
  const { child, entry, exited } = await spawnListening(process.env.CONFORMANCE_BIN, env);
  return {
    port: entry.port,
    url: `http://127.0.0.1:${entry.port}`,
    wsUrl: `ws://127.0.0.1:${entry.port}`,
    child,
    stop: () => stopProcess(child, exited),
  };
}

/** One HTTP request; resolves {status, headers, body} (body as text). */
function request(server, method, pathAndQuery, body) {
  return httpRequest({ port: server.port, method, path: pathAndQuery, body });
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
