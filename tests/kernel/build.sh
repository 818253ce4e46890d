#!/bin/bash
# build.sh [CACHE_DIR]
#
# Builds (or reuses) the minimal LUO kernel for the VM tests and prints the
# path of its bzImage on stdout. The result is cached under
#   CACHE_DIR/kernel/<source version>-<fragment hash>/
# with bzImage, .config, version and the uapi header the tests compare
# against. A lock serialises concurrent builds, and a finished build is
# published by rename, so a reader never sees half a kernel.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-${LUOINIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/luoinit}}
fragment=$here/luo.config
mkdir -p "$cache/kernel"

log() { echo "kernel: $*" >&2; }

exec 9>"$cache/kernel/.lock"
if ! flock -n 9; then
  log "waiting for another build to finish (lock $cache/kernel/.lock)"
  flock 9
fi

src=$("$here/fetch-source.sh" "$cache")
srcver=$(basename "$src")
fraghash=$(sha256sum < "$fragment" | cut -c1-12)
out=$cache/kernel/$srcver-$fraghash

if [ -f "$out/bzImage" ]; then
  log "reusing cached kernel $(cat "$out/version") ($out)"
  echo "$out/bzImage"
  exit 0
fi

log "building $srcver with fragment $fraghash (takes several minutes on 2 cores)"
build=$cache/kernel/.build-$fraghash
rm -rf "$build"
mkdir -p "$build"
start=$(date +%s)
blog=$build/build.log
log "configuring: tinyconfig + $(basename "$fragment") (log: $blog)"
{
  make -s -C "$src" O="$build" tinyconfig
  "$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment"
  make -s -C "$src" O="$build" olddefconfig
} > "$blog" 2>&1 || { tail -20 "$blog" >&2; log "configuring failed"; exit 1; }

missing=0
while IFS= read -r line; do
  case $line in CONFIG_*=*) ;; *) continue ;; esac
  if ! grep -qxF "$line" "$build/.config"; then
    log "fragment option not in the resulting .config: $line"
    case ${line%%=*} in
      CONFIG_LIVEUPDATE|CONFIG_LIVEUPDATE_MEMFD|CONFIG_KEXEC_HANDOVER|CONFIG_KEXEC_FILE) missing=1 ;;
    esac
  fi
done < "$fragment"
for opt in LIVEUPDATE LIVEUPDATE_MEMFD KEXEC_HANDOVER KEXEC_FILE; do
  grep -qx "CONFIG_$opt=y" "$build/.config" || { log "CONFIG_$opt is not =y in $build/.config"; missing=1; }
done
if [ "$missing" != 0 ]; then
  log "the kernel would not support live update: fix tests/kernel/luo.config"
  exit 1
fi

log "compiling bzImage with -j$(nproc)"
if ! make -s -C "$src" O="$build" -j"$(nproc)" bzImage >> "$blog" 2>&1; then
  tail -40 "$blog" >&2
  log "compiling failed (full log: $blog)"
  exit 1
fi
release=$(make -s -C "$src" O="$build" kernelrelease)

tmp=$cache/kernel/.out-$fraghash
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$build/arch/x86/boot/bzImage" "$tmp/bzImage"
cp "$build/.config" "$tmp/config"
cp "$src/include/uapi/linux/liveupdate.h" "$tmp/liveupdate.h"
echo "$release" > "$tmp/version"
rm -rf "$out"
mv "$tmp" "$out"
rm -rf "$build"
log "built $release in $(( $(date +%s) - start ))s: $out/bzImage"
echo "$out/bzImage"
