// What the node tests share to run a server of ours: start it, wait for the one line that says it
// listens, stop it by its PID; and one plain HTTP request with a deadline.
"use strict";
const { spawn } = require("node:child_process");
const http = require("node:http");
const readline = require("node:readline");

/**
 * Spawns `bin` with exactly `env` and resolves {child, entry, logs, exited, stderr()} once it writes the
 * JSON line {"msg":"server.listening", …} (`entry`; another msg with readyMsg, e.g. "worker.started")
 * on stdout; rejects if it exits first, and kills it and rejects if it takes longer than timeoutMs.
 * `logs` keeps every stdout line (parsed, or {unparsable: line}). `args` are its arguments: a wrapper
 * such as `ip netns exec NS` can be `bin`, with the real binary first in `args`.
 */
function spawnListening(bin, env, spawnOptions = {}, timeoutMs = 20000, readyMsg = "server.listening", args = []) {
  const child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"], ...spawnOptions });
  const logs = [];
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");  // never left running behind a test that gave up on it
      reject(new Error(`${bin} did not start within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited with ${code}: ${stderr}`));
    });
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        logs.push({ unparsable: line });
        return;
      }
      logs.push(entry);
      if (entry.msg === readyMsg) {
        clearTimeout(timer);
        resolve({ child, entry, logs, exited, stderr: () => stderr });
      }
    });
  });
}

/** SIGTERM unless it has exited already; resolves {code, signal}. */
async function stopProcess(child, exited) {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  return exited;
}

/** One HTTP request on a connection of its own; resolves {status, headers, body} (body as text). */
function httpRequest({ host = "127.0.0.1", port, method = "GET", path, headers = {}, body, agent = false, localAddress,
                       timeoutMs = 10000 }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path, headers, agent, localAddress }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on("error", reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error("request timeout")));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/// Polls pred (sync or async) until it returns something truthy, which it returns; throws after ms.
async function waitFor(pred, ms, what, everyMs = 50) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

module.exports = { spawnListening, stopProcess, httpRequest, waitFor };
