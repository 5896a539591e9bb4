// drills.load: what phasekit-load's event log says becomes the checker's history call by call (a
// wrong reading would hide anomalies or invent them), and the scenario it runs is one phasekit-load
// accepts (drills.load_scenario validates it with the real binary).
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const { history, token } = require("./load.js");
const { check, table } = require("./checker.js");

const secret = "s".repeat(32);
let t = 1000;
const at = () => (t += 10);
// As phasekit-load logs them: the token redacted; user n of a run took row n of its CSV.
const connect = (vu) => [{ t: at(), vu, dir: "out", type: "connect", ns: "/", data: { token: "<redacted>" } },
                         { t: at(), vu, dir: "in", type: "connect", ns: "/", data: { sid: "x" } }];
const userOf = (vu) => ["du0", "du1"][vu];
const message = (vu, id, op) => ({ t: at(), vu, dir: "out", type: "event", ns: "/", id,
                                   data: ["message", `op=${op}; echo $op >> effects.log`] });
const ack = (vu, id, body) => ({ t: at(), vu, dir: "in", type: "ack", ns: "/", id, data: [body] });
const approval = (vu, id, callId) => ({ t: at(), vu, dir: "out", type: "event", ns: "/", id,
                                        data: ["tool:approval", { callId, approved: true }] });
const result = (vu, callId, r) => ({ t: at(), vu, dir: "in", type: "event", ns: "/",
                                     data: ["tool:result", { callId, ...r }, "offset"] });

test("each step of a call is read from the packets, per user", () => {
  const events = [
    ...connect(0), ...connect(1),
    message(0, 0, "du0-a"), message(1, 0, "du1-a"),   // both users' first acks have id 0
    ack(1, 0, { ok: false, code: "UNAVAILABLE", message: "redis" }),
    ack(0, 0, { ok: true, callId: "c1" }),
    approval(0, 1, "c1"), ack(0, 1, { ok: true, callId: "c1" }),
    result(0, "c1", { exitCode: 0, attempt: 2, output: "fine\n" }),
  ];
  const h = history(events, userOf);
  const of = (ev) => h.filter((e) => e.ev === ev);
  assert.deepStrictEqual(of("connected").map((e) => e.user), ["du0", "du1"]);
  assert.deepStrictEqual(of("send").map((e) => [e.user, e.op]), [["du0", "du0-a"], ["du1", "du1-a"]]);
  assert.deepStrictEqual(of("refused").map((e) => [e.user, e.op, e.code]), [["du1", "du1-a", "UNAVAILABLE"]]);
  assert.deepStrictEqual(of("ack").map((e) => [e.op, e.callId]), [["du0-a", "c1"]]);
  assert.deepStrictEqual(of("approved").map((e) => [e.op, e.callId]), [["du0-a", "c1"]]);
  assert.deepStrictEqual(of("result").map((e) => [e.op, e.exitCode, e.attempt, e.output]), [["du0-a", 0, 2, "fine\n"]]);
  const res = check(h, ["du0-a", "du0-a"]);  // redelivered: two effects on attempt 2
  assert.deepStrictEqual(res.anomalies, [], table(res));
});

test("an approval whose ack never came may have run: a later result is no anomaly, none is", () => {
  const base = [...connect(0), message(0, 0, "du0-a"), ack(0, 0, { ok: true, callId: "c1" }), approval(0, 1, "c1")];
  // The user went on (its next message) without the ack; the result came later.
  const late = history([...base, message(0, 2, "du0-b"), result(0, "c1", { exitCode: 0 })], userOf);
  assert.strictEqual(late.filter((e) => e.ev === "approval_refused" && e.code === "CLIENT_TIMEOUT").length, 1);
  assert.deepStrictEqual(check(late, ["du0-a"]).anomalies, []);
  // Its connection ended instead: unknown, and its effect without a result is a loss the checker names.
  const ended = history([...base, { t: at(), vu: 0, dir: "end", code: "server_closed", detail: "" }], userOf);
  assert.strictEqual(ended.filter((e) => e.ev === "approval_refused" && e.code === "CLIENT_TIMEOUT").length, 1);
  assert.strictEqual(check(ended, ["du0-a"]).counts.lost, 1);
});

test("an approved call whose result never came is lost, and a result given twice is doubled", () => {
  const base = [...connect(0), message(0, 0, "du0-a"), ack(0, 0, { ok: true, callId: "c1" }), approval(0, 1, "c1"),
                ack(0, 1, { ok: true, callId: "c1" })];
  assert.strictEqual(check(history(base), []).counts.lost, 1);
  const twice = history([...base, result(0, "c1", { exitCode: 0 }), result(0, "c1", { exitCode: 0 })]);
  assert.strictEqual(check(twice, ["du0-a"]).counts.doubled_result, 1);
});

test("a second CONNECT answer is a reconnection, recovered only with the pid it had", () => {
  const answer = (vu, pid) => ({ t: at(), vu, dir: "in", type: "connect", ns: "/", data: { sid: "s", pid } });
  const h = history([...connect(0).slice(0, 1), answer(0, "p1"), { t: at(), vu: 0, dir: "end", code: "transport_error" },
                     answer(0, "p1"), answer(0, "p2")]);
  assert.deepStrictEqual(h.map((e) => [e.ev, e.recovered]), [["connected", undefined], ["reconnected", true],
                                                             ["reconnected", false]]);
});

test("phasekit-load accepts the drills' scenario", { skip: !process.env.PHASEKIT_LOAD_BIN && "PHASEKIT_LOAD_BIN unset" }, () => {
  const fs = require("node:fs");
  const os = require("node:os");
  const path = require("node:path");
  const { execFileSync } = require("node:child_process");
  const { scenario } = require("./load.js");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "phasekit-drill-scenario-"));
  try {
    const csv = path.join(dir, "users.csv");
    fs.writeFileSync(csv, `du0,${token(secret, "du0")}\n`);
    for (const opts of [{}, { newFile: true, pauseMs: 300 }, { command: "rm -f fill; echo {op} >> effects.log" }]) {
      const file = path.join(dir, "s.yml");
      fs.writeFileSync(file, scenario({ url: "http://10.77.0.2:8080", users: 1, csv, ...opts }));
      const out = execFileSync(process.env.PHASEKIT_LOAD_BIN, ["validate", file]).toString();
      assert.match(out, /ok|valid/i, out);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
