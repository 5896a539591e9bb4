#!/usr/bin/env bash
# deploy/Dockerfile without an engine (tests/live/ builds it for real, with scripts/images.sh): the
# build stage installs the same build packages as scripts/setup.sh, the runtime stage the Debian
# package of every shared library the built binaries and plugins link (from ldd + dpkg -S), the
# image holds the five binaries (the sandbox supervisor too) with the plugins in <exe>/../lib/phasekit, runs as a non-root
# user, and has a HEALTHCHECK on /health. Self-tests: a missing runtime library or build package
# is caught.
source "$(dirname "$0")/lib.sh"
need dpkg-query ldd readelf
DF="$SRC/deploy/Dockerfile"
BIN_DIR="$(dirname "${ORCHESTRATOR_BIN:?}")"
PLUGIN_DIR="$BIN_DIR/../lib/phasekit"

# apt_list DOCKERFILE STAGE: the packages of the apt-get install in that stage.
apt_list() {
  awk -v stage="$2" '
    /^FROM / { cur = ($NF == stage) }
    cur && /apt-get install/ { inst = 1 }
    cur && inst && /^ *&&/ && !/apt-get install/ { inst = 0 }
    cur && inst { line = $0; gsub(/\\$/, "", line); gsub(/&&.*/, "", line); n = split(line, w, /[ \t]+/)
                  for (i = 1; i <= n; i++) if (w[i] ~ /^[a-z0-9][a-z0-9.+-]+$/ && w[i] != "apt-get" && w[i] != "install") print w[i]
                  if ($0 !~ /\\$/) inst = 0 }' "$1" | sort -u
}

setup_packages() {
  sed -n '/^APT_PACKAGES=(/,/^)/p' "$SRC/scripts/setup.sh" | tr ' ' '\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | sort -u
}

stages() {  # stages DOCKERFILE
  grep -q '^FROM debian:12 AS build$' "$1" && grep -q '^FROM debian:12-slim AS runtime-base$' "$1" &&
    grep -q '^FROM runtime-base AS prebuilt$' "$1" &&
    # The default target (the last stage) stays the release build, compiled in the build stage.
    [[ "$(grep '^FROM ' "$1" | tail -1)" == "FROM runtime-base AS runtime" ]]
}
check "stages: debian:12 build, debian:12-slim runtime-base, prebuilt and (last, the default) runtime" stages "$DF"
awk '/^FROM runtime-base AS runtime$/{skip=1} !skip' "$DF" >"$TMP/Dockerfile.prebuilt-last"
rejects "stage check: prebuilt as the default (last) target" stages "$TMP/Dockerfile.prebuilt-last"

# Every package the build stage installs is one setup.sh installs, and every build dependency of
# setup.sh (compiler, tools, -dev libraries other than the test frameworks) is in the build stage.
build_packages_match() {
  local df="$1" missing extra
  extra="$(comm -23 <(apt_list "$df" build) <(setup_packages))"
  missing="$(comm -13 <(apt_list "$df" build) \
    <(setup_packages | grep -E -- '-dev$|^(g\+\+|cmake|ninja-build|ccache|pkg-config|binutils)$' | grep -Ev '^lib(gtest|gmock|benchmark)-dev$'))"
  [[ -z "$extra" && -z "$missing" ]] || { echo "not in setup.sh: $extra"; echo "missing from the build stage: $missing"; return 1; }
}
check "build stage = setup.sh's build packages" build_packages_match "$DF"
no_dev_at_runtime() { ! apt_list "$DF" runtime-base | grep -- '-dev$' >/dev/null; }
check "runtime stage: no -dev packages" no_dev_at_runtime

# runtime_libs_covered DOCKERFILE: each library the binaries and plugins link directly (their NEEDED
# entries, resolved by ldd) comes from a Debian package that the runtime stage installs (or that
# debian:12-slim already has). What those libraries link in turn comes with their packages' own
# dependencies (libpq5 brings Kerberos and LDAP), which apt installs.
runtime_libs_covered() {
  local df="$1" files=() lib pkg missing="" runtime owners
  files=("$BIN_DIR"/phasekit-orchestrator "$BIN_DIR"/phasekit-load "$BIN_DIR"/phasekit "$PLUGIN_DIR"/*.so)
  [[ -x "$BIN_DIR/phasekit-worker" ]] && files+=("$BIN_DIR/phasekit-worker")
  runtime="$(apt_list "$df" runtime-base)"
  mapfile -t libs < <(for f in "${files[@]}"; do
    needed="$(readelf -d "$f" 2>/dev/null | awk '/\(NEEDED\)/ { gsub(/[][]/, "", $NF); print $NF }')"
    ldd "$f" 2>/dev/null | awk -v needed="$needed" '
      BEGIN { n = split(needed, a, "\n"); for (i = 1; i <= n; i++) want[a[i]] = 1 }
      $2 == "=>" && ($1 in want) && $3 ~ /^\// { print $3 }'
  done | sort -u)
  ((${#libs[@]} > 0)) || { echo "ldd found no libraries"; return 1; }
  # One dpkg -S for all (it is slow): the path as ldd prints it and its target (merged /usr).
  owners="$(for lib in "${libs[@]}"; do echo "$lib"; readlink -f "$lib"; done | sort -u | xargs dpkg -S 2>/dev/null)"
  for lib in "${libs[@]}"; do
    pkg="$(grep -F -e ": $lib" -e ": $(readlink -f "$lib")" <<<"$owners" | awk -F: '$NF ~ /\// { print $1; exit }')"
    case "$pkg" in
      libc6 | libstdc++6 | libgcc-s1) ;;  # in debian:12-slim
      libasan* | libubsan* | liblsan*) ;;  # only in a sanitizer build (--preset asan), never in the image
      "") missing+=" $lib(no package)" ;;
      *) grep -qx "$pkg" <<<"$runtime" || missing+=" $pkg($lib)" ;;
    esac
  done
  [[ -z "$missing" ]] || { echo "runtime stage lacks:$missing"; return 1; }
}
check "runtime stage has the package of every linked library (ldd + dpkg -S)" runtime_libs_covered "$DF"

image_layout() {
  grep -q 'phasekit-orchestrator /build/bin/phasekit-worker' "$DF" &&
    grep -q '/build/bin/phasekit-load /build/bin/phasekit /build/bin/phasekit-sandbox /out/bin/' "$DF" &&
    grep -q 'install -m 0644 -s /build/lib/phasekit/\*.so /out/lib/phasekit/' "$DF" &&
    grep -q '^COPY --from=build /out/ /opt/phasekit/$' "$DF" &&
    grep -q 'PATH=/opt/phasekit/bin' "$DF"
}
check "image: the five binaries (phasekit-sandbox too) in /opt/phasekit/bin, plugins in /opt/phasekit/lib/phasekit (<exe>/../lib/phasekit)" image_layout
# The prebuilt target gets the same layout from scripts/images.sh: the same five binaries and the
# plugins, stripped, in CONTEXT/out/{bin,lib/phasekit}, copied to /opt/phasekit.
prebuilt_layout() {  # prebuilt_layout IMAGES_SH
  awk '/^FROM runtime-base AS prebuilt$/{p=1; next} /^FROM /{p=0} p' "$DF" | grep '^COPY --chown=0:0 out/ /opt/phasekit/$' >/dev/null &&
    grep -q '"$bin/phasekit-orchestrator" "$bin/phasekit-worker" "$bin/phasekit-load" "$bin/phasekit"' "$1" &&
    grep -q '"$bin/phasekit-sandbox" "$ctx/out/bin/"' "$1" &&
    grep -q 'install -m 0644 -s "$build_dir"/lib/phasekit/\*.so "$ctx/out/lib/phasekit/"' "$1" &&
    grep -q -- '--target prebuilt' "$1"
}
check "prebuilt target: scripts/images.sh stages the five binaries and the plugins as the release build does" \
  prebuilt_layout "$SRC/scripts/images.sh"
sed 's/ "$bin\/phasekit-sandbox" / /' "$SRC/scripts/images.sh" >"$TMP/images-nosandbox.sh"
rejects "prebuilt check: images.sh without phasekit-sandbox" prebuilt_layout "$TMP/images-nosandbox.sh"
non_root() { local u; u="$(grep '^USER ' "$DF" | tail -1 | awk '{print $2}')"; [[ -n "$u" && "${u%%:*}" != 0 && "${u%%:*}" != root ]]; }
check "runs as a non-root user" non_root
healthcheck() { grep -A1 '^HEALTHCHECK' "$DF" | grep '/health' >/dev/null; }
check "HEALTHCHECK on /health" healthcheck
ignore() { grep -qx 'build' "$SRC/deploy/Dockerfile.dockerignore" && grep -qx '\*\*/node_modules' "$SRC/deploy/Dockerfile.dockerignore"; }
check "build context leaves out build/ and node_modules" ignore

# The image's layout, built the way the Dockerfile's build stage does it (stripped binaries in
# PREFIX/bin, stripped plugins in PREFIX/lib/phasekit), runs: the loader finds the plugins at
# <exe>/../lib/phasekit with no PHASEKIT_PLUGIN_PATH.
stage_layout() {  # stage_layout PREFIX [with-plugins]
  install -d "$1/bin" "$1/lib/phasekit" &&
    install -m 0755 -s "$BIN_DIR/phasekit-orchestrator" "$BIN_DIR/phasekit-load" "$BIN_DIR/phasekit" "$1/bin/" &&
    { [[ "${2:-}" != with-plugins ]] || install -m 0644 -s "$PLUGIN_DIR"/*.so "$1/lib/phasekit/"; }
}
layout_runs() {  # layout_runs PREFIX: phasekit plugins lists warm and hpa; the orchestrator starts with them
  local prefix="$1"
  env -u PHASEKIT_PLUGIN_PATH "$prefix/bin/phasekit" plugins >"$TMP/plugins.txt" 2>&1 || { cat "$TMP/plugins.txt"; return 1; }
  grep -Eq "^$prefix/lib/phasekit/libphasekit_pool_warm.so .* ok:" "$TMP/plugins.txt" || { cat "$TMP/plugins.txt"; return 1; }
  ORCHESTRATOR_BIN="$prefix/bin/phasekit-orchestrator" start_orchestrator "$TMP/layout.log" -u PHASEKIT_PLUGIN_PATH \
    ENABLE_CONTAINER_POOL=true POOL_MIN_SIZE=1 ENABLE_AUTOSCALER=true || return 1
  grep -q 'pool=warm,autoscaler=hpa' "$TMP/layout.log"
}
stage_layout "$TMP/opt/phasekit" with-plugins
check "image layout (/opt/phasekit/bin + lib/phasekit, stripped): plugins found, orchestrator runs pool=warm autoscaler=hpa" \
  layout_runs "$TMP/opt/phasekit"
stage_layout "$TMP/no-plugins"
no_plugins() {  # fails (as the check must) when the orchestrator refuses to start with exit code 3
  timeout 10 env -u PHASEKIT_PLUGIN_PATH ENABLE_CONTAINER_POOL=true "$TMP/no-plugins/bin/phasekit-orchestrator" --port 0 >"$TMP/np.log" 2>&1
  [[ $? -ne 3 ]]
}
rejects "layout check: plugins missing from lib/phasekit (the orchestrator exits 3)" no_plugins

sed 's/ libfmt9 / /' "$DF" >"$TMP/Dockerfile.nofmt"
rejects "library check: runtime stage without libfmt9" runtime_libs_covered "$TMP/Dockerfile.nofmt"
sed 's/ libyaml-cpp-dev / /' "$DF" >"$TMP/Dockerfile.noyaml"
rejects "package check: build stage without libyaml-cpp-dev" build_packages_match "$TMP/Dockerfile.noyaml"

summary
