// The official clients (engine.io-client and socket.io-client, the versions in tools/node) against
// phasekit's network layer, over polling, WebSocket and the upgrade between them.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { startServer, withTimeout, modules } = require("./support.js");

const { Socket: EngineSocket } = require(path.join(modules, "engine.io-client"));
const { io } = require(path.join(modules, "socket.io-client"));

const MODES = [
  { name: "polling", transports: ["polling"] },
  { name: "websocket", transports: ["websocket"] },
  { name: "upgrade", transports: ["polling", "websocket"], upgrade: true },
];

function once(emitter, event, ms = 5000) {
  return withTimeout(new Promise((resolve) => emitter.once(event, (...args) => resolve(args))), ms, event);
}

describe("official clients", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    const { code } = await server.stop();
    assert.equal(code, 0);
  });

  for (const mode of MODES) {
    describe(`engine.io-client over ${mode.name}`, () => {
      it("text and binary messages are echoed; the upgrade happens when offered", async () => {
        const socket = new EngineSocket(server.url, { transports: mode.transports });
        try {
          await once(socket, "open");
          if (mode.upgrade) {
            if (socket.transport.name !== "websocket") await once(socket, "upgrade");
            assert.equal(socket.transport.name, "websocket");
          }
          socket.send("hello €");
          assert.deepEqual(await once(socket, "message"), ["hello €"]);
          socket.send(Buffer.from([1, 2, 3]));
          const [binary] = await once(socket, "message");
          assert.deepEqual(Buffer.from(binary), Buffer.from([1, 2, 3]));
          // Past a few heartbeats (pingInterval 300 ms) the session is still there.
          await withTimeout(new Promise((resolve) => {
            let pings = 0;
            socket.on("ping", () => ++pings === 3 && resolve());
          }), 5000, "three pings");
          socket.send("still here");
          assert.deepEqual(await once(socket, "message"), ["still here"]);
        } finally {
          socket.close();
        }
      });
    });

    describe(`socket.io-client over ${mode.name}`, () => {
      function connect(nsp, auth) {
        const socket = io(`${server.url}${nsp}`, { transports: mode.transports, forceNew: true, reconnection: false, auth });
        return socket;
      }

      it("connects to / and /custom with auth, echoes events with binary, and acknowledges", async () => {
        const main = connect("/", { token: "abc" });
        const custom = connect("/custom", { user: 1 });
        try {
          // Both listen before either is awaited: the two connections answer in any order.
          const [[auth], [customAuth]] = await Promise.all([once(main, "auth"), once(custom, "auth")]);
          assert.deepEqual(auth, { token: "abc" });
          assert.deepEqual(customAuth, { user: 1 });
          assert.ok(main.connected && custom.connected);
          assert.notEqual(main.id, custom.id);

          main.emit("message", 1, "2", { 3: [true] }, Buffer.from([7, 8, 9]));
          const back = await once(main, "message-back");
          assert.deepEqual(back.slice(0, 3), [1, "2", { 3: [true] }]);
          assert.deepEqual(Buffer.from(back[3]), Buffer.from([7, 8, 9]));

          const acked = await main.timeout(5000).emitWithAck("message-with-ack", "a", Buffer.from([1]));
          assert.equal(acked, "a");  // emitWithAck resolves the first argument of the ack
          const both = await new Promise((resolve) => custom.emit("message-with-ack", 1, 2, (...args) => resolve(args)));
          assert.deepEqual(both, [1, 2]);
        } finally {
          main.close();
          custom.close();
        }
      });

      it("an unknown namespace gets connect_error 'Invalid namespace'", async () => {
        const socket = connect("/nope");
        try {
          const [error] = await once(socket, "connect_error");
          assert.equal(error.message, "Invalid namespace");
        } finally {
          socket.close();
        }
      });
    });
  }

  it("socket.io-client: two namespaces share one Engine.IO connection (multiplexing)", async () => {
    const main = io(server.url, { transports: ["websocket"], reconnection: false, forceNew: true });
    const custom = main.io.socket("/custom");
    custom.connect();
    try {
      await once(main, "connect");
      if (!custom.connected) await once(custom, "connect");
      assert.equal(main.io.engine.id, custom.io.engine.id);
      custom.disconnect();
      main.emit("message", "after custom left");
      assert.deepEqual(await once(main, "message-back"), ["after custom left"]);
    } finally {
      main.close();
    }
  });
});
