// Socket.IO v5 (https://socket.io/docs/v4/socket-io-protocol/) against phasekit's Socket.IO layer,
// one test per requirement, over WebSocket and HTTP long-polling. The server under test serves the
// protocol's reference test application on "/" and "/custom".
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, request, openWebSocket, SETTINGS } = require("./support.js");

const PATH = "/socket.io/?EIO=4";

/** A raw Engine.IO WebSocket that answers pings itself and hands over every other message. */
async function openSocket(server) {
  const socket = openWebSocket(`${server.wsUrl}${PATH}&transport=websocket`);
  await socket.opened;
  const open = await socket.next();
  assert.equal(open[0], "0");
  return {
    ...socket,
    async next(ms = 5000) {
      for (;;) {
        const m = await socket.next(ms);
        if (m === "2") socket.send("3");
        else return m;
      }
    },
  };
}

/** CONNECT to `nsp`; resolves the socket id of the answer (and consumes the `auth` event). */
async function join(socket, nsp = "/", auth) {
  const prefix = nsp === "/" ? "" : `${nsp},`;
  socket.send(`40${prefix}${auth ? JSON.stringify(auth) : ""}`);
  const answer = await socket.next();
  assert.ok(answer.startsWith(`40${prefix}{`), answer);
  const { sid } = JSON.parse(answer.slice(2 + prefix.length));
  assert.deepEqual(JSON.parse((await socket.next()).slice(2 + prefix.length)), ["auth", auth ?? {}]);
  return sid;
}

describe("Socket.IO v5", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    const { code } = await server.stop();
    assert.equal(code, 0);
  });

  describe("connect", () => {
    it("CONNECT to the main namespace is answered with the socket id, which is not the Engine.IO sid", async () => {
      const socket = openWebSocket(`${server.wsUrl}${PATH}&transport=websocket`);
      await socket.opened;
      const engineSid = JSON.parse((await socket.next()).slice(1)).sid;
      socket.send("40");
      const answer = await socket.next();
      assert.match(answer, /^40\{"sid":"[A-Za-z0-9_-]{20}"\}$/);
      assert.notEqual(JSON.parse(answer.slice(2)).sid, engineSid);
      socket.ws.close();
    });

    it("over HTTP long-polling", async () => {
      const open = await request(server, "GET", `${PATH}&transport=polling`);
      const sid = JSON.parse(open.body.slice(1)).sid;
      assert.equal((await request(server, "POST", `${PATH}&transport=polling&sid=${sid}`, "40")).body, "ok");
      const packets = [];
      while (packets.length < 2) {
        const res = await request(server, "GET", `${PATH}&transport=polling&sid=${sid}`);
        packets.push(...res.body.split("\x1e").filter((p) => p !== "2"));
      }
      assert.match(packets[0], /^40\{"sid":"[A-Za-z0-9_-]{20}"\}$/);
      assert.equal(packets[1], '42["auth",{}]');
    });

    it("CONNECT to a custom namespace, with its auth payload", async () => {
      const socket = await openSocket(server);
      await join(socket, "/custom", { token: "123" });
      socket.ws.close();
    });

    it("the auth payload reaches the namespace", async () => {
      const socket = await openSocket(server);
      socket.send('40{"token":"123"}');
      assert.match(await socket.next(), /^40\{"sid":/);
      assert.equal(await socket.next(), '42["auth",{"token":"123"}]');
      socket.ws.close();
    });

    it("CONNECT to an unknown namespace gets CONNECT_ERROR and the connection stays", async () => {
      const socket = await openSocket(server);
      socket.send("40/random,");
      assert.equal(await socket.next(), '44/random,{"message":"Invalid namespace"}');
      await join(socket, "/");
      socket.ws.close();
    });

    it("an invalid CONNECT closes the connection", async () => {
      const socket = await openSocket(server);
      socket.send("4abc");
      await socket.waitClosed();
    });

    it("a second CONNECT to a joined namespace closes the connection", async () => {
      const socket = await openSocket(server);
      await join(socket);
      socket.send("40");
      await socket.waitClosed();
    });

    it("a client that answers pings but never CONNECTs is closed after connectTimeout", async () => {
      const started = Date.now();
      const socket = await openSocket(server);
      const pinged = socket.next(SETTINGS.CONNECT_TIMEOUT_MS + 3000).catch(() => {});  // answers pings meanwhile
      await socket.waitClosed(SETTINGS.CONNECT_TIMEOUT_MS + 3000);
      await pinged;
      assert.ok(Date.now() - started >= SETTINGS.CONNECT_TIMEOUT_MS - 50, `closed after ${Date.now() - started} ms`);
    });

    it("a client that CONNECTs stays past connectTimeout", async () => {
      const socket = await openSocket(server);
      await join(socket);
      const deadline = Date.now() + SETTINGS.CONNECT_TIMEOUT_MS + 500;
      while (Date.now() < deadline) {
        socket.send('42["message","alive"]');
        assert.equal(await socket.next(), '42["message-back","alive"]');
      }
      socket.ws.close();
    });
  });

  describe("disconnect", () => {
    it("after DISCONNECT from the main namespace an event to it closes the connection", async () => {
      const socket = await openSocket(server);
      await join(socket);
      socket.send("41");
      socket.send('42["message","late"]');
      await socket.waitClosed();
    });

    it("several namespaces on one connection: DISCONNECT from one leaves the other", async () => {
      const socket = await openSocket(server);
      await join(socket, "/");
      await join(socket, "/custom");
      socket.send('42/custom,["message","to custom"]');
      assert.equal(await socket.next(), '42/custom,["message-back","to custom"]');
      socket.send("41/custom,");
      socket.send('42["message","to main"]');
      assert.equal(await socket.next(), '42["message-back","to main"]');
      socket.ws.close();
    });
  });

  describe("events and acknowledgements", () => {
    it("a plain-text event", async () => {
      const socket = await openSocket(server);
      await join(socket);
      socket.send('42["message",1,"2",{"3":[true]}]');
      assert.equal(await socket.next(), '42["message-back",1,"2",{"3":[true]}]');
      socket.ws.close();
    });

    it("an event with binary attachments", async () => {
      const socket = await openSocket(server);
      await join(socket);
      socket.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      socket.send(Buffer.from([1, 2, 3]));
      socket.send(Buffer.from([4, 5, 6]));
      assert.equal(await socket.next(), '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      assert.deepEqual(await socket.next(), Buffer.from([1, 2, 3]));
      assert.deepEqual(await socket.next(), Buffer.from([4, 5, 6]));
      socket.ws.close();
    });

    it("a plain-text event with an ack", async () => {
      const socket = await openSocket(server);
      await join(socket);
      socket.send('42456["message-with-ack",1,"2",{"3":[false]}]');
      assert.equal(await socket.next(), '43456[1,"2",{"3":[false]}]');
      socket.ws.close();
    });

    it("an event with binary attachments and an ack", async () => {
      const socket = await openSocket(server);
      await join(socket);
      socket.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      socket.send(Buffer.from([1, 2, 3]));
      socket.send(Buffer.from([4, 5, 6]));
      assert.equal(await socket.next(), '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      assert.deepEqual(await socket.next(), Buffer.from([1, 2, 3]));
      assert.deepEqual(await socket.next(), Buffer.from([4, 5, 6]));
      socket.ws.close();
    });

    it("events on a custom namespace carry it", async () => {
      const socket = await openSocket(server);
      await join(socket, "/custom");
      socket.send('42/custom,12["message-with-ack","x"]');
      assert.equal(await socket.next(), '43/custom,12["x"]');
      socket.ws.close();
    });

    for (const [what, packet] of [
      ["an unknown packet type", "4abc"],
      ["an event whose payload is not an array", '42{"a":1}'],
      ["an invalid ack id", '42abc["message-with-ack",1]'],
    ]) {
      it(`${what} closes the connection`, async () => {
        const socket = await openSocket(server);
        await join(socket);
        socket.send(packet);
        await socket.waitClosed();
      });
    }
  });

  describe("before CONNECT", () => {
    it("an event closes the connection", async () => {
      const socket = await openSocket(server);
      socket.send('42["message","too early"]');
      await socket.waitClosed();
    });

    it("a binary event closes the connection at its first part", async () => {
      const socket = await openSocket(server);
      socket.send('451-["message",{"_placeholder":true,"num":0}]');
      await socket.waitClosed();
    });

    it("an event to a namespace not joined closes the connection", async () => {
      const socket = await openSocket(server);
      await join(socket, "/");
      socket.send('42/custom,["message","not joined"]');
      await socket.waitClosed();
    });
  });
});
