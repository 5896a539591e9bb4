#!/usr/bin/env bash
# The phase 2/3 topology on one machine, as plain processes on loopback: redis-server, N orchestrators,
# M phasekit-workers and nginx in front of the orchestrators.
#
#   deploy/local/phasekit-local.sh start [-n ORCHESTRATORS] [-m WORKERS] [--phase 2|3] [--dir DIR] [--bin DIR]
#   deploy/local/phasekit-local.sh stop [--dir DIR]
#   deploy/local/phasekit-local.sh status [--dir DIR]
#
# Phase 2 (default): the orchestrators run tool calls themselves; sessions and conversations live in
# redis, so a client whose instance dies resumes its session on another one. Phase 3: the orchestrators
# queue tool calls in redis and the workers run them (ENABLE_WORKER_MODE=true). Settings of the
# environment (AUTH_MODE, POOL_MIN_SIZE, LOG_LEVEL, …) reach every process.
#
# The balancer is nginx without stickiness (round robin, next upstream on error), so clients must use
# the websocket transport only (socket.io-client: transports: ["websocket"]); long-polling needs a
# sticky balancer (docs/operations.md). Everything binds 127.0.0.1 on free ports; `start` prints them
# and writes them to DIR/state.env. Logs: DIR/*.log. `stop` stops every process by its pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

cmd=${1:-}
[[ -n "$cmd" ]] && shift
orchestrators=2
workers=2
phase=2
dir=${TMPDIR:-/tmp}/phasekit-local
bin=$root/build/bin
while (($# > 0)); do
  case "$1" in
    -n) orchestrators=$2; shift 2 ;;
    -m) workers=$2; shift 2 ;;
    --phase) phase=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "phasekit-local: unknown argument $1" >&2; exit 2 ;;
  esac
done

started=()  # pids to kill when start fails half-way
die() {
  local p
  for p in "${started[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  echo "phasekit-local: $*" >&2
  exit 1
}

# Waits until GET http://127.0.0.1:$1$2 answers 200, up to $3 seconds.
wait_http() {
  local deadline=$((SECONDS + $3))
  until curl -fsS -o /dev/null "http://127.0.0.1:$1$2" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

stop_all() {
  [[ -f "$dir/state.env" ]] || { echo "phasekit-local: nothing running in $dir"; return 0; }
  # shellcheck disable=SC1091
  source "$dir/state.env"
  local pid
  for pid in $NGINX_PID $ORCHESTRATOR_PIDS $WORKER_PIDS $REDIS_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  local deadline=$((SECONDS + 30))
  for pid in $NGINX_PID $ORCHESTRATOR_PIDS $WORKER_PIDS $REDIS_PID; do
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  done
  rm -f "$dir/state.env"
  echo "phasekit-local: stopped"
}

case "$cmd" in
  stop) stop_all; exit 0 ;;
  status)
    [[ -f "$dir/state.env" ]] || { echo "not running"; exit 1; }
    cat "$dir/state.env"; exit 0 ;;
  start) ;;
  *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

[[ "$phase" == 2 || "$phase" == 3 ]] || die "--phase must be 2 or 3"
[[ -f "$dir/state.env" ]] && die "already running in $dir (stop it first)"
for b in phasekit-orchestrator phasekit-worker; do
  [[ -x "$bin/$b" ]] || die "$bin/$b not found (build first, or pass --bin)"
done
command -v redis-server >/dev/null || die "redis-server not installed (./scripts/setup.sh)"
command -v nginx >/dev/null || die "nginx not installed (./scripts/setup.sh)"
mkdir -p "$dir/workspaces" "$dir/nginx-tmp"
chmod 711 "$dir" "$dir/workspaces"
chmod 777 "$dir/nginx-tmp"

# Free loopback ports, asked of the kernel.
# redis, the balancer, then PORT and ADMIN_PORT of each orchestrator and worker.
count=$((2 + 2 * (orchestrators + workers)))
read -r -a ports <<<"$(node -e '
  const net = require("net"); const n = +process.argv[1]; const servers = []; const ports = [];
  (function next() {
    if (ports.length === n) { servers.forEach((s) => s.close()); console.log(ports.join(" ")); return; }
    const s = net.createServer(); servers.push(s);
    s.listen(0, "127.0.0.1", () => { ports.push(s.address().port); next(); });
  })();' "$count")"
redis_port=${ports[0]}
lb_port=${ports[1]}

trap 'die "failed at line $LINENO"' ERR

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$dir" >"$dir/redis.log" 2>&1 &
redis_pid=$!
started+=("$redis_pid")
deadline=$((SECONDS + 10))
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do
  ((SECONDS < deadline)) || die "redis-server did not start (see $dir/redis.log)"
  sleep 0.05
done

export REDIS_URL="redis://127.0.0.1:$redis_port"
export WORKSPACE_ROOT="$dir/workspaces"
export BIND_ADDRESS=127.0.0.1
# Every client comes through nginx (one address): no per-address limit in the orchestrators.
export MAX_CONNECTIONS_PER_ADDRESS=0
export ENABLE_CONTAINER_POOL=${ENABLE_CONTAINER_POOL:-true}
if [[ "$phase" == 3 ]]; then
  export ENABLE_WORKER_MODE=true
fi

orch_ports=()
orch_admin_ports=()
orch_pids=()
for ((i = 0; i < orchestrators; i++)); do
  port=${ports[$((2 + 2 * i))]}
  admin_port=${ports[$((3 + 2 * i))]}
  PORT=$port ADMIN_PORT=$admin_port "$bin/phasekit-orchestrator" >"$dir/orchestrator-$i.log" 2>&1 &
  orch_pids+=($!)
  started+=($!)
  orch_ports+=("$port")
  orch_admin_ports+=("$admin_port")
done
worker_ports=()
worker_admin_ports=()
worker_pids=()
if [[ "$phase" == 3 ]]; then
  for ((i = 0; i < workers; i++)); do
    port=${ports[$((2 + 2 * (orchestrators + i)))]}
    admin_port=${ports[$((3 + 2 * (orchestrators + i)))]}
    PORT=$port ADMIN_PORT=$admin_port "$bin/phasekit-worker" >"$dir/worker-$i.log" 2>&1 &
    worker_pids+=($!)
    started+=($!)
    worker_ports+=("$port")
    worker_admin_ports+=("$admin_port")
  done
fi
for port in "${orch_ports[@]}" "${worker_ports[@]}"; do
  wait_http "$port" /ready 60 || die "the process on port $port did not become ready (see $dir/*.log)"
done

upstreams=""
for port in "${orch_ports[@]}"; do
  upstreams+="    server 127.0.0.1:$port max_fails=1 fail_timeout=5s;"$'\n'
done
cat >"$dir/nginx.conf" <<NGINX
worker_processes auto;
worker_rlimit_nofile 20000;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 19000; }  # a proxied WebSocket holds 2: about 9,500 clients per worker
http {
  access_log off;
  client_body_temp_path $dir/nginx-tmp/body;
  proxy_temp_path $dir/nginx-tmp/proxy;
  fastcgi_temp_path $dir/nginx-tmp/fastcgi;
  uwsgi_temp_path $dir/nginx-tmp/uwsgi;
  scgi_temp_path $dir/nginx-tmp/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  upstream orchestrators {
$upstreams  }
  server {
    listen 127.0.0.1:$lb_port;
    location / {
      proxy_pass http://orchestrators;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_connect_timeout 2s;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_next_upstream error timeout;
    }
  }
}
NGINX
nginx -t -q -c "$dir/nginx.conf" 2>"$dir/nginx-error.log" || die "nginx -t failed: $(cat "$dir/nginx-error.log")"
nginx -c "$dir/nginx.conf" </dev/null >"$dir/nginx.log" 2>&1 &
nginx_pid=$!
started+=("$nginx_pid")
wait_http "$lb_port" /health 10 || die "nginx did not start (see $dir/nginx-error.log)"
trap - ERR

cat >"$dir/state.env" <<STATE
LB_URL=http://127.0.0.1:$lb_port
LB_PORT=$lb_port
REDIS_PORT=$redis_port
REDIS_URL=$REDIS_URL
ORCHESTRATOR_PORTS="${orch_ports[*]}"
ORCHESTRATOR_ADMIN_PORTS="${orch_admin_ports[*]}"
ORCHESTRATOR_PIDS="${orch_pids[*]}"
WORKER_PORTS="${worker_ports[*]}"
WORKER_ADMIN_PORTS="${worker_admin_ports[*]}"
WORKER_PIDS="${worker_pids[*]}"
REDIS_PID=$redis_pid
NGINX_PID=$nginx_pid
WORKSPACE_ROOT=$WORKSPACE_ROOT
PHASE=$phase
STATE
echo "phasekit-local: phase $phase, $orchestrators orchestrator(s), ${#worker_pids[@]} worker(s) behind http://127.0.0.1:$lb_port"
echo "phasekit-local: state in $dir/state.env; stop with: $0 stop --dir $dir"
