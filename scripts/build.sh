#!/usr/bin/env bash
# Configures and builds one CMake preset (release by default): ./scripts/build.sh [--preset NAME].
set -euo pipefail
cd "$(dirname "$0")/.."
preset=release
if [[ "${1:-}" == "--preset" ]]; then
  preset="${2:?--preset needs a name: release, debug or asan}"
fi
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
