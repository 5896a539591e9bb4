#!/usr/bin/env bash
# Capacity/latency regression gate for CI: runs a short fixed scenario (scenarios/regression.yml,
# 10 s at 5 users/s, loopback only) with phasekit-load against the orchestrator built from this tree, and
# compares the report with a baseline using `phasekit-load compare`. Exit 0: no regression;
# 1: a regression (or a run that failed its own checks); 2: usage or build error.
#
#   scripts/capacity-regression.sh                      # baseline: HEAD~1, built and measured now
#   scripts/capacity-regression.sh --against stored     # baseline: scenarios/baseline.json
#   scripts/capacity-regression.sh --write-baseline     # measure this tree, store it as the baseline
#
# "previous" (the default) exports --rev (HEAD~1) with `git archive` into a temporary folder under
# the build folder (a detached copy: unlike `git worktree add` it registers nothing in the
# repository, so an interrupted run leaves no stale worktree) and builds its orchestrator and
# plugins in <copy>/build. Both trees are built with ccache's base dir at their root and without
# the working-directory hash, so their compile commands are identical and a file unchanged since
# --rev is a cache hit (in CI, the previous run built that commit as its "current"; the very first
# run compiles it all). Both orchestrators are measured with this tree's phasekit-load (the same
# instrument), alternating baseline/current for --rounds rounds; each side's reports are merged
# exactly (`phasekit-load merge`) before the comparison. Both measurements share the machine and
# the minutes, which is what makes a tolerance meaningful on a noisy 2-core box. A stored baseline
# compares against another day (and maybe another machine): use a wider tolerance.
#
# Options:
#   --against previous|stored   baseline source (default previous)
#   --rev REV                   commit of the baseline in "previous" mode (default HEAD~1)
#   --baseline FILE             stored baseline (default scenarios/baseline.json)
#   --scenario FILE             scenario (default scenarios/regression.yml)
#   --rounds N                  measurements per side, alternating (default 2)
#   --max-regression PCT        latency may rise / throughput fall by this much (default 25%)
#   --metrics LIST              metrics to compare (default: response p95/p99, connect p95, session
#                               length p50, error_rate, emit rate)
#   --min-delta-ms MS           latency changes below this never count (default 5: scheduling noise
#                               of a shared 2-core machine; compare's own default is 1)
#   --build-dir DIR             this tree's build (default build; configured with the release preset if missing)
#   --no-build                  use the binaries in --build-dir as they are
#   --out-dir DIR               keep every report there (default: a temporary folder, removed)
#   --write-baseline            measure this tree and write --baseline; no comparison
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

against=previous
rev=HEAD~1
baseline="scenarios/baseline.json"
scenario="scenarios/regression.yml"
rounds=2
max_regression="25%"
min_delta_ms=5
# p50 of socketio.response_time sits between the fast message acks and the slower tool results
# (half the samples each), so it jumps between them: the median of a whole session is used instead.
metrics="socketio.response_time.p95,socketio.response_time.p99,socketio.connect_time.p95,vusers.session_length.p50,error_rate,socketio.emit_rate"
build_dir="build"
do_build=1
out_dir=""
write_baseline=0

usage() { sed -n '2,/^set -uo pipefail/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { echo "capacity-regression: $*" >&2; exit 2; }

while (($# > 0)); do
  case "$1" in
    --against) against="${2:?}"; shift 2 ;;
    --rev) rev="${2:?}"; shift 2 ;;
    --baseline) baseline="${2:?}"; shift 2 ;;
    --scenario) scenario="${2:?}"; shift 2 ;;
    --rounds) rounds="${2:?}"; shift 2 ;;
    --max-regression) max_regression="${2:?}"; shift 2 ;;
    --metrics) metrics="${2:?}"; shift 2 ;;
    --min-delta-ms) min_delta_ms="${2:?}"; shift 2 ;;
    --build-dir) build_dir="${2:?}"; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --out-dir) out_dir="${2:?}"; shift 2 ;;
    --write-baseline) write_baseline=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$against" == previous || "$against" == stored ]] || die "--against $against: expected previous or stored"
[[ "$rounds" =~ ^[1-9][0-9]?$ ]] || die "--rounds $rounds: expected 1..99"
[[ -f "$scenario" ]] || die "scenario $scenario not found"
build_dir="$(realpath -m "$build_dir")"

work="$(mktemp -d "${TMPDIR:-/tmp}/capacity-regression.XXXXXX")"
[[ -n "$out_dir" ]] && { mkdir -p "$out_dir" || die "cannot create $out_dir"; out_dir="$(realpath "$out_dir")"; }
reports="${out_dir:-$work}"
pids=()
prev_parent=""
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  [[ -n "$prev_parent" ]] && rm -rf "$prev_parent"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# build SOURCE_DIR BUILD_DIR: the orchestrator (and phasekit-load for this tree) with the plugins.
build() {
  local src="$1" dir="$2" targets=(phasekit-orchestrator phasekit_pool_warm)
  [[ "$src" == "$ROOT" ]] && targets+=(phasekit-load)
  if [[ ! -f "$dir/CMakeCache.txt" ]]; then
    cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache \
      -DPHASEKIT_BUILD_TESTS=OFF -DPHASEKIT_BUILD_BENCH=OFF >"$work/configure.log" 2>&1 ||
      { cat "$work/configure.log" >&2; return 1; }
  fi
  nice -n 10 cmake --build "$dir" --target "${targets[@]}" >"$work/build.log" 2>&1 ||
    { tail -30 "$work/build.log" >&2; return 1; }
}

# measure ORCHESTRATOR_BIN REPORT: start it on a free loopback port (pool=warm, so the figures are
# the server's and not a sandbox's start), run the scenario, stop it by PID.
measure() {
  local bin="$1" report="$2" log="$work/orchestrator.$$.$RANDOM.log" pid port rc
  ENABLE_CONTAINER_POOL=true POOL_MIN_SIZE=20 PORT=0 ADMIN_PORT=0 MAX_CONNECTIONS_PER_ADDRESS=0 BIND_ADDRESS=127.0.0.1 LOG_LEVEL=info "$bin" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do grep -q '"msg":"server.listening"' "$log" && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  port="$(grep -o '"msg":"server.listening".*' "$log" | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2)"
  [[ -n "$port" ]] || { echo "capacity-regression: $bin did not start:" >&2; cat "$log" >&2; return 2; }
  for _ in $(seq 200); do curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  "$HARNESS" run "$scenario" --target "http://127.0.0.1:$port" --quiet --seed 1 -o "$report" >"$report.txt" 2>&1
  rc=$?
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  grep -E '^(  socketio.response_time |  vusers:)' "$report.txt" | sed "s|^|  $(basename "$report" .json): |"
  # 1 is "the scenario's own checks failed": still a measurement, compare decides. 2+: no report.
  ((rc <= 1)) && [[ -s "$report" ]]
}

if ((do_build)); then
  if [[ ! -f "$build_dir/CMakeCache.txt" && "$build_dir" == "$ROOT/build" ]]; then
    cmake --preset release >/dev/null || die "cmake --preset release failed"
  fi
  echo "capacity-regression: building this tree in $build_dir"
  CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1 build "$ROOT" "$build_dir" || die "build of this tree failed"
fi
CURRENT_BIN="$build_dir/bin/phasekit-orchestrator"
HARNESS="$build_dir/bin/phasekit-load"
[[ -x "$CURRENT_BIN" && -x "$HARNESS" ]] || die "no phasekit-orchestrator/phasekit-load in $build_dir/bin (build first)"

if ((write_baseline)); then
  reps=()
  for i in $(seq "$rounds"); do
    measure "$CURRENT_BIN" "$reports/current-$i.json" || exit 1
    reps+=("$reports/current-$i.json")
  done
  "$HARNESS" merge "${reps[@]}" -o "$baseline" >/dev/null || exit 1
  echo "capacity-regression: wrote $baseline ($rounds run(s) of $scenario, merged)"
  exit 0
fi

PREV_BIN=""
if [[ "$against" == previous ]]; then
  commit="$(git -C "$ROOT" rev-parse --verify --quiet "$rev^{commit}")" || die "--rev $rev is not a commit"
  mkdir -p "$build_dir" || die "cannot create $build_dir"
  prev_parent="$(mktemp -d "$build_dir/capacity-regression-prev.XXXXXX")"
  prev_tree="$prev_parent"
  git -C "$ROOT" archive "$commit" | tar -x -C "$prev_tree" || die "git archive $rev failed"
  echo "capacity-regression: building $rev ($(git -C "$ROOT" log -1 --format='%h %s' "$commit" | cut -c1-70))"
  # The copy's build folder sits where this tree's does (<tree>/build), so both compile with the same
  # relative paths; with ccache's base dir at each tree's root and no cwd hash, a file unchanged
  # since $rev is a cache hit (after the first run: CI's previous run built $rev as its "current").
  CCACHE_BASEDIR="$prev_tree" CCACHE_NOHASHDIR=1 build "$prev_tree" "$prev_tree/build" || die "build of $rev failed"
  PREV_BIN="$prev_tree/build/bin/phasekit-orchestrator"
else
  [[ -f "$baseline" ]] || die "stored baseline $baseline not found (create it with --write-baseline)"
fi

cur=()
base=()
for i in $(seq "$rounds"); do
  if [[ -n "$PREV_BIN" ]]; then
    measure "$PREV_BIN" "$reports/baseline-$i.json" || exit 1
    base+=("$reports/baseline-$i.json")
  fi
  measure "$CURRENT_BIN" "$reports/current-$i.json" || exit 1
  cur+=("$reports/current-$i.json")
done
"$HARNESS" merge "${cur[@]}" -o "$reports/current.json" >/dev/null || exit 1
if [[ -n "$PREV_BIN" ]]; then
  "$HARNESS" merge "${base[@]}" -o "$reports/baseline.json" >/dev/null || exit 1
  base_report="$reports/baseline.json"
else
  base_report="$baseline"
fi

compare_args=(compare "$base_report" "$reports/current.json" --max-regression "$max_regression" --min-delta-ms "$min_delta_ms")
compare_args+=(--metrics "$metrics")
echo "capacity-regression: phasekit-load ${compare_args[*]}"
"$HARNESS" "${compare_args[@]}"
rc=$?
case $rc in
  0) echo "capacity-regression: no regression" ;;
  1) echo "capacity-regression: REGRESSION against ${PREV_BIN:+$rev}${PREV_BIN:-$baseline}" ;;
  *) echo "capacity-regression: compare failed ($rc)"; rc=2 ;;
esac
exit "$rc"
