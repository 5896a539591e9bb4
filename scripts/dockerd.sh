#!/usr/bin/env bash
# A private Docker daemon of its own under DIR: data-root, exec-root, pidfile, socket and log, so
# nothing touches (or needs) the host's daemon, and it is stopped by its PID, never by name.
#   scripts/dockerd.sh start DIR          start it; prints the line export DOCKER_HOST=unix://DIR/docker.sock
#   scripts/dockerd.sh stop DIR           SIGTERM to the PID in DIR/dockerd.pid, SIGKILL after 30 s
#   scripts/dockerd.sh run DIR -- CMD…    start it, run CMD with DOCKER_HOST set, stop it; CMD's status
# The daemon keeps its default bridge and iptables (compose stacks get their networks). Run as root.
# DIR keeps the images between runs (DIR/root); delete it for a clean slate once stopped.
set -euo pipefail

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "dockerd.sh: $*" >&2
  exit 1
}

# Debian's client (docker.io 20.10): the newer one first on PATH here needs buildx for BuildKit.
DOCKER_CLIENT="${DOCKER_CLIENT:-/usr/bin/docker}"
START_TIMEOUT_S="${DOCKERD_START_TIMEOUT_S:-60}"

(($# >= 2)) || usage
cmd="$1"
dir="$2"
shift 2
[[ -n "$dir" ]] || die "DIR is empty"
if [[ -d "$dir" ]]; then dir="$(cd "$dir" && pwd)"; fi

pid_of() {  # the daemon's PID, if DIR/dockerd.pid names a live dockerd
  local pid
  [[ -f "$dir/dockerd.pid" ]] || return 1
  pid="$(cat "$dir/dockerd.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] || return 1
  echo "$pid"
}

start() {
  command -v dockerd >/dev/null || die "dockerd not found: install docker.io (scripts/setup.sh)"
  [[ -x "$DOCKER_CLIENT" ]] || die "$DOCKER_CLIENT not found: install docker.io (scripts/setup.sh)"
  [[ $(id -u) -eq 0 ]] || die "dockerd needs root"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  # unix sockets: 108 bytes at most, containerd's under exec-root included.
  ((${#dir} <= 60)) || die "DIR is too long for the daemon's sockets (${#dir} > 60 characters): $dir"
  if pid="$(pid_of)"; then
    echo "dockerd.sh: already running in $dir (PID $pid)" >&2
    echo "export DOCKER_HOST=unix://$dir/docker.sock"
    return 0
  fi
  rm -f "$dir/dockerd.pid" "$dir/docker.sock"
  mkdir -p "$dir/root" "$dir/exec"
  # setsid: the daemon is not in the caller's process group, so a ctest timeout's kill reaches the
  # test (whose trap stops the daemon by PID) and not the daemon half-way.
  setsid dockerd --data-root "$dir/root" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "unix://$dir/docker.sock" >"$dir/dockerd.log" 2>&1 </dev/null &
  local launched=$! deadline=$((SECONDS + START_TIMEOUT_S))
  until DOCKER_HOST="unix://$dir/docker.sock" "$DOCKER_CLIENT" version >/dev/null 2>&1; do
    if ! kill -0 "$launched" 2>/dev/null; then
      tail -20 "$dir/dockerd.log" >&2
      die "dockerd exited during start-up (log: $dir/dockerd.log)"
    fi
    if ((SECONDS >= deadline)); then
      kill -TERM "$launched" 2>/dev/null || true
      tail -20 "$dir/dockerd.log" >&2
      die "dockerd did not answer within ${START_TIMEOUT_S} s (log: $dir/dockerd.log)"
    fi
    sleep 0.2
  done
  echo "export DOCKER_HOST=unix://$dir/docker.sock"
}

stop() {
  local pid
  if ! pid="$(pid_of)"; then
    echo "dockerd.sh: no dockerd running in $dir" >&2
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "dockerd.sh: dockerd $pid still running after 30 s: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  # containerd's shims end with the containers; a daemon killed hard may leave its mounts behind.
  if grep -q " $dir/" /proc/mounts; then
    grep " $dir/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  fi
}

case "$cmd" in
  start) (($# == 0)) || usage; start ;;
  stop) (($# == 0)) || usage; stop ;;
  run)
    [[ "${1:-}" == "--" ]] || usage
    shift
    (($# > 0)) || usage
    line="$(start)"
    trap stop EXIT
    status=0
    env DOCKER_HOST="${line#export DOCKER_HOST=}" "$@" || status=$?
    exit "$status"
    ;;
  *) usage ;;
esac
