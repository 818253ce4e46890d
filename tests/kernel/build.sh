#!/bin/bash
# build.sh [--source SPEC] [--luo-abi COMPAT | --luo-faults] [CACHE_DIR]
#
# Builds (or reuses) a minimal LUO kernel for the VM tests and prints the
# path of its bzImage on stdout; progress goes to stderr.
#
#   --source SPEC    which Debian linux-source to build (see fetch-source.sh):
#                    empty (the default) is the newest series' newest version,
#                    X.Y the newest of a series (7.2), or an exact Debian
#                    version (7.2.12-1~bpo13+1).
#   --luo-abi COMPAT a test-only variant: the same source with the LUO ABI
#                    compatible string (LUO_ABI_COMPATIBLE in
#                    include/linux/kho/abi/luo.h) replaced by COMPAT, e.g.
#                    luo-v6, and the release suffixed with -COMPAT. Such a
#                    kernel cannot read the state of an unpatched one: it
#                    exists to prove that luoinit refuses to kexec into it.
#   --luo-faults     a test-only variant: the same source with
#                    tests/kernel/luo-faults.patch, whose command-line
#                    parameters make RETRIEVE_FD, FINISH or the
#                    deserialisation of the incoming sessions fail with EIO
#                    (luo_fault_session=, luo_fault_token=, luo_fault_finish=,
#                    luo_fault_deserialize=), release suffixed -luofaults.
#
# The result is cached under
#   CACHE_DIR/kernel/<source version>-<fragment hash>[-luoabi-COMPAT|-luofaults]/
# with bzImage, config, version and the uapi header the tests compare
# against. A lock serialises concurrent builds, and a finished build is
# published by rename, so a reader never sees half a kernel.
#
# The default build (no --source) and the base of a variant keep their
# object tree in
#   CACHE_DIR/kernel/.obj-<source version>-<fragment hash>/
# (about 210 MiB), so that a variant is an incremental build of a copy of
# it: only the few files that include luo.h and the version recompile,
# about a minute instead of 8-11.
#
# A build uses every core for minutes: on a shared machine run it under the
# machine's heavy-work lock (flock /tmp/luoinit-heavy.lock build.sh ...).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
spec=
luoabi=
faults=
cache=
while [ $# -gt 0 ]; do
  case $1 in
    --source) spec=${2:?--source needs a SPEC}; shift 2 ;;
    --source=*) spec=${1#*=}; shift ;;
    --luo-abi) luoabi=${2:?--luo-abi needs a compatible string}; shift 2 ;;
    --luo-abi=*) luoabi=${1#*=}; shift ;;
    --luo-faults) faults=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    -*) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$cache" ] || { echo "build.sh: more than one CACHE_DIR" >&2; exit 2; }; cache=$1; shift ;;
  esac
done
cache=${cache:-${LUOINIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/luoinit}}
if [ -n "$luoabi" ] && ! [[ $luoabi =~ ^luo-v[0-9]+$ ]]; then
  echo "build.sh: --luo-abi $luoabi: want luo-vN" >&2
  exit 2
fi
if [ -n "$luoabi" ] && [ -n "$faults" ]; then
  echo "build.sh: --luo-abi and --luo-faults are two variants: build one at a time" >&2
  exit 2
fi
variant=$luoabi${faults:+luofaults}
fragment=$here/luo.config
mkdir -p "$cache/kernel"

log() { echo "kernel: $*" >&2; }

exec 9>"$cache/kernel/.lock"
if ! flock -n 9; then
  log "waiting for another build to finish (lock $cache/kernel/.lock)"
  flock 9
fi

src=$("$here/fetch-source.sh" "$cache" "$spec")
srcver=$(basename "$src")
fraghash=$(sha256sum < "$fragment" | cut -c1-12)
base=$srcver-$fraghash
key=$base${luoabi:+-luoabi-$luoabi}${faults:+-luofaults}
out=$cache/kernel/$key
objs=$cache/kernel/.obj-$base

abi_header=$src/include/linux/kho/abi/luo.h
abi_saved=$abi_header.luoinit-orig
faults_patch=$here/luo-faults.patch
faults_file=$src/kernel/liveupdate/luo_session.c
# A variant build patches the shared source tree and puts it back when it
# ends; a build that was killed halfway is undone here, before any build.
for f in "$abi_header" "$faults_file"; do
  if [ -e "$f.luoinit-orig" ]; then
    log "restoring $f left patched by an interrupted variant build"
    mv -f "$f.luoinit-orig" "$f"
  fi
done

if [ -f "$out/bzImage" ]; then
  log "reusing cached kernel $(cat "$out/version") ($out)"
  echo "$out/bzImage"
  exit 0
fi

# publish BUILD_DIR KEY [VARIANT]: copy the results to CACHE/kernel/KEY by rename.
publish() {
  local b=$1 dest=$cache/kernel/$2 variant=${3:-} release
  release=$(make -s -C "$src" O="$b" ${localversion:+LOCALVERSION=$localversion} kernelrelease)
  local tmp=$cache/kernel/.out-$2
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp "$b/arch/x86/boot/bzImage" "$tmp/bzImage"
  cp "$b/.config" "$tmp/config"
  cp "$src/include/uapi/linux/liveupdate.h" "$tmp/liveupdate.h"
  echo "$release" > "$tmp/version"
  echo "$srcver" > "$tmp/source"
  [ -z "$variant" ] || echo "$variant" > "$tmp/variant"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  log "built $release in $(( $(date +%s) - start ))s: $dest/bzImage"
}

# compile BUILD_DIR: make bzImage there, the log in BUILD_DIR/build.log.
compile() {
  local b=$1
  log "compiling bzImage with -j$(nproc) (log: $b/build.log)"
  if ! make -s -C "$src" O="$b" ${localversion:+LOCALVERSION=$localversion} -j"$(nproc)" bzImage >> "$b/build.log" 2>&1; then
    tail -40 "$b/build.log" >&2
    log "compiling failed (full log: $b/build.log)"
    exit 1
  fi
}

# configure BUILD_DIR: tinyconfig + the fragment, checked.
configure() {
  local b=$1
  log "configuring: tinyconfig + $(basename "$fragment") (log: $b/build.log)"
  {
    make -s -C "$src" O="$b" tinyconfig
    "$src/scripts/kconfig/merge_config.sh" -m -O "$b" "$b/.config" "$fragment"
    make -s -C "$src" O="$b" olddefconfig
  } > "$b/build.log" 2>&1 || { tail -20 "$b/build.log" >&2; log "configuring failed"; exit 1; }

  local missing=0 line opt
  while IFS= read -r line; do
    case $line in CONFIG_*=*) ;; *) continue ;; esac
    if ! grep -qxF "$line" "$b/.config"; then
      log "fragment option not in the resulting .config: $line"
      case ${line%%=*} in
        CONFIG_LIVEUPDATE|CONFIG_LIVEUPDATE_MEMFD|CONFIG_KEXEC_HANDOVER|CONFIG_KEXEC_FILE) missing=1 ;;
      esac
    fi
  done < "$fragment"
  for opt in LIVEUPDATE LIVEUPDATE_MEMFD KEXEC_HANDOVER KEXEC_FILE; do
    grep -qx "CONFIG_$opt=y" "$b/.config" || { log "CONFIG_$opt is not =y in $b/.config"; missing=1; }
  done
  if [ "$missing" != 0 ]; then
    log "the kernel would not support live update: fix tests/kernel/luo.config"
    exit 1
  fi
}

start=$(date +%s)
localversion=

# The unpacked base build: kept afterwards as the object tree of variants.
if [ -z "$variant" ] || [ ! -f "$objs/vmlinux" ]; then
  log "building $srcver with fragment $fraghash (takes 8-11 minutes on 2 cores)"
  build=$cache/kernel/.build-$base
  rm -rf "$build"
  mkdir -p "$build"
  configure "$build"
  compile "$build"
  # A variant's base may be cached already (without its objects).
  [ -f "$cache/kernel/$base/bzImage" ] || publish "$build" "$base"
  rm -rf "$objs"
  if [ -z "$spec" ] || [ -n "$variant" ]; then
    mv "$build" "$objs"
  else
    rm -rf "$build"
  fi
  if [ -z "$variant" ]; then
    echo "$out/bzImage"
    exit 0
  fi
fi

# variant NAME FILE APPLY CHECK DESCRIPTION: the variant NAME, an
# incremental build of a copy of the base object tree with FILE of the
# source patched by the function APPLY (which writes FILE in place) for
# the length of the build, then checked by the function CHECK on the
# vmlinux and published with DESCRIPTION. FILE is saved with its mtime
# and put back by rename: once restored, the base object tree sees it
# unchanged.
variant() {
  local name=$1 file=$2 apply=$3 check=$4 description=$5
  log "building the $name variant of $srcver from the object tree $objs"
  start=$(date +%s)
  build=$cache/kernel/.build-$key
  rm -rf "$build"
  cp -a "$objs" "$build"
  : > "$build/build.log"
  localversion=-$name
  cp -p "$file" "$file.luoinit-orig"
  trap 'mv -f "$file.luoinit-orig" "$file"' EXIT
  "$apply"
  compile "$build"
  mv -f "$file.luoinit-orig" "$file"
  trap - EXIT
  "$check" "$build/vmlinux"
  publish "$build" "$key" "$description"
  rm -rf "$build"
  echo "$out/bzImage"
}

# The faults variant: luo_session.c with tests/kernel/luo-faults.patch.
apply_faults() {
  if ! patch --quiet --forward -p1 -d "$src" < "$faults_patch" >> "$build/build.log" 2>&1; then
    tail -20 "$build/build.log" >&2
    log "$faults_patch does not apply to $srcver"
    exit 1
  fi
}
check_faults() {
  if ! grep -qaF "injected fault: RETRIEVE_FD" "$1"; then
    log "the luofaults variant's vmlinux does not carry the injected faults"
    exit 1
  fi
}
if [ -n "$faults" ]; then
  variant luofaults "$faults_file" apply_faults check_faults "LUO faults injectable on the command line (tests/kernel/luo-faults.patch)"
  exit 0
fi

# The ABI variant: the header's LUO_ABI_COMPATIBLE replaced by $luoabi.
current=$(sed -n 's/^#define[[:space:]]\{1,\}LUO_ABI_COMPATIBLE[[:space:]]\{1,\}"\([^"]*\)".*/\1/p' "$abi_header")
[ -n "$current" ] || { log "no '#define LUO_ABI_COMPATIBLE \"...\"' in $abi_header"; exit 1; }
[ "$current" != "$luoabi" ] || { log "$srcver already has $luoabi: a variant would be the same kernel"; exit 1; }
apply_abi() {
  sed "s/^\(#define[[:space:]]\{1,\}LUO_ABI_COMPATIBLE[[:space:]]\{1,\}\)\"$current\"/\1\"$luoabi\"/" "$abi_saved" > "$abi_header"
}
# The strings the kernel will compare: the new one in, the old one out.
check_abi() {
  if ! grep -qaF "$luoabi" "$1" || grep -qaxF "$current" <(tr -c '[:print:]' '\n' < "$1"); then
    log "the $luoabi variant's vmlinux does not carry $luoabi alone (still $current?)"
    exit 1
  fi
}
variant "$luoabi" "$abi_header" apply_abi check_abi "LUO_ABI_COMPATIBLE=$luoabi (was $current)"
