// The live failover check of tests/live/compose_phase2.sh, with the official socket.io-client:
//   node failover.js LB_URL TRANSPORT
// A user connects through the balancer (TRANSPORT: websocket or polling, through HAProxy's cookie),
// leaves files, a cwd and an export behind, then the orchestrator holding its socket is killed
// (docker kill, by the shell script: this script prints "KILL <container>" and waits for a line on
// stdin). The user must reconnect through the balancer, resume its session (socket.recovered) on
// another orchestrator, and find its files, cwd, exports and conversation history.
// Which orchestrator holds the socket: the one whose /metrics counts a session (ADMIN_PORT 3001, on
// the containers' addresses, which this host reaches on the project's bridge network). The
// containers and their addresses come as JSON on the environment: ORCHESTRATORS=[{id, ip}, ...].
"use strict";
const assert = require("node:assert");
const readline = require("node:readline");
const { io, runTool } = require("../interop/support.js");
const { waitFor } = require("../support/node/server_process.js");

const [url, transport] = process.argv.slice(2);
if (!url || !["websocket", "polling"].includes(transport)) {
  console.error("usage: node failover.js LB_URL websocket|polling");
  process.exit(2);
}
const orchestrators = JSON.parse(process.env.ORCHESTRATORS || "[]");
assert.ok(orchestrators.length >= 2, `ORCHESTRATORS must list at least two: ${process.env.ORCHESTRATORS}`);

async function sessions(ip) {
  try {
    const res = await fetch(`http://${ip}:3001/metrics`, { signal: AbortSignal.timeout(3000) });
    const line = (await res.text()).split("\n").find((l) => l.startsWith("phasekit_sessions "));
    return line === undefined ? undefined : Number(line.split(" ")[1]);
  } catch {
    return undefined;
  }
}


const stdin = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdin.once("line", resolve));

async function main() {
  // The load before this leaves sessions behind until their clients' grace ends: wait for none, so
  // that the one session counted next is this user's.
  await waitFor(async () => {
    const counts = await Promise.all(orchestrators.map((o) => sessions(o.ip)));
    return counts.every((n) => n === 0);
  }, 150000, "every orchestrator to count no session before the user connects", 500);
  const socket = io(url, {
    transports: [transport],
    upgrade: false,
    forceNew: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    // HAProxy's stickiness cookie: Node's socket.io-client keeps cookies with withCredentials.
    withCredentials: true,
  });
  try {
    await waitFor(() => socket.connected, 15000, "the first connection through the balancer");
    const marker = `m${process.pid}${Date.now()}`;
    const first = await runTool(socket,
      `mkdir -p work/deep && cd work/deep && export PROJECT=${marker} && echo kept > note.txt && echo done`, 30000);
    assert.strictEqual(first.exitCode, 0, JSON.stringify(first));
    assert.strictEqual(first.output, "done\n");

    // Our client is the only one: the holder is the orchestrator that counts one session.
    const holder = await waitFor(async () => {
      const counts = await Promise.all(orchestrators.map((o) => sessions(o.ip)));
      const i = counts.findIndex((n) => n === 1);
      return i >= 0 && counts.filter((n) => n === 1).length === 1 ? orchestrators[i] : undefined;
    }, 15000, "the orchestrator holding the session");

    let timer;
    const reconnected = new Promise((resolve, reject) => {
      socket.io.once("reconnect", resolve);
      timer = setTimeout(() => reject(new Error("no reconnect within 60 s of the kill")), 60000);
    });
    console.log(`KILL ${holder.id}`);
    const answer = await nextLine();
    assert.strictEqual(answer, "KILLED", `the kill failed: ${answer}`);
    await reconnected.finally(() => clearTimeout(timer));
    await waitFor(() => socket.connected, 15000, "the socket to connect again");
    assert.strictEqual(socket.recovered, true, "the server did not resume the session (pid)");

    const others = orchestrators.filter((o) => o.id !== holder.id);
    const counts = await Promise.all(others.map((o) => sessions(o.ip)));
    assert.strictEqual(counts.filter((n) => n === 1).length, 1,
      `the session is not on exactly one of the other orchestrators: ${JSON.stringify(counts)}`);

    const after = await runTool(socket, 'printf "%s|%s|%s" "${PWD#$HOME/}" "$PROJECT" "$(cat note.txt)"', 30000);
    assert.strictEqual(after.exitCode, 0, JSON.stringify(after));
    assert.strictEqual(after.output, `work/deep|${marker}|kept`);

    const history = await socket.timeout(10000).emitWithAck("session:history");
    assert.strictEqual(history.ok, true, JSON.stringify(history));
    const messages = history.entries.filter((e) => e.role === "user").map((e) => e.message);
    assert.strictEqual(messages.length, 2, JSON.stringify(history.entries));
    assert.ok(messages[0].startsWith("mkdir -p work/deep"), JSON.stringify(history.entries));
    const results = history.entries.filter((e) => e.role === "tool").map((e) => e.result.output);
    assert.deepStrictEqual(results, ["done\n", `work/deep|${marker}|kept`]);
    console.log(`ok ${transport}: session resumed on another orchestrator with its files, cwd, exports and history`);
  } finally {
    socket.close();
    stdin.close();
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
