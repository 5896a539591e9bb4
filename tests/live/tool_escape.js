// The attack of a user inside the deployed stack: one tool call, through the balancer, that tries
// what an unsandboxed tool could do in the orchestrator's container: read its environment (its own,
// PID 1's, every process's) and reach redis by name on the stack's network. Prints the tool's output
// and exit code as JSON; the live test looks in it for the stack's secrets and for a connection.
//   node tests/live/tool_escape.js LB_URL
"use strict";
const path = require("node:path");
const { io } = require(path.join(process.env.PHASEKIT_NODE_MODULES, "socket.io-client"));

const url = process.argv[2];
if (!/^https?:\/\/(127\.|localhost|\[::1\])/.test(url || "")) {
  console.error("tool_escape.js: a loopback URL only");
  process.exit(2);
}
const command = [
  "echo '--- env'; env",
  "echo '--- /proc/1/environ'; tr '\\0' '\\n' < /proc/1/environ",
  "echo '--- every environ'; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$f\"; done 2>/dev/null",
  "echo '--- processes'; ls /proc | grep -c '^[0-9]'",
  "echo '--- redis'; (exec 3<>/dev/tcp/redis/6379 && echo REACHED-REDIS && printf 'PING\\r\\n' >&3 && timeout 2 head -c 16 <&3; echo) 2>&1",
  "true",
].join("; ");

const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
const timer = setTimeout(() => {
  console.error("tool_escape.js: no tool:result within 60 s");
  process.exit(1);
}, 60000);
socket.on("connect_error", (e) => {
  console.error(`tool_escape.js: ${e.message}`);
  process.exit(1);
});
socket.on("tool:request", async (req) => {
  const ack = await socket.timeout(10000).emitWithAck("tool:approval", { callId: req.callId, approved: true });
  if (!ack.ok) {
    console.error(`tool_escape.js: approval refused: ${JSON.stringify(ack)}`);
    process.exit(1);
  }
});
socket.on("tool:result", (r) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ exitCode: r.exitCode, output: r.output, error: r.error ?? null }));
  socket.close();
  process.exit(0);
});
socket.on("connect", async () => {
  const ack = await socket.timeout(10000).emitWithAck("message", command);
  if (!ack.ok) {
    console.error(`tool_escape.js: message refused: ${JSON.stringify(ack)}`);
    process.exit(1);
  }
});
