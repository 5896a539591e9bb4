// The server under attack from the network: another site's page driving it through a visitor's
// browser (finding 2: ALLOWED_ORIGINS, on polling, its preflight and the WebSocket upgrade alike),
// and one address, or everyone, opening connections and Engine.IO sessions without end (finding 4:
// MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS). Each test performs the attack on the real server.
"use strict";
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const net = require("node:net");
const { startServer, request, io, token, WebSocket } = require("./support.js");

const EVIL = "https://evil.example";
const APP = "https://app.example.com";

const HANDSHAKE = "/socket.io/?EIO=4&transport=polling";

/** A polling handshake; resolves the response (its sid in .sid when it opened a session). */
async function handshake(server, options = {}) {
  const res = await request(server, { path: HANDSHAKE, ...options });
  if (res.status === 200) res.sid = JSON.parse(res.body.slice(1)).sid;
  return res;
}

/** A raw Engine.IO WebSocket; resolves {opened: true, ws} or {status, body} when the upgrade is refused. */
function websocket(server, { origin, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`, {
      origin,
      localAddress,
    });
    const timer = setTimeout(() => reject(new Error("websocket: no answer")), 10000);
    ws.on("unexpected-response", (req, res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ opened: false, status: res.statusCode, body: data });
      });
    });
    ws.once("message", (data) => {
      clearTimeout(timer);
      assert.equal(String(data)[0], "0", "the open packet");
      resolve({ opened: true, ws });
    });
    ws.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function waitFor(what, predicate, timeoutMs = 10000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`${what} did not happen within ${timeoutMs} ms`);
}

function assertForbidden(res, what) {
  assert.equal(res.status, 403, `${what}: ${res.status} ${res.body}`);
  assert.deepEqual(JSON.parse(res.body), { code: 4, message: "Origin not allowed" }, what);
  if (res.headers) {
    assert.equal(res.headers["access-control-allow-origin"], undefined, `${what}: no CORS header`);
  }
}

describe("origins (ALLOWED_ORIGINS)", () => {
  it("refuses another site's page on every transport when ALLOWED_ORIGINS is empty", async () => {
    const server = await startServer();
    try {
      assertForbidden(await handshake(server, { headers: { Origin: EVIL } }), "polling handshake");
      // A session a client opened may not be driven by a page either (POST and GET with its sid).
      const own = await handshake(server);
      assert.equal(own.status, 200, "no Origin: a non-browser client is allowed");
      const path = `${HANDSHAKE}&sid=${own.sid}`;
      assertForbidden(await request(server, { method: "POST", path, headers: { Origin: EVIL }, body: "1" }), "POST");
      assertForbidden(await request(server, { path, headers: { Origin: EVIL } }), "GET");
      assertForbidden(
        await request(server, {
          method: "OPTIONS",
          path: HANDSHAKE,
          headers: { Origin: EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-evil" },
        }),
        "preflight",
      );
      assertForbidden(await websocket(server, { origin: EVIL }), "WebSocket upgrade");
      assertForbidden(await websocket(server, { origin: "null" }), "WebSocket upgrade from a sandboxed frame");
      // The same site (the page came from the host the request went to) is no cross-origin request.
      assert.equal((await handshake(server, { headers: { Origin: server.url } })).status, 200, "same origin");
      assert.equal((await websocket(server, { origin: server.url })).opened, true, "same-origin WebSocket");
    } finally {
      await server.stop();
    }
  });

  it("answers a listed site with credentials and a fixed preflight, never an echo", async () => {
    const server = await startServer({ ALLOWED_ORIGINS: `${APP}, http://localhost:5173` });
    try {
      const pre = await request(server, {
        method: "OPTIONS",
        path: HANDSHAKE,
        headers: {
          Origin: APP,
          "Access-Control-Request-Method": "POST",
          "Access-Control-Request-Headers": "x-evil, content-type",
        },
      });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers["access-control-allow-origin"], APP);
      assert.equal(pre.headers["access-control-allow-credentials"], "true");
      assert.equal(pre.headers["access-control-allow-headers"], "Content-Type");
      assert.equal(pre.headers["access-control-allow-methods"], "GET, POST");
      const open = await handshake(server, { headers: { Origin: APP } });
      assert.equal(open.status, 200);
      assert.equal(open.headers["access-control-allow-origin"], APP);
      assert.equal(open.headers.vary, "Origin");
      assert.equal((await websocket(server, { origin: "http://localhost:5173" })).opened, true);
      assertForbidden(await handshake(server, { headers: { Origin: "https://app.example.com.evil.example" } }), "suffix");
      assertForbidden(await handshake(server, { headers: { Origin: "http://app.example.com" } }), "other scheme");
      assertForbidden(await websocket(server, { origin: "http://localhost:5174" }), "other port");

      // socket.io-client as a page of the listed site: polling, then the upgrade to WebSocket.
      const socket = io(server.url, {
        reconnection: false,
        forceNew: true,
        auth: { token: token("page-user") },
        extraHeaders: { Origin: APP },
      });
      try {
        await new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no upgrade")), 10000);
          socket.on("connect_error", reject);
          socket.io.engine.on("upgrade", () => {
            clearTimeout(timer);
            resolve();
          });
        });
        assert.equal(socket.io.engine.transport.name, "websocket");
      } finally {
        socket.close();
      }
    } finally {
      await server.stop();
    }
  });

  it("lets any site in without credentials with ALLOWED_ORIGINS=*", async () => {
    const server = await startServer({ ALLOWED_ORIGINS: "*" });
    try {
      const open = await handshake(server, { headers: { Origin: EVIL } });
      assert.equal(open.status, 200);
      assert.equal(open.headers["access-control-allow-origin"], "*");
      assert.equal(open.headers["access-control-allow-credentials"], undefined);
    } finally {
      await server.stop();
    }
  });

  it("refuses to start with an ALLOWED_ORIGINS it cannot read", async () => {
    await assert.rejects(startServer({ ALLOWED_ORIGINS: "https://app.example.com/" }), /ALLOWED_ORIGINS=/);
  });
});

describe("connection limits (MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS)", () => {
  /** A TCP connection that sends nothing; resolves once connected. */
  function idleConnection(server, localAddress = "127.0.0.1") {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port: server.port, localAddress });
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
  }

  it("closes TCP connections past MAX_CONNECTIONS_PER_ADDRESS at accept; other addresses get in", async () => {
    const server = await startServer({ MAX_CONNECTIONS_PER_ADDRESS: "3" });
    const held = [];
    try {
      for (let i = 0; i < 3; ++i) held.push(await idleConnection(server));
      const extra = await idleConnection(server);
      const closed = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), 5000);
        extra.on("error", () => {});
        extra.once("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      extra.destroy();
      assert.ok(closed, "the fourth connection from 127.0.0.1 was closed by the server");
      assert.equal((await request(server, { path: "/health", localAddress: "127.0.0.2" })).status, 200,
        "127.0.0.2 has its own count");
      held.pop().destroy();
      await waitFor("a place for 127.0.0.1 again", async () => {
        try {
          return (await request(server, { path: "/health" })).status === 200;
        } catch {
          return false;
        }
      });
      const metrics = (await request(server, { path: "/metrics", admin: true })).body;
      assert.match(metrics, /phasekit_connections_refused_total\{kind="tcp",reason="max_connections_per_address"\} [1-9]/);
    } finally {
      for (const s of held) s.destroy();
      await server.stop();
    }
  });

  it("refuses handshakes past MAX_CONNECTIONS_PER_ADDRESS with 503: polling sessions count without a connection", async () => {
    const server = await startServer({ MAX_CONNECTIONS_PER_ADDRESS: "2" });
    // One keep-alive connection carries every request: only the sessions reach the limit.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await handshake(server, { agent });
      const second = await handshake(server, { agent });
      assert.deepEqual([first.status, second.status], [200, 200]);
      const third = await handshake(server, { agent });
      assert.equal(third.status, 503);
      assert.deepEqual(JSON.parse(third.body), { code: 4, message: "too many connections from this address" });
      const ws = await websocket(server);
      assert.equal(ws.status, 503, "a WebSocket session counts the same");
      assert.equal((await handshake(server, { localAddress: "127.0.0.2" })).status, 200, "another address");
      // A session that ends gives its place back.
      const closed = await request(server, { method: "POST", path: `${HANDSHAKE}&sid=${first.sid}`, body: "1", agent });
      assert.equal(closed.status, 200);
      await waitFor("a session place again", async () => (await handshake(server, { agent })).status === 200);
    } finally {
      agent.destroy();
      await server.stop();
    }
  });

  it("refuses handshakes past MAX_CONNECTIONS in all with 503 server is full", async () => {
    const server = await startServer({ MAX_CONNECTIONS: "2", MAX_CONNECTIONS_PER_ADDRESS: "0" });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await handshake(server, { agent })).status, 200);
      assert.equal((await handshake(server, { agent })).status, 200);
      const full = await handshake(server, { agent });
      assert.equal(full.status, 503);
      assert.deepEqual(JSON.parse(full.body), { code: 4, message: "server is full" });
      const metrics = (await request(server, { path: "/metrics", admin: true })).body;
      assert.match(metrics, /phasekit_connections_refused_total\{kind="session",reason="max_connections"\} 1\n/);
    } finally {
      agent.destroy();
      await server.stop();
    }
  });
});
