#!/usr/bin/env bash
# Installs every Debian package and npm module that phasekit's build and tests need.
# Idempotent and quick when everything is there: it asks dpkg first and runs apt-get only for
# what is missing. Run as root (or with sudo available), on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

# Why each one is here: docs/dependencies.md.
APT_PACKAGES=(
  g++ cmake ninja-build ccache pkg-config binutils
  libboost1.81-dev libboost-program-options1.81-dev
  nlohmann-json3-dev libfmt-dev libyaml-cpp-dev libhiredis-dev libsqlite3-dev libpq-dev zlib1g-dev libssl-dev openssl ca-certificates
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-tools postgresql sqlite3 nginx jq curl prometheus bash-static iproute2 iptables
  docker-compose haproxy yamllint
  nodejs npm
  docker.io busybox-static mmdebstrap
  chromium fonts-dejavu-core
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
# node and npm may come from elsewhere than Debian's packages; what matters is that they run.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for pkg in "${missing[@]}"; do
    [[ "$pkg" == nodejs || "$pkg" == npm ]] || filtered+=("$pkg")
  done
  missing=("${filtered[@]}")
fi

if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: run as root to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Boost 1.74 development packages must not be mixed with 1.81 (same header paths).
if dpkg-query -W -f='${Status}' libboost1.74-dev 2>/dev/null | grep -q 'install ok installed'; then
  echo "setup: libboost1.74-dev is installed and conflicts with libboost1.81-dev; remove it" >&2
  exit 1
fi

# Node peers for the interop tests (official socket.io and socket.io-client), pinned by the lockfile.
node_dir=tools/node
stamp="$node_dir/node_modules/.phasekit-installed"
if [[ ! -f "$stamp" || "$node_dir/package-lock.json" -nt "$stamp" ]]; then
  echo "setup: installing npm modules in $node_dir"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$stamp"
fi
