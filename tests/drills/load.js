// The drills' load from phasekit-load: one run per orchestrator (or one through the balancer), each of
// `users` users that connect at once, send a shell command, approve its tool call, wait for its
// tool:result, and do it again (--repeat-until, --keep-going: a refused call is counted and the user
// goes on, as the drills' users must to show that sessions continue after a fault). Each run writes
// --event-log, every packet its users send and receive; history() turns those into the checker's
// history (checker.js), call by call:
//   out `message` (its command names the op)      → {ev: "send", op}
//   its ack: ok → {ev: "ack", callId}; not ok → {ev: "refused", code}
//   out `tool:approval`, its ack                  → {ev: "approved"} | {ev: "approval_refused", code}
//   an approval whose ack never came (the user went on, or its connection ended) → approval_refused
//     with code CLIENT_TIMEOUT: the checker then accepts a result or an effect for it, or neither
//   in `tool:result`                              → {ev: "result", callId, exitCode, code, attempt, output}
//   in `connect`                                  → {ev: "connected"}, and on a reconnection
//                                                   {ev: "reconnected", recovered} (the same pid)
// Each command starts with `op=<user>-<uuid>;` and appends $op to effects.log in its session's
// workspace: the side-effect record.
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");

function token(secret, user) {
  const header = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url");
  const body = Buffer.from(JSON.stringify({ sub: user, exp: Math.floor(Date.now() / 1000) + 3600 })).toString("base64url");
  const input = `${header}.${body}`;
  return `${input}.${crypto.createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** The shell command of one call: `command` with {op} for the op, or the default effect and sleep. */
function commandTemplate({ command, newFile = false, commandSleepMs = 200 }) {
  const body = command ? command.replaceAll("{op}", "$op")
    : `${newFile ? "echo $op > $op.out && " : ""}echo $op >> effects.log && sleep ${commandSleepMs / 1000}`;
  return `op={{ user }}-{{ $uuid }}; ${body}`;
}

/** The scenario of one run, as YAML (JSON is YAML). */
function scenario({ url, users, csv, resultWaitMs = 60000, pauseMs = 0, ...cmd }) {
  // A pause first: a user whose call was refused tries again 100 ms later (or pauseMs), not at once.
  const flow = [
    { think: Math.max(100, pauseMs) / 1000 },
    { emit: { channel: "message", data: commandTemplate(cmd) },
      acknowledge: { match: { json: "$.0.ok", value: true }, capture: { json: "$.0.callId", as: "callId" } } },
    { emit: { channel: "tool:approval", data: { callId: "{{ callId }}", approved: true } },
      acknowledge: { match: { json: "$.0.ok", value: true } },
      response: { channel: "tool:result", match: { json: "$.callId", value: "{{ callId }}" } } },
  ];
  return JSON.stringify({
    config: {
      target: url,
      phases: [{ duration: 1, arrivalCount: users, name: "users" }],
      payload: { path: csv, fields: ["user", "token"], order: "sequence", cast: false },
      // reconnection: a user whose connection breaks (a balancer cut off from its orchestrator)
      // connects again and asks for its session back (Socket.IO's connection-state recovery).
      socketio: { transports: ["websocket"], auth: { token: "{{ token }}" }, reconnection: true },
      timeout: Math.ceil(resultWaitMs / 1000),
    },
    scenarios: [{ name: "drill calls", engine: "socketio", flow }],
  }, null, 2);
}

/**
 * The checker's history from event-log lines (objects), as the header says. userOf(vu) names a
 * user (the log redacts the CONNECT's token): user n of a run took row n of its CSV (order: sequence).
 */
function history(events, userOf = (vu) => `vu${vu}`) {
  const out = [];
  const vus = new Map();  // vu -> {user, acks: Map(id -> {kind, op, callId, t}), ops: Map(callId -> op)}
  const vuOf = (n) => {
    if (!vus.has(n)) vus.set(n, { user: userOf(n), acks: new Map() });
    return vus.get(n);
  };
  const opOfCall = new Map();
  const unanswered = (v, t) => {
    // Approvals still waiting for their ack when the user moved on or its connection ended.
    for (const [id, a] of v.acks) {
      if (a.kind === "approval") {
        out.push({ t, user: v.user, op: a.op, ev: "approval_refused", callId: a.callId, code: "CLIENT_TIMEOUT",
                   message: "no ack" });
      }
      v.acks.delete(id);
    }
  };
  for (const e of events) {
    const v = vuOf(e.vu);
    const data = Array.isArray(e.data) ? e.data : [];
    if (e.dir === "in" && e.type === "connect") {
      // A second CONNECT answer is a reconnection; the same pid as before says the server recovered
      // the session (socket.io-client's socket.recovered).
      const pid = e.data?.pid ?? null;
      if (v.connected) out.push({ t: e.t, user: v.user, ev: "reconnected", recovered: pid !== null && pid === v.pid });
      else out.push({ t: e.t, user: v.user, ev: "connected" });
      v.connected = true;
      v.pid = pid;
    } else if (e.dir === "out" && e.type === "event" && data[0] === "message") {
      unanswered(v, e.t);
      const op = /^op=(\S+);/.exec(String(data[1]))?.[1] ?? null;
      out.push({ t: e.t, user: v.user, op, ev: "send" });
      if (e.id !== undefined) v.acks.set(e.id, { kind: "message", op, t: e.t });
    } else if (e.dir === "out" && e.type === "event" && data[0] === "tool:approval") {
      const callId = data[1]?.callId;
      if (e.id !== undefined) v.acks.set(e.id, { kind: "approval", op: opOfCall.get(callId) ?? null, callId, t: e.t });
    } else if (e.dir === "in" && e.type === "ack" && v.acks.has(e.id)) {
      const a = v.acks.get(e.id);
      v.acks.delete(e.id);
      const r = data[0] ?? {};
      const ms = e.t - a.t;
      if (a.kind === "message") {
        if (r.ok) {
          opOfCall.set(r.callId, a.op);
          out.push({ t: e.t, user: v.user, op: a.op, ev: "ack", callId: r.callId, ms });
        } else {
          out.push({ t: e.t, user: v.user, op: a.op, ev: "refused", code: r.code ?? null, message: r.message, ms });
        }
      } else if (r.ok) {
        out.push({ t: e.t, user: v.user, op: a.op, ev: "approved", callId: a.callId, ms });
      } else {
        out.push({ t: e.t, user: v.user, op: a.op, ev: "approval_refused", callId: a.callId, code: r.code ?? null,
                   message: r.message, ms });
      }
    } else if (e.dir === "in" && e.type === "event" && data[0] === "tool:result") {
      const r = data[1] ?? {};
      out.push({ t: e.t, user: v.user, op: opOfCall.get(r.callId) ?? null, ev: "result", callId: r.callId,
                 exitCode: r.exitCode ?? null, code: r.error?.code ?? null, message: r.error?.message,
                 attempt: r.attempt ?? 1, output: typeof r.output === "string" ? r.output.slice(-160) : undefined });
    } else if (e.dir === "end") {
      unanswered(v, e.t);
    }
  }
  return out;
}

function readJsonLines(file) {
  if (!fs.existsSync(file)) return [];
  const out = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // the line being written as we read: the next read has it whole
    }
  }
  return out;
}

/**
 * Starts the runs in host `ns` (a command prefix that enters it): one per url, users spread over the
 * urls as user i on url i % urls.length. Returns {read(), stop(), exited} as client.js's starter does.
 */
function startLoad({ bin, dir, enter, secret, urls, users = 4, prefix = "d", resultWaitMs = 60000, ...rest }) {
  const runs = urls.map((url, k) => {
    const names = Array.from({ length: users }, (_, i) => i).filter((i) => i % urls.length === k).map((i) => `${prefix}u${i}`);
    const csv = path.join(dir, `users-${prefix}${k}.csv`);
    fs.writeFileSync(csv, names.map((n) => `${n},${token(secret, n)}\n`).join(""));
    const file = path.join(dir, `load-${prefix}${k}.yml`);
    fs.writeFileSync(file, scenario({ url, users: names.length, csv, resultWaitMs, ...rest }));
    const events = path.join(dir, `events-${prefix}${k}.jsonl`);
    const report = path.join(dir, `report-${prefix}${k}.json`);
    const child = spawn(enter[0], [...enter.slice(1), bin, "run", file, "--allow-remote", "--source-addresses", "none",
                                   "--repeat-until", "3600", "--keep-going", "--event-log", events, "-o", report, "-q"],
                        { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal, out })));
    return { child, exited, events, report, names, users: names.length };
  });
  return {
    runs,
    exited: Promise.all(runs.map((r) => r.exited)),
    // Each run numbers its users from 0: qualified by the run.
    read: () => history(runs.flatMap((r, k) => readJsonLines(r.events).map((e) => ({ ...e, vu: `${k}:${e.vu}` })))
      .sort((a, b) => a.t - b.t), (vu) => {
      const [k, n] = vu.split(":").map(Number);
      return runs[k].names[n % runs[k].names.length];
    }),
    /** The first signal: users end the call they are in and leave; then the report is written. */
    stop: async () => {
      for (const r of runs) r.child.kill("SIGINT");
      const done = await Promise.race([Promise.all(runs.map((r) => r.exited)),
                                       new Promise((res) => setTimeout(() => res(null), resultWaitMs + 20000))]);
      if (done === null) {
        for (const r of runs) r.child.kill("SIGKILL");
        throw new Error("phasekit-load did not stop");
      }
      for (const r of done) {
        if (r.code !== 0) throw new Error(`phasekit-load exited with ${r.code ?? r.signal}: ${r.out.slice(-2000)}`);
      }
      return done;
    },
  };
}

module.exports = { startLoad, history, scenario, commandTemplate, token };
