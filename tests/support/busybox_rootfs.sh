#!/bin/bash
# Writes a container root filesystem tarball to $1: busybox-static's applets, plus this machine's
# bash (each session's shell), coreutils `timeout` and `nohup`, findutils `find` and util-linux `ipcmk`/`ipcs`,
# with the libraries they load.
# For `docker import` by the tests: no registry is ever contacted.
set -euo pipefail
out=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# /run and /var as Debian's images have them: root's, 0755 (a backend must not depend on an image
# whose /run its user may write).
mkdir -p "$root"/{bin,usr/bin,tmp,proc,dev,etc,run,var/tmp}
chmod 0755 "$root/run" "$root/var"
cp /bin/busybox "$root/bin/busybox"
"$root/bin/busybox" --list | while read -r applet; do
  [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
done
for exe in /usr/bin/bash /usr/bin/timeout /usr/bin/find /usr/bin/nohup /usr/bin/ipcmk /usr/bin/ipcs; do
  cp "$exe" "$root/usr/bin/"
  for lib in $(ldd "$exe" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
rm -f "$root/bin/bash" "$root/bin/timeout" "$root/bin/find" "$root/bin/nohup" "$root/bin/ipcmk" "$root/bin/ipcs"
ln -s /usr/bin/bash "$root/bin/bash"
chmod 1777 "$root/tmp" "$root/var/tmp"
echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/sh' > "$root/etc/passwd"
tar -C "$root" -cf "$out" .
