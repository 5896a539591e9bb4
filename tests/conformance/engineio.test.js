// Engine.IO v4 (https://socket.io/docs/v4/engine-io-protocol/) against phasekit's transport, one test
// per requirement, over HTTP long-polling, WebSocket and the upgrade between them. The server under
// test echoes every message at /engine.io/ (the protocol's reference test application).
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, request, openWebSocket, withTimeout, SETTINGS } = require("./support.js");

const EIO = "/engine.io/?EIO=4";

describe("Engine.IO v4", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    const { code } = await server.stop();
    assert.equal(code, 0);
  });

  const get = (sid) => request(server, "GET", `${EIO}&transport=polling&sid=${sid}`);
  const post = (sid, body) => request(server, "POST", `${EIO}&transport=polling&sid=${sid}`, body);

  async function openPolling() {
    const res = await request(server, "GET", `${EIO}&transport=polling`);
    assert.equal(res.status, 200);
    assert.equal(res.body[0], "0");
    return JSON.parse(res.body.slice(1)).sid;
  }

  async function openWs(sid) {
    const socket = openWebSocket(`${server.wsUrl}${EIO}&transport=websocket${sid ? `&sid=${sid}` : ""}`);
    await socket.opened;
    return socket;
  }

  /** Polling session upgraded to a WebSocket: 2probe → 3probe, then 5. */
  async function upgraded() {
    const sid = await openPolling();
    const socket = await openWs(sid);
    socket.send("2probe");
    assert.equal(await socket.next(), "3probe");
    socket.send("5");
    return { sid, socket };
  }

  describe("handshake", () => {
    it("polling: the open packet carries sid, upgrades, pingInterval, pingTimeout and maxPayload", async () => {
      const res = await request(server, "GET", `${EIO}&transport=polling`);
      assert.equal(res.status, 200);
      assert.match(res.headers["content-type"], /^text\/plain; charset=UTF-8$/i);
      assert.equal(res.body[0], "0");
      const open = JSON.parse(res.body.slice(1));
      assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
      assert.deepEqual(open.upgrades, ["websocket"]);
      assert.equal(open.pingInterval, SETTINGS.PING_INTERVAL_MS);
      assert.equal(open.pingTimeout, SETTINGS.PING_TIMEOUT_MS);
      assert.equal(open.maxPayload, SETTINGS.MAX_PAYLOAD_BYTES);
    });

    it("sids are 20 URL-safe characters and never repeat", async () => {
      const sids = new Set();
      for (let i = 0; i < 50; i++) sids.add(await openPolling());
      assert.equal(sids.size, 50);
      for (const sid of sids) assert.match(sid, /^[A-Za-z0-9_-]{20}$/);
    });

    it("websocket: the first message is the open packet, with no upgrades", async () => {
      const socket = await openWs();
      const first = await socket.next();
      assert.equal(first[0], "0");
      const open = JSON.parse(first.slice(1));
      assert.deepEqual(open.upgrades, []);
      assert.equal(open.pingInterval, SETTINGS.PING_INTERVAL_MS);
      socket.ws.close();
    });

    it("an unsupported or missing EIO gets 400 code 5", async () => {
      for (const query of ["/engine.io/?transport=polling", "/engine.io/?EIO=3&transport=polling", "/engine.io/?EIO=abc&transport=polling"]) {
        const res = await request(server, "GET", query);
        assert.equal(res.status, 400, query);
        assert.deepEqual(JSON.parse(res.body), { code: 5, message: "Unsupported protocol version" });
      }
    });

    it("an unknown or missing transport gets 400 code 0", async () => {
      for (const query of [`${EIO}`, `${EIO}&transport=abc`]) {
        const res = await request(server, "GET", query);
        assert.equal(res.status, 400, query);
        assert.deepEqual(JSON.parse(res.body), { code: 0, message: "Transport unknown" });
      }
    });

    it("a handshake other than GET gets 400 code 2", async () => {
      const res = await request(server, "POST", `${EIO}&transport=polling`, "40");
      assert.equal(res.status, 400);
      assert.deepEqual(JSON.parse(res.body), { code: 2, message: "Bad handshake method" });
    });

    it("an unknown sid gets 400 code 1, over polling and WebSocket", async () => {
      const res = await get("does-not-exist");
      assert.equal(res.status, 400);
      assert.deepEqual(JSON.parse(res.body), { code: 1, message: "Session ID unknown" });
      const socket = openWebSocket(`${server.wsUrl}${EIO}&transport=websocket&sid=does-not-exist`);
      await assert.rejects(socket.opened, /400/);
    });
  });

  describe("messages", () => {
    it("polling: a POST is answered ok and the text message comes back on the next GET", async () => {
      const sid = await openPolling();
      const sent = await post(sid, "4hello");
      assert.deepEqual([sent.status, sent.body], [200, "ok"]);
      assert.equal((await get(sid)).body, "4hello");
    });

    it("polling: binary messages travel as b<base64>", async () => {
      const sid = await openPolling();
      await post(sid, "bAQIDBA==");
      assert.equal((await get(sid)).body, "bAQIDBA==");
    });

    it("polling: several packets in one payload are separated by \\x1e, order and UTF-8 kept", async () => {
      const sid = await openPolling();
      await post(sid, "4plain\x1ebAQIDBA==\x1e4€uro");
      assert.equal((await get(sid)).body, "4plain\x1ebAQIDBA==\x1e4€uro");
    });

    it("websocket: text and binary frames come back as they were sent", async () => {
      const socket = await openWs();
      await socket.next();  // open
      socket.send("4hello");
      assert.equal(await socket.next(), "4hello");
      socket.send(Buffer.from([1, 2, 3, 4]));
      assert.deepEqual(await socket.next(), Buffer.from([1, 2, 3, 4]));
      socket.ws.close();
    });

    it("polling: an invalid packet closes the session", async () => {
      const sid = await openPolling();
      assert.equal((await post(sid, "abc")).status, 400);
      assert.equal((await get(sid)).status, 400);
    });

    it("websocket: an invalid packet closes the session", async () => {
      const socket = await openWs();
      await socket.next();
      socket.send("abc");
      await socket.waitClosed();
    });

    it("polling: a second GET while one is pending closes the session (400, then the first gets close)", async () => {
      const sid = await openPolling();
      const first = get(sid);
      const second = await get(sid);
      assert.equal(second.status, 400);
      const ended = await first;
      assert.deepEqual([ended.status, ended.body], [200, "1"]);
      assert.equal((await get(sid)).status, 400);
    });

    it("a payload larger than maxPayload closes the session", async () => {
      const sid = await openPolling();
      const res = await post(sid, "4" + "x".repeat(SETTINGS.MAX_PAYLOAD_BYTES + 2048));
      assert.equal(res.status, 413);
      assert.equal((await get(sid)).status, 400, "the polling session is closed");
      const socket = await openWs();
      await socket.next();
      socket.send("4" + "x".repeat(SETTINGS.MAX_PAYLOAD_BYTES + 10));
      const { code } = await socket.waitClosed();
      assert.equal(code, 1009);
    });
  });

  describe("heartbeat", () => {
    it("polling: the server pings every pingInterval and a pong keeps the session", async () => {
      const sid = await openPolling();
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        assert.equal((await get(sid)).body, "2");
        assert.ok(Date.now() - started >= SETTINGS.PING_INTERVAL_MS - 50);
        assert.equal((await post(sid, "3")).body, "ok");
      }
    });

    it("polling: without a pong the session is closed after pingTimeout", async () => {
      const sid = await openPolling();
      assert.equal((await get(sid)).body, "2");
      const closed = await withTimeout(get(sid), SETTINGS.PING_TIMEOUT_MS + 2000, "close after ping timeout");
      assert.equal(closed.body, "1");
      assert.equal((await get(sid)).status, 400);
    });

    it("websocket: pings every pingInterval; pongs keep the session", async () => {
      const socket = await openWs();
      await socket.next();
      for (let i = 0; i < 3; i++) {
        assert.equal(await socket.next(SETTINGS.PING_INTERVAL_MS + 2000), "2");
        socket.send("3");
      }
      socket.ws.close();
    });

    it("websocket: without a pong the connection is closed after pingTimeout", async () => {
      const socket = await openWs();
      await socket.next();
      assert.equal(await socket.next(SETTINGS.PING_INTERVAL_MS + 2000), "2");
      await socket.waitClosed(SETTINGS.PING_TIMEOUT_MS + 2000);
    });
  });

  describe("close", () => {
    it("polling: the client's close packet ends the session; a pending GET gets a noop", async () => {
      const sid = await openPolling();
      const pending = get(sid);
      const closing = await post(sid, "1");
      assert.equal(closing.body, "ok");
      const res = await pending;
      assert.deepEqual([res.status, res.body], [200, "6"]);
      assert.equal((await get(sid)).status, 400);
    });

    it("websocket: the client's close packet closes the connection", async () => {
      const socket = await openWs();
      await socket.next();
      socket.send("1");
      await socket.waitClosed();
    });
  });

  describe("upgrade", () => {
    it("polling to WebSocket: 2probe → 3probe, the pending poll ends with a noop, 5 moves the session", async () => {
      const sid = await openPolling();
      const pending = get(sid);
      const socket = await openWs(sid);
      socket.send("2probe");
      assert.equal(await socket.next(), "3probe");
      assert.equal((await pending).body, "6");
      socket.send("5");
      socket.send("4hello");
      assert.equal(await socket.next(), "4hello");
      socket.ws.close();
    });

    it("a poll sent after the probe's noop also ends at once, so the client can pause polling", async () => {
      // With a long pingInterval: the poll must not wait for the next ping. A client that had its
      // noop before it read "3probe" polls again (socket.io-client may; phasekit-load did), and could
      // not send "5" until that poll ended: the upgrade then timed out and its messages were lost.
      const slow = await startServer({ PING_INTERVAL_MS: "20000", PING_TIMEOUT_MS: "20000", UPGRADE_TIMEOUT_MS: "15000" });
      try {
        const open = await request(slow, "GET", `${EIO}&transport=polling`);
        const sid = JSON.parse(open.body.slice(1)).sid;
        const socket = openWebSocket(`${slow.wsUrl}${EIO}&transport=websocket&sid=${sid}`);
        await socket.opened;
        socket.send("2probe");
        assert.equal(await socket.next(), "3probe");
        const poll = () => request(slow, "GET", `${EIO}&transport=polling&sid=${sid}`);
        assert.equal((await poll()).body, "6");  // the noop the probe queued
        assert.equal((await withTimeout(poll(), 5000, "a poll during the upgrade")).body, "6");  // not 20 s
        socket.send("5");
        socket.send("4hello");
        assert.equal(await socket.next(), "4hello");
        socket.ws.close();
      } finally {
        await slow.stop();
      }
    });

    it("after the upgrade an HTTP GET with the sid gets 400 and the session stays", async () => {
      const { sid, socket } = await upgraded();
      const res = await get(sid);
      assert.equal(res.status, 400);
      assert.deepEqual(JSON.parse(res.body), { code: 3, message: "Bad request" });
      socket.send("4still-here");
      assert.equal(await socket.next(), "4still-here");
      socket.ws.close();
    });

    it("after the upgrade an HTTP POST with the sid gets 400 and is not delivered", async () => {
      const { sid, socket } = await upgraded();
      const res = await post(sid, "4by-polling");
      assert.equal(res.status, 400);
      assert.deepEqual(JSON.parse(res.body), { code: 3, message: "Bad request" });
      socket.send("4by-websocket");
      assert.equal(await socket.next(), "4by-websocket");  // not "4by-polling"
      socket.ws.close();
    });

    it("a second WebSocket with the sid of an upgraded session gets 400 Bad request and the session stays", async () => {
      const { sid, socket } = await upgraded();
      const second = openWebSocket(`${server.wsUrl}${EIO}&transport=websocket&sid=${sid}`);
      const refused = new Promise((resolve) => second.ws.once("unexpected-response", (req, res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode, body }));
      }));
      const { status, body } = await withTimeout(refused, 5000, "answer to the second WebSocket");
      assert.equal(status, 400);
      assert.deepEqual(JSON.parse(body), { code: 3, message: "Bad request" });
      socket.send("4still-here");
      assert.equal(await socket.next(), "4still-here");
      socket.ws.close();
    });

    it("a WebSocket session refuses polling requests with its sid", async () => {
      const socket = await openWs();
      const sid = JSON.parse((await socket.next()).slice(1)).sid;
      assert.equal((await get(sid)).status, 400);
      socket.send("4ok");
      assert.equal(await socket.next(), "4ok");
      socket.ws.close();
    });

    it("an upgrade not completed within upgradeTimeout is dropped and the polling session goes on", async () => {
      const sid = await openPolling();
      const socket = await openWs(sid);
      socket.send("2probe");
      assert.equal(await socket.next(), "3probe");
      const started = Date.now();
      let closed = false;
      const closing = socket.waitClosed().then(() => (closed = true));
      // The client never sends 5; it keeps the polling session alive by answering its pings.
      const pollUntil = async (done) => {
        for (let deadline = Date.now() + 5000; Date.now() < deadline; ) {
          const body = (await get(sid)).body;
          if (body.split("\x1e").includes("2")) assert.equal((await post(sid, "3")).body, "ok");
          if (done(body)) return true;
        }
        return false;
      };
      assert.ok(await pollUntil(() => closed), "the WebSocket was not closed");
      await withTimeout(closing, 1000, "close");
      assert.ok(Date.now() - started >= SETTINGS.UPGRADE_TIMEOUT_MS - 50, "closed before upgradeTimeout");
      assert.equal((await post(sid, "4still-polling")).body, "ok");
      assert.ok(await pollUntil((body) => body.includes("4still-polling")), "the polling session is gone");
    });

    it("an upgrade that fails before 5 leaves the polling session working", async () => {
      const sid = await openPolling();
      const socket = await openWs(sid);
      socket.send("2probe");
      assert.equal(await socket.next(), "3probe");
      socket.ws.terminate();
      await socket.waitClosed();
      assert.equal((await get(sid)).body, "6");  // the noop that was to end the poll
      await post(sid, "4polling-again");
      assert.equal((await get(sid)).body, "4polling-again");
    });
  });
});
