#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest.
#   ./scripts/test.sh                  release build in build/
#   ./scripts/test.sh --preset asan    ASan+UBSan build in build/asan
#   ./scripts/test.sh -- -R Config     anything after -- goes to ctest
# Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=release
ctest_args=()
while (($# > 0)); do
  case "$1" in
    --preset) preset="${2:?--preset needs a name: release, debug or asan}"; shift 2 ;;
    --) shift; ctest_args+=("$@"); break ;;
    *) ctest_args+=("$1"); shift ;;
  esac
done
start=$(date +%s)
./scripts/setup.sh
./scripts/build.sh --preset "$preset"
built=$(date +%s)
status=0
ctest --preset "$preset" -j "$(nproc)" "${ctest_args[@]}" || status=$?
end=$(date +%s)
echo "test.sh: preset $preset, build $((built - start)) s, tests $((end - built)) s, exit $status"
exit "$status"
