#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (in build/fuzz) and runs each for SECONDS, JOBS at a time
# (niced), starting from its corpus in tests/fuzz/corpus/<target> and its dictionary
# tests/fuzz/<target>.dict if there is one. Memory is bounded: past RSS_MB of resident memory, or one
# allocation past MALLOC_MB, is a finding like a crash. Findings land in build/fuzz/findings/<target>/;
# logs in build/fuzz/logs/. Afterwards each corpus is merged back, minimized (-merge=1): hand-named
# seeds stay, the rest is replaced by the files libFuzzer keeps for their coverage. --keep-going runs
# each target in libFuzzer's fork mode, which goes on after a finding (saved all the same) for the
# whole time, so one known finding does not hide the next.
#   ./scripts/fuzz.sh [-t SECONDS] [-j JOBS] [--keep-going] [--no-merge | --merge-only] [TARGET...]
#   (SECONDS defaults to 600, JOBS to nproc; TARGET defaults to all of them)
set -euo pipefail
cd "$(dirname "$0")/.."
all_targets=(engineio_payload socketio_decoder supervisor_frames shell_exports shell_view recovery_offset jwt_verify http_request redis_reply
             scenario_yaml template_expr)
seconds=600
jobs="$(nproc)"
merge=1
run=1
mode=()
targets=()
while (($#)); do
  case "$1" in
    -t) seconds="$2"; shift 2 ;;
    -j) jobs="$2"; shift 2 ;;
    --no-merge) merge=0; shift ;;
    --merge-only) run=0; shift ;;
    --keep-going) mode=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1); shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")
: "${RSS_MB:=512}" "${MALLOC_MB:=256}"

command -v clang++ >/dev/null || { apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null; }
cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DPHASEKIT_SANITIZE=ON -DPHASEKIT_FUZZ=ON \
  -DPHASEKIT_BUILD_BENCH=OFF >/dev/null
cmake --build build/fuzz --target "${targets[@]/%/_fuzz}"

root="$PWD"
fuzz_one() {
  local target="$1" seeds="$root/tests/fuzz/corpus/$1" work="$root/build/fuzz/corpus-$1"
  local findings="$root/build/fuzz/findings/$1/" log="$root/build/fuzz/logs/$1.log" dict=()
  rm -rf "$findings" && mkdir -p "$seeds" "$work" "$findings" "$(dirname "$log")"
  [[ -f "$root/tests/fuzz/$target.dict" ]] && dict=(-dict="$root/tests/fuzz/$target.dict")
  local started=$SECONDS
  # /usr/bin/time's maximum resident size covers the fork mode's children too (they are waited for).
  nice -n 10 /usr/bin/time -f '%M' -o "$log.rss" "$root/build/fuzz/fuzz/${target}_fuzz" -max_total_time="$seconds" \
    -max_len=65536 -timeout=10 -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$MALLOC_MB" -artifact_prefix="$findings" \
    -print_final_stats=1 "${mode[@]}" "${dict[@]}" "$work" "$seeds" >"$log" 2>&1 || true
  local execs cov rss findings_count
  execs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')"
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)"
  rss="$(($(tail -1 "$log.rss" | grep -oE '^[0-9]+$' || echo 0) / 1024))"
  findings_count="$(find "$findings" -type f | wc -l)"
  echo "fuzz: $target $((SECONDS - started))s: ${execs:-?} execs, $cov, peak RSS $rss MB," \
       "$findings_count finding(s)$( ((findings_count)) && echo " in $findings (log: $log)")"
}

running=0
targets_to_run=("${targets[@]}")
((run)) || targets_to_run=()
for target in "${targets_to_run[@]}"; do
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$target" &
  running=$((running + 1))
done
wait

((merge)) || exit 0
for target in "${targets[@]}"; do
  seeds="tests/fuzz/corpus/$target" work="build/fuzz/corpus-$target" merged="build/fuzz/merged-$target"
  rm -rf "$merged" && mkdir -p "$merged"
  # Edges only (-use_counters=0): every edge the run reached stays covered, with a few hundred files.
  nice -n 10 "./build/fuzz/fuzz/${target}_fuzz" -merge=1 -use_counters=0 -max_len=65536 -timeout=10 -rss_limit_mb="$RSS_MB" \
    -malloc_limit_mb="$MALLOC_MB" "$merged" "$seeds" "$work" >"build/fuzz/logs/$target.merge.log" 2>&1 || {
    echo "fuzz: merging $target failed (see build/fuzz/logs/$target.merge.log)"; continue; }
  # Hand-named seeds stay; files named by their SHA-1 (libFuzzer's) are replaced by the merged set.
  find "$seeds" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
  hand="$(find "$seeds" -maxdepth 1 -type f -exec sha1sum {} + | cut -d' ' -f1)"
  for file in "$merged"/*; do
    [[ -e "$file" ]] && ! grep -qx "$(basename "$file")" <<<"$hand" && cp "$file" "$seeds/" || true
  done
  echo "fuzz: $target corpus: $(find "$seeds" -type f | wc -l) files"
done
