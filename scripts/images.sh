#!/usr/bin/env bash
# Builds every image the compose files (deploy/) and the k8s manifests (k8s/) use, offline: no
# registry is reachable, so the base is made from Debian's packages with mmdebstrap (apt's mirror).
#   scripts/images.sh [--build-dir DIR] [--only NAME]... [--jobs N] [--refresh-base]
#     --build-dir DIR  where the built binaries and plugins are (default build/: scripts/build.sh)
#     --only NAME      build only this image (phasekit, redis, haproxy, nginx, prometheus, base);
#                      repeatable. The base is imported when missing, whatever --only says.
#     --jobs N         images built at once (default 2)
#     --refresh-base   make the base tarball again (cached in $PHASEKIT_IMAGE_CACHE, default
#                      /var/cache/phasekit) instead of reusing it
# Talks to the daemon DOCKER_HOST names (scripts/dockerd.sh start DIR prints one), with Debian's
# client /usr/bin/docker (docker.io 20.10): the newer client first on PATH here refuses BuildKit
# without buildx, which no package provides. Prints the images and their sizes at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="$PWD"

die() {
  echo "images.sh: $*" >&2
  exit 1
}
usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

DOCKER="${DOCKER_CLIENT:-/usr/bin/docker}"
CACHE="${PHASEKIT_IMAGE_CACHE:-/var/cache/phasekit}"
build_dir="build"
jobs=2
refresh=0
only=()
# name -> tag and how it is built. The tags are the ones deploy/*.yml and k8s/ name (a deploy test
# checks that they match).
ALL=(phasekit redis haproxy nginx prometheus)
declare -A TAG=(
  [phasekit]="phasekit:0.1.0"
  [redis]="redis:7.0"
  [haproxy]="haproxy:2.6"
  [nginx]="nginx:1.22"
  [prometheus]="prom/prometheus:v2.42.0"
)

while (($# > 0)); do
  case "$1" in
    --build-dir) build_dir="${2:?--build-dir needs a folder}"; shift 2 ;;
    --only)
      name="${2:?--only needs an image name: base ${ALL[*]}}"
      [[ "$name" == base || -n "${TAG[$name]:-}" ]] || die "--only $name: no such image (base ${ALL[*]})"
      only+=("$name")
      shift 2
      ;;
    --jobs)
      jobs="${2:?--jobs needs a number}"
      [[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs $jobs: expected a positive number"
      shift 2
      ;;
    --refresh-base) refresh=1; shift ;;
    -h | --help) usage ;;
    *) echo "images.sh: unknown argument: $1" >&2; usage ;;
  esac
done

[[ -x "$DOCKER" ]] || die "$DOCKER not found: install docker.io (scripts/setup.sh)"
[[ -n "${DOCKER_HOST:-}" ]] || echo "images.sh: DOCKER_HOST is not set: using the default daemon" >&2
"$DOCKER" version >/dev/null 2>&1 ||
  die "no docker daemon answers at ${DOCKER_HOST:-the default socket}: start one, e.g. eval \"\$(scripts/dockerd.sh start /var/cache/phasekit/docker)\""

if ((${#only[@]} == 0)); then
  targets=("${ALL[@]}")
else
  targets=()
  for n in "${only[@]}"; do [[ "$n" == base ]] || targets+=("$n"); done
fi

log() { echo "images.sh: $*" >&2; }
work="$(mktemp -d "${TMPDIR:-/tmp}/phasekit-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# ---- base: debian:12 and debian:12-slim, one image ----------------------------------------------
# minbase (apt, dpkg, bash, coreutils) with documentation, manuals and translations left out, as
# Docker's debian:*-slim does; the dpkg filter stays in the image, so packages the images install
# later leave them out too.
base_tar="$CACHE/bookworm-minbase.tar"
make_base_tar() {
  command -v mmdebstrap >/dev/null || die "mmdebstrap not found: install it (scripts/setup.sh)"
  mkdir -p "$CACHE"
  local tmp="$CACHE/.bookworm-minbase.$$.tar"
  log "base: mmdebstrap --variant=minbase bookworm (apt's mirror, about 2 min)"
  local t0=$SECONDS
  if ! mmdebstrap --quiet --variant=minbase \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --aptopt='APT::Install-Recommends "false"' \
    bookworm "$tmp"; then
    rm -f "$tmp"
    die "mmdebstrap failed (is apt's mirror reachable? apt-get update says)"
  fi
  mv "$tmp" "$base_tar"
  log "base: $base_tar made in $((SECONDS - t0)) s"
}
if ((refresh)) || [[ ! -s "$base_tar" ]]; then
  make_base_tar
  "$DOCKER" rmi -f debian:12 debian:12-slim >/dev/null 2>&1 || true
fi
if ! "$DOCKER" image inspect debian:12 >/dev/null 2>&1; then
  log "base: docker import $base_tar debian:12"
  "$DOCKER" import "$base_tar" debian:12 >/dev/null
fi
"$DOCKER" tag debian:12 debian:12-slim

# ---- the images ----------------------------------------------------------------------------------
# Each build logs to $work/NAME.log; shown when it fails.
build_phasekit() {
  local bin="$build_dir/bin" ctx="$work/phasekit-context"
  for f in phasekit-orchestrator phasekit-worker phasekit-load phasekit phasekit-sandbox; do
    [[ -x "$bin/$f" ]] || die "phasekit: $bin/$f not found: build first (scripts/build.sh), or give --build-dir"
  done
  compgen -G "$build_dir/lib/phasekit/*.so" >/dev/null || die "phasekit: no plugins in $build_dir/lib/phasekit"
  # The same layout and stripping as the release build's stage (deploy/Dockerfile).
  install -d "$ctx/out/bin" "$ctx/out/lib/phasekit"
  install -m 0755 -s "$bin/phasekit-orchestrator" "$bin/phasekit-worker" "$bin/phasekit-load" "$bin/phasekit" \
    "$bin/phasekit-sandbox" "$ctx/out/bin/"
  install -m 0644 -s "$build_dir"/lib/phasekit/*.so "$ctx/out/lib/phasekit/"
  DOCKER_BUILDKIT=1 "$DOCKER" build --network host --target prebuilt -t "${TAG[phasekit]}" \
    -f "$SRC/deploy/Dockerfile" "$ctx"
}
build_simple() {  # build_simple NAME: deploy/images/NAME/Dockerfile
  DOCKER_BUILDKIT=1 "$DOCKER" build --network host -t "${TAG[$1]}" "$SRC/deploy/images/$1"
}
build_one() {
  local name="$1" t0=$SECONDS status=0
  if [[ "$name" == phasekit ]]; then
    build_phasekit >"$work/$name.log" 2>&1 || status=$?
  else
    build_simple "$name" >"$work/$name.log" 2>&1 || status=$?
  fi
  if ((status != 0)); then
    echo "images.sh: $name (${TAG[$name]}) FAILED; its build log:" >&2
    tail -40 "$work/$name.log" >&2
    return 1
  fi
  log "$name: ${TAG[$name]} built in $((SECONDS - t0)) s"
}

build_dir="$(cd "$build_dir" 2>/dev/null && pwd)" || die "--build-dir: no such folder"
for name in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do
    wait -n || true
  done
  { build_one "$name" && touch "$work/$name.ok"; } &
done
wait
failed=()
for name in "${targets[@]}"; do
  [[ -f "$work/$name.ok" ]] || failed+=("$name")
done
((${#failed[@]} == 0)) || die "failed to build: ${failed[*]}"

echo "images.sh: images (size as docker reports it):"
for name in base "${targets[@]}"; do
  tag="${TAG[$name]:-debian:12-slim}"
  printf '  %-28s %s\n' "$tag" "$("$DOCKER" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1 / 1e6}')"
done
