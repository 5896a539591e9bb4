#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest: every test but the
# live ones first (-LE live), then the live ones (-L live: compose stacks in real containers on a
# private dockerd, tests/live/), so a slow or broken container run never hides the others' results.
# PHASEKIT_LIVE_TESTS=0 leaves the live ones out (a machine without dockerd's rights).
#   ./scripts/test.sh                  release build in build/
#   ./scripts/test.sh --preset asan    ASan+UBSan build in build/asan
#   ./scripts/test.sh -- -R Config     anything after -- goes to ctest (both runs)
# Exits non-zero when any test of either run fails.
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
ctest --preset "$preset" -j "$(nproc)" -LE live "${ctest_args[@]}" || status=$?
others=$(date +%s)
live_status=0
# Arguments that select tests (-R NAME) may select no live test: not an error then; with none, the
# live tests must be there.
no_tests=()
((${#ctest_args[@]} == 0)) || no_tests=(--no-tests=ignore)
if [[ "${PHASEKIT_LIVE_TESTS:-1}" != 0 ]]; then
  ctest --preset "$preset" -L live "${no_tests[@]}" "${ctest_args[@]}" || live_status=$?
fi
end=$(date +%s)
echo "test.sh: preset $preset, build $((built - start)) s, tests $((others - built)) s (exit $status)," \
  "live tests $((end - others)) s (exit $live_status)"
if ((status != 0)); then exit "$status"; fi
exit "$live_status"
