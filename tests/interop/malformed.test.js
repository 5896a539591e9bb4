// Bad input of every kind, sent raw: each gets an error or a closed connection, and the server
// keeps serving a healthy client afterwards.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const net = require("node:net");
const { startServer, connect, runTool, token, WebSocket } = require("./support.js");

const MAX_PAYLOAD = 100000;

function request(server, method, query, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port: server.port, method, path: `/socket.io/?${query}`, agent: false },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (data += d));
        res.on("end", () => resolve({ status: res.statusCode, body: data }));
      },
    );
    req.on("error", reject);
    req.setTimeout(10000, () => req.destroy(new Error("request timeout")));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function handshake(server) {
  const res = await request(server, "GET", "EIO=4&transport=polling");
  assert.equal(res.status, 200);
  assert.equal(res.body[0], "0");
  return JSON.parse(res.body.slice(1)).sid;
}

/** Opens a raw Engine.IO WebSocket; resolves once the open packet arrived. */
function rawSocket(server) {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`);
  const closed = new Promise((resolve) => ws.on("close", (code) => resolve(code)));
  const opened = new Promise((resolve, reject) => {
    ws.once("message", (data) => resolve(String(data)));
    ws.once("error", reject);
  });
  return { ws, closed, opened };
}

async function expectClosed(closed, what) {
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: still open`)), 10000));
  return Promise.race([closed, timeout]);
}

describe("malformed input", () => {
  let server;
  let healthy;
  before(async () => {
    server = await startServer({ MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD) });
    healthy = await connect(server, "healthy");
  });
  after(async () => {
    healthy.close();
    const { code } = await server.stop();
    assert.equal(code, 0);
  });

  async function stillServing() {
    const result = await runTool(healthy, "echo still-here");
    assert.equal(result.output, "still-here\n");
  }

  it("unknown sid, protocol version and transport get 400 with the Engine.IO error code", async () => {
    assert.deepEqual(await request(server, "GET", "EIO=4&transport=polling&sid=nope"), {
      status: 400,
      body: JSON.stringify({ code: 1, message: "Session ID unknown" }),
    });
    assert.equal(JSON.parse((await request(server, "GET", "EIO=3&transport=polling")).body).code, 5);
    assert.equal(JSON.parse((await request(server, "GET", "EIO=4&transport=pigeon")).body).code, 0);
    assert.equal(JSON.parse((await request(server, "POST", "EIO=4&transport=polling", "40")).body).code, 2);
    assert.equal((await request(server, "GET", "EIO=4&transport=polling&sid=%zz")).status, 400);
    await stillServing();
  });

  for (const [what, body] of [
    ["a bad packet type", "9junk"],
    ["broken JSON", `40{"token":"${token("x")}"}\x1e42["message",`],
    ["an event without a name", `40{"token":"${token("x")}"}\x1e42[]`],
    ["a reserved event name", `40{"token":"${token("x")}"}\x1e42["disconnect"]`],
    ["invalid base64 in a binary packet", "b@@@@"],
    ["an empty record", "40\x1e\x1e"],
  ]) {
    it(`closes a polling session that sends ${what}`, async () => {
      const sid = await handshake(server);
      const post = await request(server, "POST", `EIO=4&transport=polling&sid=${sid}`, body);
      const after = await request(server, "GET", `EIO=4&transport=polling&sid=${sid}`);
      const closed = post.status === 400 || after.status === 400 || after.body.includes("1");
      assert.ok(closed, `post ${post.status} ${post.body}, then get ${after.status} ${after.body}`);
      await stillServing();
    });
  }

  it("refuses a polling body over maxPayload with 413 and closes its session", async () => {
    const sid = await handshake(server);
    const res = await request(server, "POST", `EIO=4&transport=polling&sid=${sid}`, "4" + "x".repeat(MAX_PAYLOAD + 2048));
    assert.equal(res.status, 413);
    // Closed on the session's strand: a GET either finds it gone (400) or is answered by its close packet.
    const after = await request(server, "GET", `EIO=4&transport=polling&sid=${sid}`);
    assert.ok(after.status === 400 || after.body === "1", `get ${after.status} ${after.body}`);
    await stillServing();
  });

  for (const [what, send] of [
    ["an unknown packet type", (ws) => ws.send("x")],
    ["broken JSON", (ws) => ws.send(`40{"token":"${token("x")}"}`) || ws.send("42[")],
    ["invalid UTF-8 in a text frame", (ws) => ws.send(Buffer.from([0x34, 0x32, 0xff, 0xfe]), { binary: false })],
    ["a frame over maxPayload", (ws) => ws.send("4" + "y".repeat(MAX_PAYLOAD + 10))],
    ["binary data nobody announced", (ws) => ws.send(Buffer.from([1, 2, 3]), { binary: true })],
    ["a placeholder for a missing attachment", (ws) => ws.send(`40{"token":"${token("x")}"}`) || ws.send('451-["message",{"_placeholder":true,"num":3}]') || ws.send(Buffer.from([1]))],
  ]) {
    it(`closes a websocket that sends ${what}`, async () => {
      const { ws, closed, opened } = rawSocket(server);
      assert.equal((await opened)[0], "0");
      send(ws);
      await expectClosed(closed, what);
      await stillServing();
    });
  }

  /** Peak resident memory of the server process (VmHWM), in bytes. */
  function peakMemory() {
    const status = require("node:fs").readFileSync(`/proc/${server.child.pid}/status`, "utf8");
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)[1]) * 1024;
  }

  // Finding 1: one attachment named by 2,000 placeholders was copied 2,000 times (7.6 MB -> 204 MB),
  // before the CONNECT check. Now the packet is refused at its text, the attachment never buffered.
  const manyPlaceholders = `451-["message"${',{"_placeholder":true,"num":0}'.repeat(2000)}]`;
  const attachment = Buffer.alloc(90000, 7);
  for (const [what, connectFirst] of [["before CONNECT", false], ["after CONNECT", true]]) {
    it(`an attachment named by 2,000 placeholders ${what} is refused without copying it`, async () => {
      const before = peakMemory();
      for (let i = 0; i < 3; i++) {
        const { ws, closed, opened } = rawSocket(server);
        await opened;
        if (connectFirst) {
          const answer = new Promise((resolve) => ws.once("message", (d) => resolve(String(d))));
          ws.send(`40{"token":"${token("attacker")}"}`);
          assert.match(await answer, /^40\{/);
        }
        ws.send(manyPlaceholders);
        ws.send(attachment, { binary: true });
        await expectClosed(closed, "placeholder attack");
      }
      const grown = peakMemory() - before;
      assert.ok(grown < 40 * 1024 * 1024, `peak memory grew by ${Math.round(grown / 1048576)} MB`);
      await stillServing();
    });
  }

  it("closes a websocket that sends an event before CONNECT", async () => {
    const { ws, closed, opened } = rawSocket(server);
    await opened;
    ws.send('42["message","echo too early"]');
    await expectClosed(closed, "event before CONNECT");
    await stillServing();
  });

  it("survives half-open TCP connections and unfinished requests", async () => {
    const sockets = [];
    for (let i = 0; i < 20; i++) {
      const s = net.connect(server.port, "127.0.0.1");
      await new Promise((r) => s.once("connect", r));
      if (i % 2) s.write("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n");  // never finished
      sockets.push(s);
    }
    await stillServing();
    const ready = await new Promise((resolve, reject) =>
      http.get({ host: "127.0.0.1", port: server.port, path: "/health", agent: false }, (res) => resolve(res.statusCode)).on("error", reject),
    );
    assert.equal(ready, 200);
    sockets.forEach((s) => s.destroy());
  });
});

describe("CONNECT_TIMEOUT_MS", () => {
  it("closes a client that answers pings but never CONNECTs, and keeps one that did", async () => {
    const server = await startServer({ CONNECT_TIMEOUT_MS: "500", PING_INTERVAL_MS: "200", PING_TIMEOUT_MS: "1000" });
    try {
      const idle = rawSocket(server);
      await idle.opened;
      idle.ws.on("message", (d) => String(d) === "2" && idle.ws.send("3"));
      const started = Date.now();
      await expectClosed(idle.closed, "a client that never CONNECTs");
      assert.ok(Date.now() - started >= 400, `closed after ${Date.now() - started} ms`);
      const healthy = await connect(server, "patient");
      try {
        const deadline = Date.now() + 1000;
        while (Date.now() < deadline) await runTool(healthy, "true");
        assert.ok(healthy.connected);
      } finally {
        healthy.close();
      }
    } finally {
      await server.stop();
    }
  });
});
