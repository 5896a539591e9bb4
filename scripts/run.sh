#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job: the orchestrator on its embedded defaults,
# driven by phasekit-load with a shipped scenario, ending with a capacity report.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh --preset release

echo
echo "== effective configuration (build/bin/phasekit config) =="
build/bin/phasekit config
echo
echo "== plugins (build/bin/phasekit plugins) =="
build/bin/phasekit plugins || true

if [[ ! -x build/bin/phasekit-orchestrator || ! -x build/bin/phasekit-load ]]; then
  echo
  echo "run.sh: phasekit-orchestrator and phasekit-load are not built yet (the orchestrator and the load"
  echo "generator are the next issues), so there is no load test to run. Above: the configuration and"
  echo "plugin host that they will start from."
  exit 0
fi
