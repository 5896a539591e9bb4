// phasekit-load's Artillery features end to end, against a Node.js socket.io v4 server that records
// what it receives (tests/harness/record_server.js): CSV payload rows per user (in sequence and at
// random), extraHeaders and query on every handshake request (polling and WebSocket), templated auth
// in the CONNECT, before/after flows run once each, loop over a list, ifTrue. Then the shipped
// staging example against phasekit-orchestrator, with tokens from its CSV checked by the server.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { startServer, token } = require("./support.js");
const { spawnListening, stopProcess, httpRequest } = require("../support/node/server_process.js");

const LOAD = process.env.HARNESS_BIN;
const SOURCE = process.env.PHASEKIT_SOURCE_DIR;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "phasekit-load-features-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Starts record_server.js; resolves {url, seen(), stop()} once it logged server.listening (10 s at most). */
async function startRecordServer() {
  const { child, entry, exited } = await spawnListening(process.execPath, { ...process.env }, {}, 10000,
                                                        "server.listening",
                                                        [path.join(SOURCE, "tests/harness/record_server.js")]);
  return {
    url: `http://127.0.0.1:${entry.port}`,
    seen: async () => JSON.parse((await httpRequest({ port: entry.port, path: "/seen" })).body),
    stop: () => stopProcess(child, exited),
  };
}

/** Writes a scenario and its CSV files into a directory of their own; returns the scenario's path. */
function writeScenario(name, text, files = {}) {
  const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
  for (const [file, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), content);
  const file = path.join(dir, `${name}.yml`);
  fs.writeFileSync(file, text);
  return file;
}

let runs = 0;

/** Runs phasekit-load; returns its exit code, output and the JSON report (written under tmp). */
function load(file, target, extra = []) {
  const out = path.join(tmp, `${path.basename(file)}-${++runs}.json`);
  const r = spawnSync(LOAD, ["run", file, "--target", target, "--quiet", "-o", out, ...extra],
                      { encoding: "utf8", timeout: 120000 });
  const report = fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, "utf8")) : null;
  return { code: r.status, out: r.stdout + r.stderr, report };
}

// The users: a quoted token with the delimiter, one with doubled quotes, one with what a query
// string must encode.
const USERS = [
  { name: "user1", token: "tok 1&a=b", role: "admin" },
  { name: "user2", token: "t,2", role: "user" },
  { name: "user3", token: 'say "hi"', role: "user" },
  { name: "user4", token: "t4", role: "admin" },
  { name: "user5", token: "t5+/?", role: "user" },
];
const USERS_CSV = "name,token,role\n" +
  USERS.map((u) => `${u.name},"${u.token.replace(/"/g, '""')}",${u.role}`).join("\r\n") + "\n";
const tokenOf = Object.fromEntries(USERS.map((u) => [u.name, u.token]));

const head = (phase, payloadOrder, socketio) => `
config:
  target: "http://127.0.0.1:1"
  phases: [${phase}]
  payload:
    path: "users.csv"
    fields: [name, token, role]
    skipHeader: true
    order: ${payloadOrder}
  socketio:
${socketio}
  ensure: { maxErrorRate: 0 }
`;

describe("phasekit-load's Artillery features against a recording socket.io server", () => {
  let server;
  before(async () => {
    server = await startRecordServer();
  });
  after(async () => {
    await server.stop();
  });

  // Each user says who it is in its CONNECT auth; the server sees them in the order they came.
  const whoConnected = async (from) =>
    (await server.seen()).connections.slice(from).map((c) => c.auth);

  it("gives user i row i with order: sequence, wrapping, each field as it is in the file", async () => {
    const from = (await server.seen()).connections.length;
    const file = writeScenario("sequence", head("{ duration: 1.4, arrivalCount: 7 }", "sequence",
                                                '    transports: ["websocket"]\n    auth: { name: "{{ name }}", token: "{{ token }}" }') + `
scenarios:
  - engine: socketio
    flow:
      - emit: ["hello", "{{ name }}"]
`, { "users.csv": USERS_CSV });
    const events = path.join(tmp, "sequence-events.jsonl");
    const r = load(file, server.url, ["--threads", "2", "--event-log", events]);
    assert.equal(r.code, 0, r.out);
    // User i (the event log's vu) said row i's name. Read from the users' side: the server sees the
    // connections of two threads in the order they completed, which a stalled thread can change.
    const said = fs.readFileSync(events, "utf8").trim().split("\n").map((l) => JSON.parse(l))
      .filter((e) => e.dir === "out" && e.type === "event" && e.data[0] === "hello")
      .sort((a, b) => a.vu - b.vu).map((e) => [e.vu, e.data[1]]);
    assert.deepEqual(said, [[0, "user1"], [1, "user2"], [2, "user3"], [3, "user4"], [4, "user5"], [5, "user1"],
                            [6, "user2"]]);
    // The server got those rows, each connection's CONNECT carrying the fields of the row its user
    // said hello with.
    const seen = await server.seen();
    const auths = seen.connections.slice(from).map((c) => c.auth);
    assert.deepEqual(auths.map((a) => a.name).sort(), ["user1", "user1", "user2", "user2", "user3", "user4", "user5"]);
    for (const a of auths) assert.equal(a.token, tokenOf[a.name]);
    const hellos = seen.events.filter((e) => e.connection >= from && e.event === "hello");
    assert.equal(hellos.length, 7);
    for (const e of hellos) assert.equal(e.args[0], seen.connections[e.connection].auth.name);
  });

  it("gives every user a row with order: random, and the rows are covered", async () => {
    const from = (await server.seen()).connections.length;
    const file = writeScenario("random", head("{ duration: 1, arrivalCount: 40 }", "random",
                                              '    transports: ["websocket"]\n    auth: { name: "{{ name }}", token: "{{ token }}", role: "{{ role }}" }') + `
scenarios:
  - engine: socketio
    flow:
      - emit: ["hello", "{{ name }}"]
`, { "users.csv": USERS_CSV });
    const r = load(file, server.url, ["--seed", "7"]);
    assert.equal(r.code, 0, r.out);
    const auths = await whoConnected(from);
    assert.equal(auths.length, 40);
    assert.deepEqual([...new Set(auths.map((a) => a.name))].sort(), USERS.map((u) => u.name));
    for (const a of auths) {
      assert.equal(a.token, tokenOf[a.name], "the fields of one row go together");
      assert.equal(a.role, USERS.find((u) => u.name === a.name).role);
    }
  });

  for (const transports of [["polling", "websocket"], ["websocket"]]) {
    it(`puts extraHeaders and query on every handshake request, auth in the CONNECT (${transports.join("+")})`, async () => {
      const before = await server.seen();
      const file = writeScenario(`headers-${transports.join("-")}`, head("{ duration: 0.5, arrivalCount: 5 }", "sequence", `    transports: ${JSON.stringify(transports)}
    extraHeaders: { x-user: "{{ name }}", x-run: "features" }
    query: { user: "{{ name }}", token: "{{ token }}" }
    auth: { token: "{{ token }}" }`) + `
scenarios:
  - engine: socketio
    flow:
      - emit: ["hello", "{{ name }}"]
        acknowledge: true
      - think: 0.5
      - emit: ["bye", "{{ name }}"]
        acknowledge: true
      - emit: ["transport"]
        acknowledge:
          match: { json: "$.0.transport", value: "websocket" }
`, { "users.csv": USERS_CSV });
      const r = load(file, server.url);
      assert.equal(r.code, 0, r.out);
      const now = await server.seen();
      const requests = now.requests.slice(before.requests.length);
      const connections = now.connections.slice(before.connections.length);
      assert.equal(connections.length, 5);
      for (const u of USERS) {
        const mine = requests.filter((q) => q.query.user === u.name);
        const kinds = new Set(mine.map((q) => `${q.method} ${q.transport}`));
        if (transports.includes("polling")) {
          assert.ok(kinds.has("GET polling") && kinds.has("POST polling"), `${u.name}: ${[...kinds]}`);
        }
        assert.ok(kinds.has("UPGRADE websocket"), `${u.name} upgraded: ${[...kinds]}`);
        for (const q of mine) {
          assert.equal(q.headers["x-user"], u.name, `${q.method} ${q.transport}`);
          assert.equal(q.headers["x-run"], "features");
          assert.equal(q.query.token, u.token, "encoded on the way, the same value at the server");
        }
        const c = connections.find((x) => x.query.user === u.name);
        assert.ok(c, `${u.name} connected`);
        assert.equal(c.query.token, u.token);
        assert.equal(c.headers["x-user"], u.name);
        assert.deepEqual(c.auth, { token: u.token });
      }
      // Every request of the run was one of these users'.
      assert.equal(requests.filter((q) => !tokenOf[q.query.user]).length, 0);
    });
  }

  it("runs before once before the users and after once after them, with before's captures", async () => {
    const from = (await server.seen()).events.length;
    const file = writeScenario("hooks", `
config:
  target: "http://127.0.0.1:1"
  phases: [{ duration: 0.4, arrivalCount: 4 }]
  socketio: { transports: ["websocket"] }
before:
  engine: socketio
  flow:
    - emit: ["setup"]
      acknowledge:
        capture: { json: "$.0.room", as: "room" }
scenarios:
  - engine: socketio
    flow:
      - emit: ["join", "{{ room }}"]
        acknowledge: true
after:
  engine: socketio
  flow:
    - emit: ["teardown", "{{ room }}"]
      acknowledge: true
`);
    const r = load(file, server.url);
    assert.equal(r.code, 0, r.out);
    const events = (await server.seen()).events.slice(from);
    const names = events.map((e) => e.event);
    assert.deepEqual(names.filter((n) => n === "setup"), ["setup"]);
    assert.deepEqual(names.filter((n) => n === "teardown"), ["teardown"]);
    assert.equal(names.filter((n) => n === "join").length, 4);
    assert.equal(names[0], "setup");
    assert.equal(names[names.length - 1], "teardown");
    const room = events[names.indexOf("teardown")].args[0];
    assert.match(room, /^room-\d+$/);
    for (const e of events.filter((x) => x.event !== "setup")) assert.equal(e.args[0], room);
    assert.equal(r.report.total.counters["vusers.created"], 4, "before and after are not users of the run");
    assert.equal(r.report.meta.before.ok, true);
    assert.equal(r.report.meta.after.ok, true);
  });

  it("loops over a list and a loadAll payload, and ifTrue chooses the steps", async () => {
    const before = await server.seen();
    const file = writeScenario("loops", `
config:
  target: "http://127.0.0.1:1"
  phases: [{ duration: 0.5, arrivalCount: 5 }]
  payload:
    - path: "users.csv"
      fields: [name, token, role]
      skipHeader: true
      order: sequence
    - path: "rooms.csv"
      fields: [room, floor]
      loadAll: true
      name: rooms
  variables:
    greetings: [["hi", "hello"]]
  socketio:
    transports: ["websocket"]
    auth: { name: "{{ name }}" }
  ensure: { maxErrorRate: 0 }
scenarios:
  - engine: socketio
    flow:
      - loop:
          - emit: ["room", "{{ $loopElement.room }}", "{{ $loopElement.floor }}", "{{ $loopCount }}"]
        over: rooms
      - loop:
          - emit: ["say", "{{ $loopElement }}"]
        over: greetings
      - emit: ["admin-only", "{{ name }}"]
        ifTrue: 'role == "admin"'
      - emit: ["others", "{{ name }}"]
        ifTrue: 'not (role == "admin")'
`, { "users.csv": USERS_CSV, "rooms.csv": 'lobby,0\nroof,"12"\n' });
    const r = load(file, server.url);
    assert.equal(r.code, 0, r.out);
    const now = await server.seen();
    const first = before.connections.length;
    const connections = now.connections.slice(first);
    assert.equal(connections.length, 5);
    for (const u of USERS) {
      const c = first + connections.findIndex((x) => x.auth.name === u.name);
      const mine = now.events.filter((e) => e.connection === c).map((e) => [e.event, ...e.args]);
      assert.deepEqual(mine, [
        ["room", "lobby", 0, 0],
        ["room", "roof", "12", 1],  // quoted in the file: text, not cast to a number
        ["say", "hi"],
        ["say", "hello"],
        [u.role === "admin" ? "admin-only" : "others", u.name],
      ], u.name);
    }
  });
});

describe("users that go on, and the event log, against phasekit-orchestrator", () => {
  it("ends a step at an ack that says no, lets the user go on, and logs every packet", async () => {
    const server = await startServer({ AUTH_MODE: "none" });
    try {
      // A message the server turns into a tool call, then an approval of a call that does not exist:
      // its ack says NOT_FOUND, and no tool:result will come (the timeout is 30 s).
      const file = writeScenario("keep-going", `
config:
  target: "http://127.0.0.1:1"
  phases: [{ duration: 1, arrivalCount: 2 }]
  socketio: { transports: ["websocket"] }
  timeout: 30
scenarios:
  - engine: socketio
    flow:
      - emit: { channel: "message", data: "echo hi" }
        acknowledge: { match: { json: "$.0.ok", value: true }, capture: { json: "$.0.callId", as: "callId" } }
      - emit: { channel: "tool:approval", data: { callId: "no-such-call", approved: true } }
        acknowledge: { match: { json: "$.0.ok", value: true } }
        response: { channel: "tool:result" }
      - think: 0.1
`);
      const events = path.join(tmp, "keep-going-events.jsonl");
      const started = Date.now();
      const r = load(file, server.url, ["--repeat-until", "2", "--keep-going", "--event-log", events]);
      assert.ok(Date.now() - started < 15000, "a refused approval's tool:result was waited for");
      const c = r.report.total.counters;
      assert.equal(c["vusers.created"], 2, r.out);
      assert.equal(c["vusers.failed"], 2, "each user met an error");
      assert.ok(c["flows.failed"] >= 4, `each user went on after its first failure: ${JSON.stringify(c)}`);
      assert.equal(c["errors.match_failed"], c["flows.failed"]);
      const lines = fs.readFileSync(events, "utf8").trim().split("\n").map((l) => JSON.parse(l));
      const users = [...new Set(lines.map((l) => l.vu))];
      assert.equal(users.length, 2);
      for (const vu of users) {
        const mine = lines.filter((l) => l.vu === vu);
        assert.equal(mine[0].dir, "open");
        assert.equal(mine.filter((l) => l.dir === "open").length, 1, "one connection, kept");
        assert.equal(mine.at(-1).dir, "end");
        const approvals = mine.filter((l) => l.dir === "out" && l.type === "event" && l.data[0] === "tool:approval");
        assert.ok(approvals.length >= 2);
        for (const a of approvals) {
          const ack = mine.find((l) => l.dir === "in" && l.type === "ack" && l.id === a.id);
          assert.equal(ack?.data[0]?.code, "NOT_FOUND", JSON.stringify(ack));
        }
        // The tool calls its messages made were asked for, by the server, in events no step waited for.
        assert.ok(mine.some((l) => l.dir === "in" && l.type === "event" && l.data[0] === "tool:request"));
      }
    } finally {
      await server.stop();
    }
  });
});

describe("the shipped staging example against phasekit-orchestrator", () => {
  const example = path.join(SOURCE, "scenarios/staging.yml");

  it("validates as it is", () => {
    const r = spawnSync(LOAD, ["validate", example], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it("runs as it is against a server that checks no tokens (AUTH_MODE=none)", async () => {
    const server = await startServer({ AUTH_MODE: "none" });
    try {
      const r = load(example, server.url, ["--max-duration", "1"]);
      assert.equal(r.code, 0, r.out);
      assert.equal(r.report.total.counters["vusers.completed"], 2);
    } finally {
      await server.stop();
    }
  });

  it("logs every user in with the token of its CSV row (AUTH_MODE=token) and loops over its commands", async () => {
    const server = await startServer({ AUTH_MODE: "token" });
    try {
      // The example with tokens this server accepts (and one it refuses) beside it.
      const users = ["ada", "grace", "linus"];
      const csv = "user,token\n" + users.map((u) => `${u},${token(u)}`).join("\n") + "\nmallory,not-a-token\n";
      const file = writeScenario("staging", fs.readFileSync(example, "utf8"), { "staging-users.csv": csv });
      const r = load(file, server.url, ["--max-duration", "2"]);
      const c = r.report.total.counters;
      assert.equal(c["vusers.created"], 4, r.out);
      assert.equal(c["vusers.completed"], 3, r.out);
      assert.equal(c["errors.connect_error"], 1, "mallory's token is refused");
      assert.ok(c["socketio.response"] >= 3 * 4, "each user ran every command of its list (2 or 3), a request and a result each");
      assert.equal(r.code, 1, "maxErrorRate: 0 fails the run on the refused user");
    } finally {
      await server.stop();
    }
  });
});
