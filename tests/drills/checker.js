// The drills' checker, in the spirit of Jepsen's: from the client-side history (client.js) and the
// side-effect record (each command's op id appended to effects.log in its session's workspace) it
// proves, call by call:
//   * every approved call got exactly one tool:result, or a clear error   (lost, doubled_result,
//                                                                          unclear_error)
//   * nothing acknowledged was lost: a call that succeeded left its effect (effect_lost)
//   * a side effect ran twice only where the call was redelivered: at most `attempt` effects (the
//     highest its tool:result or a tool:redelivered notice said), and the extra ones are counted as
//     redeliveries, not anomalies                                      (doubled_effect)
//   * nothing ran that was never approved                              (effect_unapproved, phantom_effect)
// check(history, effects) -> {anomalies: [{kind, op, callId, detail}], counts}; table() prints them.
// As a program: node checker.js HISTORY_JSONL EFFECTS_ROOT  (exit 1 on any anomaly).
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const KINDS = ["lost", "doubled_result", "unclear_error", "effect_lost", "doubled_effect", "effect_unapproved",
               "phantom_effect"];

/** history: the client's entries; effects: op ids as appended (repeats are repeats). */
function check(history, effects) {
  const ops = new Map();
  const byCall = new Map();
  const opOf = (op) => {
    if (!ops.has(op)) ops.set(op, { op, sent: false, callId: null, approved: false, approvalUnknown: false, results: [],
                                    noResult: false });
    return ops.get(op);
  };
  for (const e of history) {
    if (e.ev === "send") opOf(e.op).sent = true;
    if (e.ev === "ack") {
      opOf(e.op).callId = e.callId;
      byCall.set(e.callId, opOf(e.op));
    }
    if (e.ev === "approved") opOf(e.op).approved = true;
    if (e.ev === "approval_refused" && e.code === "CLIENT_TIMEOUT") opOf(e.op).approvalUnknown = true;
    if (e.ev === "no_result") opOf(e.op).noResult = true;
  }
  const noticed = new Map();  // callId -> the highest attempt a tool:redelivered said
  for (const e of history) {
    if (e.ev === "redelivered") noticed.set(e.callId, Math.max(noticed.get(e.callId) || 1, Number(e.attempt) || 1));
  }
  const anomalies = [];
  for (const e of history) {
    if (e.ev !== "result") continue;
    const o = byCall.get(e.callId);
    if (!o) {
      anomalies.push({ kind: "doubled_result", op: e.op ?? null, callId: e.callId, detail: "a result for no call of this client" });
      continue;
    }
    o.results.push(e);
  }
  const effectCount = new Map();
  for (const op of effects) effectCount.set(op, (effectCount.get(op) || 0) + 1);
  let redeliveries = 0;  // effects beyond the first of redelivered calls
  let redeliveredResults = 0;  // results that say attempt > 1
  let approvedCalls = 0;
  let okResults = 0;
  let errorResults = 0;
  const codes = {};
  for (const o of ops.values()) {
    const n = effectCount.get(o.op) || 0;
    const add = (kind, detail) => anomalies.push({ kind, op: o.op, callId: o.callId, detail });
    if (!o.approved && !o.approvalUnknown) {
      if (n > 0) add("effect_unapproved", `${n} effect(s) of a call never approved`);
      if (o.results.length > 0 && !o.callId) add("doubled_result", "a result for a refused message");
      continue;
    }
    if (o.approved) approvedCalls += 1;
    if (o.results.length === 0) {
      if (o.approved) add("lost", o.noResult ? "approved, no tool:result within the wait" : "approved, no tool:result");
      else if (n > 0) add("lost", "its approval's ack was lost, it ran, and no result came");
      continue;
    }
    if (o.results.length > 1) add("doubled_result", `${o.results.length} tool:results`);
    const r = o.results[0];
    const attempt = Math.max(noticed.get(o.callId) || 1, ...o.results.map((x) => Number(x.attempt) || 1));
    if (r.code) {
      codes[r.code] = (codes[r.code] || 0) + 1;
      errorResults += 1;
    } else if (r.exitCode === 0) {
      okResults += 1;
      if (n === 0) add("effect_lost", "succeeded, but its effect is not in the session's files");
    } else if (r.exitCode === null || r.exitCode === undefined) {
      add("unclear_error", "a result with neither an exit code nor an error code");
    } else {
      errorResults += 1;
    }
    if (attempt > 1) redeliveredResults += 1;
    if (n > attempt) add("doubled_effect", `${n} effects for ${attempt} attempt(s)`);
    else if (n > 1) redeliveries += n - 1;
  }
  for (const op of effectCount.keys()) {
    if (!ops.has(op)) anomalies.push({ kind: "phantom_effect", op, callId: null, detail: "an effect of no call sent" });
  }
  const counts = Object.fromEntries(KINDS.map((k) => [k, anomalies.filter((a) => a.kind === k).length]));
  return { anomalies, counts, approvedCalls, okResults, errorResults, codes, redeliveries, redeliveredResults,
           calls: ops.size };
}

function table(result) {
  const lines = [];
  lines.push(`calls sent ${result.calls}, approved ${result.approvedCalls}, ok ${result.okResults}, ` +
             `errors ${result.errorResults} ${JSON.stringify(result.codes)}, redelivered ${result.redeliveredResults} ` +
             `(effects run twice: ${result.redeliveries})`);
  lines.push("anomaly            | count | first examples");
  lines.push("-------------------+-------+---------------");
  for (const k of KINDS) {
    const ex = result.anomalies.filter((a) => a.kind === k).slice(0, 3).map((a) => `${a.op} (${a.detail})`).join("; ");
    lines.push(`${k.padEnd(19)}| ${String(result.counts[k]).padStart(5)} | ${ex}`);
  }
  return lines.join("\n");
}

function readHistory(file) {
  return fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** Every effects.log under root (the sessions' parked folders), line by line. */
function readEffects(root) {
  const out = [];
  const walk = (dir) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === "effects.log") out.push(...fs.readFileSync(p, "utf8").split("\n").filter(Boolean));
    }
  };
  walk(root);
  return out;
}

module.exports = { check, table, readHistory, readEffects, KINDS };

if (require.main === module) {
  const result = check(readHistory(process.argv[2]), readEffects(process.argv[3]));
  console.log(table(result));
  process.exit(result.anomalies.length > 0 ? 1 : 0);
}
