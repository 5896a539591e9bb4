// A client worker of the Socket.IO benches: one process holding up to ~13,000 Socket.IO WebSocket
// clients (socket.io-client, no reconnection, each its own connection) of one URL, all from one
// loopback source address, so several workers together hold more clients than one process's
// open-file limit (20,000 here) or one address's ephemeral ports (~28,000) allow.
// Started by bench/sio_fleet.js (sio_compare.js, sio_scale.js, sio_churn.js), not by hand:
//   child_process.fork("bench/sio_clients.js", [URL, SOURCE_ADDRESS, NICE])   e.g. http://127.0.0.1:4000 127.0.0.2 0
// Requests over IPC are {id, cmd, ...args}; each is answered {id, result} or {id, error}:
//   connect {count, batch=200}     count new clients, `batch` connecting at once → {connected, failed, failures}
//   load {rate, seconds, timeoutMs} `message` "echo hi" with an ack, `rate` per second open loop over the
//                                  clients; latency from the intended send time → {sent, errors, hist}
//   churn {perSecond, seconds}     close `perSecond` random clients and connect as many new ones each second
//                                  → {closed, connected, failed, failures, connectHist}
//   stats {}                       → {live, disconnects: {expected, unexpected}, rssKiB, fds}: every
//                                  `disconnect` by reason; expected = the ones this worker asked for
//   close {}                       closes every client and exits
// Latencies come back as a histogram (sio_fleet.js), not one number each. The worker exits when its
// parent goes away.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { performance } = require("node:perf_hooks");
const { io } = require(path.join(__dirname, "..", "tools", "node", "node_modules", "socket.io-client"));
const { Histogram, countInto } = require("./sio_fleet.js");

const [url, localAddress, nice] = process.argv.slice(2);
// A lower priority for workers that only hold idle clients (sio_scale.js): on a shared machine their
// garbage collector's bursts then wait for the server and the worker that measures, as clients on
// other machines would not compete with it at all.
if (Number(nice) > 0) require("node:os").setPriority(Number(nice));
if (!url || !localAddress || !process.send) {
  console.error("sio_clients.js is a worker of bench/sio_fleet.js: fork it with [URL, SOURCE_ADDRESS] and an IPC channel");
  process.exit(2);
}
const connectTimeoutMs = 20000;
// Stay clear of the open-file limit: the clients this worker holds, plus those churn opens before the
// closed ones are gone.
const maxClients = 19000;

const live = [];  // connected clients; each knows its index (swap-remove)
const disconnects = { expected: {}, unexpected: {} };
let connecting = 0;

function untrack(s) {
  if (s.slot < 0) return;
  const last = live.pop();
  if (last !== s) {
    live[s.slot] = last;
    last.slot = s.slot;
  }
  s.slot = -1;
}

// Why a connection failed, in a word: the socket error's code where there is one (ECONNREFUSED,
// EADDRNOTAVAIL, EMFILE…), else socket.io-client's message ("timeout", "websocket error").
function failureReason(err) {
  const d = err && err.description;
  const code = d && ((d.error && d.error.code) || d.code || (d.error && d.error.message) || d.message);
  return String(code || (err && err.message) || err);
}

// One new client: resolves null once connected (it is then in `live`), or the failure's reason.
function connectOne() {
  if (live.length + connecting >= maxClients) return Promise.resolve(`worker holds ${maxClients} already`);
  connecting++;
  return new Promise((resolve) => {
    const s = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, timeout: connectTimeoutMs, localAddress });
    s.slot = -1;
    s.closing = false;
    const onError = (err) => {
      connecting--;
      s.off("connect", onConnect);
      s.close();
      resolve(failureReason(err));
    };
    const onConnect = () => {
      connecting--;
      s.off("connect_error", onError);
      s.slot = live.length;
      live.push(s);
      s.on("disconnect", (reason) => {
        untrack(s);
        countInto(s.closing ? disconnects.expected : disconnects.unexpected, reason);
      });
      resolve(null);
    };
    s.once("connect", onConnect);
    s.once("connect_error", onError);
    // A `message` becomes a tool call awaiting its approval (phasekit), and a user holds at most
    // MAX_REQUESTS_PER_USER of those: the client denies each, as a user who declines would, so that
    // the call ends without running a tool and the next `message` is not refused. (Node's reference
    // server has no handler for the approval: it ignores it.)
    s.on("tool:request", (req) => {
      if (req && typeof req.callId === "string") s.emit("tool:approval", { callId: req.callId, approved: false });
    });
  });
}

function closeOne(s) {
  s.closing = true;
  s.disconnect();
}

async function connect({ count, batch = 200 }) {
  const out = { connected: 0, failed: 0, failures: {} };
  for (let i = 0; i < count; i += batch) {
    const results = await Promise.all(Array.from({ length: Math.min(batch, count - i) }, connectOne));
    for (const reason of results) {
      if (reason === null) out.connected++;
      else {
        out.failed++;
        countInto(out.failures, reason);
      }
    }
  }
  return out;
}

// Open loop: message i is due at began + i / rate; a timer tick sends every message due by then, on
// the clients in turn, and its latency runs from when it was due (no coordinated omission: a stalled
// server or client shows up).
function load({ rate, seconds, timeoutMs = 10000 }) {
  const total = Math.round(rate * seconds);
  const hist = new Histogram();
  const errors = {};
  let sent = 0;
  let pending = 0;
  let i = 0;
  let turn = 0;
  const interval = 1000 / rate;
  const began = performance.now();
  return new Promise((resolve) => {
    const finish = () => {
      if (i >= total && pending === 0) resolve({ sent, errors, hist: hist.toJSON() });
    };
    const tick = () => {
      const now = performance.now();
      // The message this tick was set for goes now even when the timer fired a little early (timers
      // have a resolution of 1 ms); its latency then runs from the actual send, as sio_compare.js has
      // always measured it.
      for (let first = true; i < total && (first || began + i * interval <= now); i++, first = false) {
        const due = Math.min(now, began + i * interval);
        if (live.length === 0) {
          countInto(errors, "no client connected");
          continue;
        }
        const s = live[turn++ % live.length];
        sent++;
        pending++;
        s.timeout(timeoutMs)
          .emitWithAck("message", "echo hi")
          .then(
            (ack) => {
              if (!ack || !ack.ok) countInto(errors, "ack not ok");
              hist.record(performance.now() - due);
            },
            (err) => countInto(errors, err && err.message ? err.message : String(err)),
          )
          .finally(() => {
            pending--;
            finish();
          });
      }
      if (i < total) setTimeout(tick, Math.max(0, began + i * interval - performance.now()));
      else finish();
    };
    tick();
  });
}

// Every 100 ms, as many clients closed (chosen at random) and new ones started as are due by then.
function churn({ perSecond, seconds }) {
  const total = Math.round(perSecond * seconds);
  const out = { closed: 0, connected: 0, failed: 0, failures: {} };
  const connectHist = new Histogram();
  const starts = [];
  let done = 0;
  const began = performance.now();
  return new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - began) / 1000) * perSecond));
      for (; done < due; done++) {
        if (live.length > 0) {
          closeOne(live[Math.floor(Math.random() * live.length)]);
          out.closed++;
        }
        const started = performance.now();
        starts.push(
          connectOne().then((reason) => {
            if (reason === null) {
              out.connected++;
              connectHist.record(performance.now() - started);
            } else {
              out.failed++;
              countInto(out.failures, reason);
            }
          }),
        );
      }
      if (done < total) setTimeout(tick, 100);
      else Promise.all(starts).then(() => resolve({ ...out, connectHist: connectHist.toJSON() }));
    };
    tick();
  });
}

function stats() {
  return {
    live: live.length,
    disconnects,
    rssKiB: Math.round(process.memoryUsage().rss / 1024),
    fds: fs.readdirSync("/proc/self/fd").length,
  };
}

const commands = { connect, load, churn, stats };

process.on("message", async ({ id, cmd, ...args }) => {
  if (cmd === "close") {
    for (const s of [...live]) closeOne(s);
    process.send({ id, result: {} }, () => setTimeout(() => process.exit(0), 200));
    return;
  }
  try {
    if (!commands[cmd]) throw new Error(`unknown command ${cmd}`);
    process.send({ id, result: await commands[cmd](args) });
  } catch (err) {
    process.send({ id, error: err && err.message ? err.message : String(err) });
  }
});
// The parent went away (its IPC channel closed): nothing to report to any more.
process.on("disconnect", () => process.exit(1));
