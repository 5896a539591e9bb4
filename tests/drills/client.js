// The drills' load: socket.io-client users that send shell commands, approve them, and log from the
// client side every step of every call as one JSON line in HISTORY (append-only, written as it
// happens, so a crash of anything else leaves the history whole):
//   {t, user, op, ev: "send"}                      before the message is sent
//   {…, ev: "ack", callId} | {…, ev: "refused", code}
//   {…, ev: "approved", callId} | {…, ev: "approval_refused", callId, code}
//   {…, ev: "result", callId, exitCode, code, attempt, output}   each tool:result received (code: its
//                                                   error's; output: its last 160 characters)
//   {…, ev: "redelivered", callId, attempt}        a tool:redelivered notice (a call whose result went
//                                                   out already ran again under a new attempt)
//   {…, ev: "no_result", callId}                    none within RESULT_WAIT_MS: the checker counts it lost
// Each command appends its op id to effects.log in the session's workspace: the side-effect record.
//
// Run as: node client.js CONFIG_JSON   (urls, users, history file, stop file, sleep per command; `command`
// replaces the default command, with {op} for the op id it must append to effects.log)
// It stops taking new calls when STOP_FILE exists, waits for the calls in flight, prints
// {"msg":"client.done"} and exits 0.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");

const cfg = JSON.parse(process.argv[2]);
const { io } = require(path.join(cfg.modules, "socket.io-client"));

function token(user) {
  const header = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url");
  const body = Buffer.from(JSON.stringify({ sub: user, exp: Math.floor(Date.now() / 1000) + 3600 })).toString("base64url");
  const input = `${header}.${body}`;
  return `${input}.${crypto.createHmac("sha256", cfg.secret).update(input).digest("base64url")}`;
}

const historyFd = fs.openSync(cfg.history, "a");
function log(entry) {
  fs.writeSync(historyFd, `${JSON.stringify({ t: Date.now(), ...entry })}\n`);
}

const stopped = () => fs.existsSync(cfg.stopFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function emitAck(socket, event, payload, timeoutMs) {
  try {
    return await socket.timeout(timeoutMs).emitWithAck(event, payload);
  } catch {
    return { ok: false, code: "CLIENT_TIMEOUT", message: `no ack for ${event} within ${timeoutMs} ms` };
  }
}

async function user(index) {
  const name = `${cfg.prefix}u${index}`;
  const url = cfg.urls[index % cfg.urls.length];  // user i on orchestrator i % 2
  const socket = io(url, {
    transports: ["websocket"],
    auth: { token: token(name) },
    forceNew: true,
    reconnection: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
  });
  const results = new Map();  // callId -> resolve
  socket.on("tool:result", (r) => {
    log({ user: name, op: r.callId && results.get(r.callId)?.op, ev: "result", callId: r.callId,
          exitCode: r.exitCode ?? null, code: r.error?.code ?? null, message: r.error?.message, attempt: r.attempt ?? 1,
          output: typeof r.output === "string" ? r.output.slice(-160) : undefined });
    const waiter = results.get(r.callId);
    if (waiter) waiter.resolve();
  });
  socket.on("tool:redelivered", (r) => {
    log({ user: name, op: r.callId && results.get(r.callId)?.op, ev: "redelivered", callId: r.callId,
          attempt: r.attempt });
  });
  await new Promise((resolve) => {
    if (socket.connected) resolve();
    socket.once("connect", resolve);
  });
  log({ user: name, ev: "connected" });
  // Every later connect: the socket came back (through the balancer, maybe to another orchestrator);
  // `recovered` says whether the server resumed its session (the pid it had) or made a new one.
  socket.on("connect", () => log({ user: name, ev: "reconnected", recovered: socket.recovered === true }));
  // A probe waits for its go: connected before a fault, calling only while it lasts.
  while (cfg.goFile && !fs.existsSync(cfg.goFile) && !stopped()) await sleep(20);
  await Promise.all(Array.from({ length: cfg.inflight ?? 1 }, (_, lane) => calls(socket, name, lane, results)));
  // Late results still count (and doubled ones must be seen): linger a moment before leaving.
  await sleep(cfg.lingerMs ?? 1000);
  socket.close();
}

/** One lane of a user's calls, one after the other (cfg.inflight lanes per user run at once). */
async function calls(socket, name, lane, results) {
  let n = 0;
  while (!stopped()) {
    const op = `${name}-${lane}-${n++}`;
    const sleepS = (cfg.commandSleepMs ?? 200) / 1000;
    // && : a call succeeds only when its effect was written (a full disk fails it). With newFile, each
    // call also writes a file of its own first (an append to effects.log may fit in a page it has).
    const command = cfg.command ? cfg.command.replaceAll("{op}", op)
      : `${cfg.newFile ? `echo ${op} > ${op}.out && ` : ""}echo ${op} >> effects.log && sleep ${sleepS}`;
    if (!socket.connected) {
      await sleep(100);
      continue;
    }
    const sent = Date.now();
    log({ user: name, op, ev: "send" });
    const ack = await emitAck(socket, "message", command, 5000);
    if (!ack.ok) {
      log({ user: name, op, ev: "refused", code: ack.code, message: ack.message, ms: Date.now() - sent });
      await sleep(100);
      continue;
    }
    const callId = ack.callId;
    log({ user: name, op, ev: "ack", callId });
    let resolve;
    const got = new Promise((r) => (resolve = r));
    results.set(callId, { op, resolve });
    const approval = await emitAck(socket, "tool:approval", { callId, approved: true }, 5000);
    if (!approval.ok) {
      log({ user: name, op, ev: "approval_refused", callId, code: approval.code, message: approval.message,
            ms: Date.now() - sent });
      // A refused approval may still have reached the queue when its ack was what got lost
      // (CLIENT_TIMEOUT): wait for a result a while, the checker decides.
      if (approval.code !== "CLIENT_TIMEOUT") {
        await sleep(100);
        continue;
      }
    } else {
      log({ user: name, op, ev: "approved", callId, ms: Date.now() - sent });
    }
    const timer = sleep(cfg.resultWaitMs ?? 60000).then(() => "timeout");
    const outcome = await Promise.race([got.then(() => "result"), timer]);
    if (outcome === "timeout") log({ user: name, op, ev: "no_result", callId });
    if (cfg.pauseMs) await sleep(cfg.pauseMs);
  }
}

(async () => {
  await Promise.all(Array.from({ length: cfg.users }, (_, i) => user(i)));
  fs.closeSync(historyFd);
  console.log(JSON.stringify({ msg: "client.done" }));
  process.exit(0);
})().catch((e) => {
  console.log(JSON.stringify({ msg: "client.failed", error: String(e && e.stack) }));
  process.exit(1);
});
