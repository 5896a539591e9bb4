#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (in build/fuzz) and runs each for SECONDS (default 60),
# starting from the seed corpus in tests/fuzz/corpus. A crash leaves its input in build/fuzz/.
#   ./scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v clang++ >/dev/null || { apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null; }
cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DPHASEKIT_SANITIZE=ON -DPHASEKIT_BUILD_BENCH=OFF >/dev/null
targets=(engineio_payload socketio_decoder supervisor_frames shell_exports)
cmake --build build/fuzz --target "${targets[@]/%/_fuzz}"
for target in "${targets[@]}"; do
  work="build/fuzz/corpus-$target"
  mkdir -p "$work"
  echo "fuzz: $target for ${seconds}s"
  (cd build/fuzz && "./fuzz/${target}_fuzz" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 \
     "corpus-$target" "../../tests/fuzz/corpus/$target" 2>&1 | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE|==[0-9]+==ERROR)' || true)
done
