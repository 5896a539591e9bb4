// A tool against the process that runs it: the orchestrator started for real, as root and as an
// unprivileged user (tools then run as the same uid, the case where /proc would let them in), with
// and without a sandbox. Each test is an attack that must fail.
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { startServer, connect, runTool, SECRET } = require("./support.js");

const NOBODY = 65534;
const root = process.getuid() === 0;

/** A workspace root an unprivileged orchestrator may write. */
function workspaces(owner) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "phasekit-isolation-"));
  fs.chmodSync(dir, 0o711);
  if (owner !== undefined) fs.chownSync(dir, owner, owner);
  return dir;
}

// What a tool tries against the orchestrator whose pid it is given: its environment (AUTH_SECRET),
// its memory, its command line, and every process's environment it can see.
const attack = (pid) =>
  `cat /proc/${pid}/environ 2>/dev/null | tr '\\0' '\\n' | grep -c AUTH_SECRET; ` +
  `a=$(head -1 /proc/${pid}/maps 2>/dev/null | cut -d- -f1); ` +
  `echo mem:$( [ -n "$a" ] && dd if=/proc/${pid}/mem bs=4096 skip=$((0x$a / 4096)) count=1 2>/dev/null | wc -c); ` +
  `cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c ${SECRET}; true`;

// How many processes the tool sees, counted by the shell's own glob, which starts no process. (A count
// through `ls /proc | grep` raced itself: ls could read /proc before grep was forked.)
const countProcesses = "n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo $n";

test("as an unprivileged user with SANDBOX=none, a tool cannot read the orchestrator's environment or memory",
  { skip: !root && "needs root to start the orchestrator as another user" }, async () => {
    const ws = workspaces(NOBODY);
    const server = await startServer({ SANDBOX: "none", WORKSPACE_ROOT: ws }, { uid: NOBODY, gid: NOBODY });
    try {
      assert.ok(server.logs.some((l) => l.msg === "sandbox.none"), "SANDBOX=none is said at start");
      const socket = await connect(server, "mallory");
      const r = await runTool(socket, `id -u; ${attack(server.child.pid)}`);
      assert.strictEqual(r.exitCode, 0, JSON.stringify(r));
      // Same uid as the orchestrator, and still nothing: it is not dumpable.
      assert.strictEqual(r.output, `${NOBODY}\n0\nmem:\n0\n`, JSON.stringify(r));
      socket.close();
    } finally {
      await server.stop();
      fs.rmSync(ws, { recursive: true, force: true });
    }
  });

test("as an unprivileged user, the sandbox is a user namespace with no capabilities, no host processes, no new namespaces",
  { skip: !root && "needs root to start the orchestrator as another user" }, async () => {
    const ws = workspaces(NOBODY);
    const server = await startServer({ WORKSPACE_ROOT: ws }, { uid: NOBODY, gid: NOBODY });
    try {
      assert.ok(server.logs.some((l) => l.msg === "sandbox.ready"), "one sandbox made at start");
      const socket = await connect(server, "mallory");
      const r = await runTool(socket,
        `${attack(server.child.pid)}; grep CapEff /proc/self/status; ${countProcesses}; ` +
        `unshare -r true 2>/dev/null || echo no-userns; touch /etc/x 2>/dev/null || echo read-only; ` +
        `export KEPT=1; f() { echo fn; }`);
      assert.strictEqual(r.output,
        "0\nmem:\n0\nCapEff:\t0000000000000000\n2\nno-userns\nread-only\n", JSON.stringify(r));
      // The same shell answers the next call.
      assert.strictEqual((await runTool(socket, "echo $KEPT; f")).output, "1\nfn\n");
      socket.close();
    } finally {
      await server.stop();
      fs.rmSync(ws, { recursive: true, force: true });
    }
  });

test("as an unprivileged user, a user cannot plant code or sysctls for the next user of a reused backend",
  { skip: !root && "needs root to start the orchestrator as another user" }, async () => {
    const ws = workspaces(NOBODY);
    const server = await startServer(
      { WORKSPACE_ROOT: ws, ENABLE_CONTAINER_POOL: "true", POOL_MIN_SIZE: "1", POOL_MAX_SIZE: "1" },
      { uid: NOBODY, gid: NOBODY });
    try {
      // In the sandbox's user namespace the shell has the supervisor's uid: modes alone would let it
      // swap the supervisor's folder for one of its own, and change the namespaces' sysctls.
      const a = await connect(server, "mallory");
      const before = (await runTool(a, "cat /proc/sys/kernel/shmmni")).output;
      const tried = await runTool(a,
        "mv /run/phasekit /run/.orig 2>/dev/null && echo swapped; mkdir /run/phasekit 2>/dev/null && echo made; " +
        "{ echo 'echo PLANTED' > /run/phasekit/cmd; } 2>/dev/null && echo planted; " +
        "{ echo 1 > /proc/sys/kernel/shmmni; } 2>/dev/null && echo sysctl; echo tried");
      assert.strictEqual(tried.output, "tried\n", JSON.stringify(tried));
      a.close();
      const b = await connect(server, "bob");
      const r = await runTool(b, "echo hello; cat /proc/sys/kernel/shmmni");
      assert.strictEqual(r.output, `hello\n${before}`, JSON.stringify(r));
      b.close();
    } finally {
      await server.stop();
      fs.rmSync(ws, { recursive: true, force: true });
    }
  });

test("as root, sandboxed: the orchestrator is out of sight and tools run as nobody", async () => {
  const ws = workspaces();
  const server = await startServer({ WORKSPACE_ROOT: ws });
  try {
    const socket = await connect(server, "mallory");
    const r = await runTool(socket, `id -u; ${attack(server.child.pid)}; ${countProcesses}`);
    assert.strictEqual(r.output, `${root ? NOBODY : process.getuid()}\n0\nmem:\n0\n2\n`, JSON.stringify(r));
    socket.close();
  } finally {
    await server.stop();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test("a sandbox kind that silently fell back before is refused at start", () => {
  for (const value of ["auto", "bwrap", "unshare"]) {
    const r = spawnSync(process.env.ORCHESTRATOR_BIN, [], {
      env: { PATH: process.env.PATH, PORT: "0", SANDBOX: value },
      encoding: "utf8",
      timeout: 20000,
    });
    assert.strictEqual(r.status, 2, `SANDBOX=${value}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /SANDBOX/);
    assert.match(r.stderr, /namespaces\|none/);
  }
});
