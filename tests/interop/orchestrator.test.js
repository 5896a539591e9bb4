// phasekit-orchestrator driven by the official socket.io-client v4: transports, the tool-call flow,
// binary attachments, many clients, backpressure, isolation between users, graceful shutdown.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, connect, runTool, once, token, io, SECRET } = require("./support.js");

describe("phasekit-orchestrator with socket.io-client", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    const { code } = await server.stop();
    assert.equal(code, 0, "SIGTERM ends the server with exit code 0");
  });

  for (const [name, transports] of [
    ["websocket only", ["websocket"]],
    ["polling only", ["polling"]],
  ]) {
    it(`runs message → approval → result over ${name}`, async () => {
      const socket = await connect(server, "alice", { transports });
      try {
        assert.equal(socket.io.engine.transport.name, transports[0]);
        const requests = [];
        socket.on("tool:request", (r) => requests.push(r));
        const result = await runTool(socket, "echo hello; echo err >&2; exit 3");
        assert.equal(result.exitCode, 3);
        assert.equal(result.output, "hello\nerr\n");
        assert.equal(result.truncated, false);
        assert.equal(typeof result.durationMs, "number");
        assert.equal(requests.length, 1);
        assert.deepEqual(requests[0].args, { command: "echo hello; echo err >&2; exit 3" });
        assert.equal(requests[0].tool, "shell");
        assert.equal(requests[0].callId, result.callId);
      } finally {
        socket.close();
      }
    });
  }

  it("upgrades polling to websocket and keeps working", async () => {
    const socket = await connect(server, "alice", { transports: ["polling", "websocket"] });
    try {
      if (socket.io.engine.transport.name !== "websocket") {
        await once(socket.io.engine, "upgrade");
      }
      assert.equal(socket.io.engine.transport.name, "websocket");
      const result = await runTool(socket, "echo upgraded");
      assert.equal(result.output, "upgraded\n");
    } finally {
      socket.close();
    }
  });

  it("keeps cd and export between calls of one session", async () => {
    const socket = await connect(server, "carol");
    try {
      await runTool(socket, "mkdir -p work && cd work && export COLOR=blue");
      const result = await runTool(socket, 'echo "$COLOR in $(basename "$PWD")"');
      assert.equal(result.output, "blue in work\n");
    } finally {
      socket.close();
    }
  });

  it("carries binary attachments both ways", async () => {
    const socket = await connect(server, "dave");
    try {
      const bytes = Buffer.from([0, 1, 2, 250, 255, 0x1e, 10]);
      const written = await runTool(socket, { tool: "write_file", args: { path: "blob.bin", content: bytes } });
      assert.equal(written.exitCode, 0, JSON.stringify(written));
      assert.equal(written.output.bytesWritten, bytes.length);
      const read = await runTool(socket, { tool: "read_file", args: { path: "blob.bin", encoding: "binary" } });
      assert.ok(Buffer.isBuffer(read.output.content), "content arrives as a Buffer");
      assert.deepEqual(read.output.content, bytes);
      const shell = await runTool(socket, "od -An -tu1 blob.bin | tr -s ' '");
      assert.equal(shell.output.trim(), "0 1 2 250 255 30 10");
    } finally {
      socket.close();
    }
  });

  it("denial gives a denied result", async () => {
    const socket = await connect(server, "erin");
    try {
      const ack = await socket.emitWithAck("message", "rm -rf ~");
      const result = once(socket, "tool:result");
      assert.deepEqual(await socket.emitWithAck("tool:approval", { callId: ack.callId, approved: false }), {
        ok: true,
        callId: ack.callId,
      });
      const [r] = await result;
      assert.equal(r.denied, true);
      assert.equal(r.callId, ack.callId);
    } finally {
      socket.close();
    }
  });

  it("serves 200 clients at once", async () => {
    const sockets = await Promise.all(Array.from({ length: 200 }, (_, i) => connect(server, `many-${i}`)));
    try {
      const results = await Promise.all(sockets.map((s, i) => runTool(s, `echo client-${i}`, 60000)));
      results.forEach((r, i) => assert.equal(r.output, `client-${i}\n`, JSON.stringify(r).slice(0, 400)));
    } finally {
      sockets.forEach((s) => s.close());
    }
  });

  it("gives the sixth concurrent request of a user TOO_MANY_REQUESTS and leaves others alone", async () => {
    const a1 = await connect(server, "frank");
    const a2 = await connect(server, "frank");
    const other = await connect(server, "grace");
    try {
      const acks = [];
      for (let i = 0; i < 5; i++) acks.push(await (i % 2 ? a2 : a1).emitWithAck("message", "true"));
      acks.forEach((a) => assert.equal(a.ok, true));
      const sixth = await a2.emitWithAck("message", "true");
      assert.deepEqual(
        { ok: sixth.ok, code: sixth.code },
        { ok: false, code: "TOO_MANY_REQUESTS" },
        JSON.stringify(sixth),
      );
      const result = await runTool(other, "echo undisturbed");
      assert.equal(result.output, "undisturbed\n");
    } finally {
      [a1, a2, other].forEach((s) => s.close());
    }
  });

  it("does not let a second user approve the first user's callId", async () => {
    const alice = await connect(server, "alice2");
    const mallory = await connect(server, "mallory");
    try {
      const ack = await alice.emitWithAck("message", "echo mine");
      const stolen = await mallory.emitWithAck("tool:approval", { callId: ack.callId, approved: true });
      assert.equal(stolen.ok, false);
      assert.equal(stolen.code, "NOT_FOUND");
      const result = once(alice, "tool:result");
      assert.equal((await alice.emitWithAck("tool:approval", { callId: ack.callId, approved: true })).ok, true);
      assert.equal((await result)[0].output, "mine\n");
    } finally {
      alice.close();
      mallory.close();
    }
  });

  it("refuses connections without a valid token or to an unknown namespace", async () => {
    await assert.rejects(connect(server, undefined), /missing token/);
    const forged = io(server.url, { transports: ["websocket"], reconnection: false, forceNew: true, auth: { token: token("x").slice(0, -2) + "AA" } });
    const [err] = await once(forged, "connect_error");
    assert.match(err.message, /bad token signature/);
    forged.close();
    const ns = io(`${server.url}/admin`, { transports: ["websocket"], reconnection: false, forceNew: true, auth: { token: token("x") } });
    const [nsErr] = await once(ns, "connect_error");
    assert.match(nsErr.message, /Invalid namespace/);
    ns.close();
  });

  // Finding 7: a header whose alg is not a string threw inside the CONNECT handler and the client
  // waited forever. Each of these CONNECTs is answered with connect_error, and the server goes on.
  it("answers a CONNECT whose token header has the wrong shape with connect_error", async () => {
    const crypto = require("node:crypto");
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const signed = (header) => {
      const input = `${b64(header)}.${b64({ sub: "x", exp: Math.floor(Date.now() / 1000) + 600 })}`;
      return `${input}.${crypto.createHmac("sha256", SECRET).update(input).digest("base64url")}`;
    };
    for (const header of [{ alg: 1 }, { alg: null }, { alg: ["HS256"] }, [1], "HS256"]) {
      const socket = io(server.url, { transports: ["websocket"], reconnection: false, forceNew: true, auth: { token: signed(header) } });
      try {
        const [err] = await once(socket, "connect_error", 5000);
        assert.match(err.message, /unsupported token|malformed token/, JSON.stringify(header));
      } finally {
        socket.close();
      }
    }
    const fine = await connect(server, "after-bad-headers");
    fine.close();
  });

  it("answers unknown events and bad arguments with BAD_REQUEST", async () => {
    const socket = await connect(server, "henry");
    try {
      const unknown = await socket.emitWithAck("frobnicate", 1);
      assert.deepEqual([unknown.ok, unknown.code], [false, "BAD_REQUEST"]);
      const bad = await socket.emitWithAck("tool:approval", "nope");
      assert.deepEqual([bad.ok, bad.code], [false, "BAD_REQUEST"]);
      const path = await runTool(socket, { tool: "read_file", args: { path: "../../etc/passwd" } });
      assert.equal(path.error.code, "BAD_REQUEST");
    } finally {
      socket.close();
    }
  });
});
