// drills.checker: the checker catches each anomaly it claims to, from crafted histories, and passes
// a clean one (a checker that never fails would pass every drill).
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const { check, table } = require("./checker.js");

function call(op, callId, { approved = true, results = [{ exitCode: 0 }] } = {}) {
  const h = [{ ev: "send", op }, { ev: "ack", op, callId }];
  if (approved) h.push({ ev: "approved", op, callId });
  else h.push({ ev: "approval_refused", op, callId, code: "UNAVAILABLE" });
  for (const r of results) h.push({ ev: "result", op, callId, exitCode: r.exitCode ?? null, code: r.code ?? null,
                                    attempt: r.attempt ?? 1 });
  return h;
}

const only = (res, kind) => {
  assert.strictEqual(res.counts[kind], 1, `${kind} not caught:\n${table(res)}`);
  assert.strictEqual(res.anomalies.length, 1, `other anomalies too:\n${table(res)}`);
};

test("a clean history has no anomalies", () => {
  const h = [...call("a", "c1"), ...call("b", "c2", { results: [{ code: "UNAVAILABLE" }] }),
             ...call("c", "c3", { approved: false, results: [] })];
  const res = check(h, ["a"]);
  assert.deepStrictEqual(res.anomalies, [], table(res));
  assert.strictEqual(res.approvedCalls, 2);
});

test("an approved call without a result is lost", () => {
  only(check(call("a", "c1", { results: [] }), []), "lost");
});

test("two results for one call are a doubled result", () => {
  only(check(call("a", "c1", { results: [{ exitCode: 0 }, { exitCode: 0 }] }), ["a"]), "doubled_result");
});

test("a success whose effect is missing is an acknowledged loss", () => {
  only(check(call("a", "c1"), []), "effect_lost");
});

test("an effect run twice on the first attempt is a doubled effect", () => {
  only(check(call("a", "c1"), ["a", "a"]), "doubled_effect");
});

test("an effect run twice for a call redelivered once is counted, not an anomaly", () => {
  const res = check(call("a", "c1", { results: [{ exitCode: 0, attempt: 2 }] }), ["a", "a"]);
  assert.deepStrictEqual(res.anomalies, [], table(res));
  assert.strictEqual(res.redeliveries, 1);
});

test("an effect run twice, said by a tool:redelivered after the result, is counted, not an anomaly", () => {
  const h = [...call("a", "c1"), { ev: "redelivered", op: "a", callId: "c1", attempt: 2 }];
  const res = check(h, ["a", "a"]);
  assert.deepStrictEqual(res.anomalies, [], table(res));
  assert.strictEqual(res.redeliveries, 1);
  only(check(h, ["a", "a", "a"]), "doubled_effect");
});

test("three effects for two attempts are still a doubled effect", () => {
  only(check(call("a", "c1", { results: [{ exitCode: 0, attempt: 2 }] }), ["a", "a", "a"]), "doubled_effect");
});

test("an effect of a refused approval ran without approval", () => {
  only(check(call("a", "c1", { approved: false, results: [] }), ["a"]), "effect_unapproved");
});

test("an effect of no call sent is a phantom", () => {
  only(check(call("a", "c1"), ["a", "zz"]), "phantom_effect");
});

test("a result with neither exit code nor error is unclear", () => {
  only(check(call("a", "c1", { results: [{}] }), ["a"]), "unclear_error");
});

test("the program exits non-zero on an anomaly", () => {
  const fs = require("node:fs");
  const os = require("node:os");
  const path = require("node:path");
  const { spawnSync } = require("node:child_process");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "drills-checker-"));
  try {
    fs.writeFileSync(path.join(dir, "h.jsonl"), call("a", "c1", { results: [{ exitCode: 0 }, { exitCode: 0 }] })
      .map((e) => JSON.stringify(e)).join("\n"));
    fs.mkdirSync(path.join(dir, "sessions", "s1"), { recursive: true });
    fs.writeFileSync(path.join(dir, "sessions", "s1", "effects.log"), "a\n");
    const bad = spawnSync(process.execPath, [path.join(__dirname, "checker.js"), path.join(dir, "h.jsonl"), dir]);
    assert.strictEqual(bad.status, 1, bad.stdout.toString());
    assert.match(bad.stdout.toString(), /doubled_result\s+\|\s+1/);
    fs.writeFileSync(path.join(dir, "h.jsonl"), call("a", "c1").map((e) => JSON.stringify(e)).join("\n"));
    const good = spawnSync(process.execPath, [path.join(__dirname, "checker.js"), path.join(dir, "h.jsonl"), dir]);
    assert.strictEqual(good.status, 0, good.stdout.toString());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
