#!/usr/bin/env bash
# Where an idle Socket.IO WebSocket connection's memory goes (issue 16): runs phasekit-orchestrator
# under heaptrack, opens N idle WebSocket clients (socket.io-client, loopback), holds them, stops the
# server with SIGTERM and prints heaptrack's peak consumers. Divide by N for the share per connection.
#   bench/idle_heap.sh [N=2000] [transports=websocket]
#   IDLE_HEAP_KEEP=DIR keeps heaptrack's file in DIR (heaptrack_print -f DIR/heap.*.zst --print-peaks 1 …
#   shows every peak's whole backtrace).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2000}"
transports="${2:-websocket}"
((n >= 1 && n <= 15000)) || { echo "idle_heap: N must be 1..15000" >&2; exit 2; }
command -v heaptrack >/dev/null || { echo "idle_heap: needs heaptrack (apt-get install heaptrack)" >&2; exit 2; }
out=$(mktemp -d)
trap '[[ -n "${IDLE_HEAP_KEEP:-}" ]] && mkdir -p "$IDLE_HEAP_KEEP" && cp "$out"/heap.* "$IDLE_HEAP_KEEP"/; rm -rf "$out"' EXIT
ADMIN_PORT=0 PORT=0 AUTH_MODE=none SESSION_GRACE_MS=0 MAX_CONNECTIONS_PER_ADDRESS=0 \
  heaptrack -o "$out/heap" build/bin/phasekit-orchestrator >"$out/server.log" 2>&1 &
tracer=$!
port=""
for _ in $(seq 200); do
  port=$(grep -o '"msg":"server.listening".*' "$out/server.log" | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2 || true)
  [[ -n "$port" ]] && break
  sleep 0.1
done
[[ -n "$port" ]] || { echo "idle_heap: the server did not start" >&2; cat "$out/server.log" >&2; kill "$tracer"; exit 1; }
node -e '
const { io } = require(process.argv[1]);
const [url, n, transports] = [process.argv[2], Number(process.argv[3]), process.argv[4].split(",")];
(async () => {
  const sockets = [];
  for (let i = 0; i < n; i += 200) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 200); j++)
      batch.push(new Promise((res, rej) => {
        const s = io(url, { transports, reconnection: false, forceNew: true });
        s.once("connect", () => res(s));
        s.once("connect_error", rej);
      }));
    sockets.push(...(await Promise.all(batch)));
  }
  console.log(`idle_heap: ${sockets.length} clients connected, holding 5 s`);
  await new Promise((r) => setTimeout(r, 5000));
  process.exit(0);
})().catch((e) => { console.error(e.message); process.exit(1); });
' "$PWD/tools/node/node_modules/socket.io-client" "http://127.0.0.1:$port" "$n" "$transports"
server=$(pgrep -P "$tracer" -f phasekit-orchestrator || pgrep -f "^$PWD/build/bin/phasekit-orchestrator" | head -1)
kill -TERM "$server"
wait "$tracer" || true
# Each peak with the frames under it, the first phasekit frame being the one that says who holds it.
heaptrack_print -f "$out"/heap.*zst --print-peaks 1 --print-allocators 0 --print-temporary 0 --print-leaks 0 \
  --peak-limit 20 --sub-peak-limit 0 2>/dev/null |
  awk '/peak memory consumed/ { if (head) print head " <- " (who ? who : first); head = $0; who = ""; first = ""; next }
       head && /^[a-zA-Z_].*\(/ { if (!first) first = $0; if (!who && /phasekit::/) who = $0 }
       END { if (head) print head " <- " (who ? who : first) }' | cut -c1-240
heaptrack_print -f "$out"/heap.*zst 2>/dev/null | grep -E "peak heap memory|peak RSS"
