#!/usr/bin/env bash
# The redis queue's end-to-end throughput beside redis-benchmark's LPUSH/BRPOP on this machine, in one
# run: ./bench/queue_throughput.sh [build-dir]. Loopback only; every server it starts is stopped by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
pay=$(head -c 192 /dev/zero | base64 -w0)
echo "redis-benchmark (redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), 25 clients, 100000 ops, 256-byte values):"
redis-benchmark -p "$port" -c 25 -n 100000 -q LPUSH q:jobs "$pay"
redis-benchmark -p "$port" -c 25 -n 100000 -q BRPOP q:jobs 1
# A producer and a consumer at once on an empty list: BRPOP really blocks (a queue's steady state).
start=$(date +%s.%N)
redis-benchmark -p "$port" -c 25 -n 100000 -q BRPOP q:live 1 >/dev/null &
consumer=$!
redis-benchmark -p "$port" -c 25 -n 100000 -q LPUSH q:live "$pay" >/dev/null
wait $consumer
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" \
  'BEGIN { printf "LPUSH producer + BRPOP consumer together: 100000 jobs in %.2f s = %.0f jobs/s\n", e - s, 100000 / (e - s) }'
echo "phasekit queue=redis, 4 phasekit-workers (one SIGKILLed a fifth of the way, holding 10 jobs), 10000 write_file jobs:"
"$build/tests/queue_reliability_test" --gtest_brief=1 | grep '^queue:'
