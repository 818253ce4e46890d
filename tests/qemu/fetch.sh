#!/bin/bash
# fetch.sh CACHE_DIR
#
# Unpacks the newest qemu-system-x86 (at least 8.2, for the cpr-reboot
# migration mode) of the private index of tests/apt/private.sh, with every
# package it depends on down to libc6, into
#   CACHE_DIR/qemu/<Debian version, its epoch's colon as %3a>/root
# and prints that path on stdout (and nothing else; progress goes to
# stderr). Nothing is installed on the system: the packages are downloaded
# against an empty dpkg status, so the whole dependency closure comes along,
# and each is unpacked with dpkg-deb -x. The tree runs through its own
# dynamic loader:
#   root/usr/lib64/ld-linux-x86-64.so.2 --library-path root/usr/lib/x86_64-linux-gnu \
#     root/usr/bin/qemu-system-x86_64 -L root/usr/share/qemu -L root/usr/share/seabios ...
# (tests/qemu's Install.Argv forms that argv). root/version holds the
# Debian version of qemu-system-x86.
#
# The tree is for running qemu-system-x86_64 alone, and is copied into VM
# disk images, so documentation, man pages, translations, /etc, the other
# programs and systemd's private library (a dependency of a dependency)
# are left out.
#
# "Newest" compares Debian versions over every suite of the private index,
# as fetch-source.sh does, and apt takes that version's suite as its
# default release, so that packages built together come from one suite.
# A lock serialises concurrent fetches; a tree is published by rename once
# it has run --version, so a reader never sees half of one.
set -euo pipefail

cache=${1:?usage: fetch.sh CACHE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
pkg=qemu-system-x86
minimum=1:8.2~
top=$cache/qemu
mkdir -p "$top"

log() { echo "qemu: $*" >&2; }

exec 9>"$top/.lock"
if ! flock -n 9; then
  log "waiting for another fetch to finish (lock $top/.lock)"
  flock 9
fi
# Under the lock, an unpack directory is what a killed fetch left.
rm -rf "$top"/.unpack.*

. "$here/../apt/private.sh"
private_apt "$cache"

mapfile -t offered < <(private_apt_versions "$pkg")
[ ${#offered[@]} -gt 0 ] || { log "the private index has no $pkg (suites: ${private_apt_suites// /, })"; exit 1; }
ver=$(private_apt_newest "${offered[@]}")
if dpkg --compare-versions "$ver" lt "$minimum"; then
  log "the newest $pkg is $ver; cpr-reboot needs ${minimum%\~} or later (offered: ${offered[*]})"
  exit 1
fi
# The suite that offers it: madison's third column is "URI SUITE/COMPONENT ARCH Packages".
suite=$(apt-cache "${apt_opts[@]}" madison "$pkg" 2>/dev/null |
  awk -F'|' -v v="$ver" '{ gsub(/ /, "", $2) } $2 == v { split($3, w, " "); split(w[2], s, "/"); print s[1]; exit }')
log "$pkg $ver from $suite (offered: ${offered[*]})"

# A directory name with the epoch's colon as %3a, as apt names downloads:
# a colon would split ld.so's --library-path.
out=$top/${ver//:/%3a}
if [ -f "$out/.complete" ]; then
  echo "$out/root"
  exit 0
fi

tmp=$(mktemp -d "$top/.unpack.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
debs=$top/.debs
mkdir -p "$debs/partial"
: > "$tmp/status"
# Against an empty dpkg status, apt takes nothing as installed: the plan is
# the whole dependency closure, libc6 included.
closure=(
  "${apt_opts[@]}"
  -o Dir::State::status="$tmp/status"
  -o Dir::Cache::Archives="$debs"
  -o APT::Default-Release="$suite"
  --no-install-recommends --yes
)
log "downloading $pkg $ver and its dependencies"
apt-get "${closure[@]}" -qq --download-only install "$pkg=$ver" >&2
# The download directory may hold older downloads too: unpack just what
# apt would install now ("Inst PKG (VERSION SUITE [ARCH])").
mapfile -t names < <(apt-get "${closure[@]}" --simulate install "$pkg=$ver" 2>/dev/null |
  awk '$1 == "Inst" { v = $3; gsub(/[()]/, "", v); sub(/:/, "%3a", v); print $2 "_" v "_" }')
[ ${#names[@]} -gt 0 ] || { log "apt plans to install nothing for $pkg=$ver"; exit 1; }

root=$tmp/root
mkdir "$root"
log "unpacking ${#names[@]} packages"
for n in "${names[@]}"; do
  deb=$(ls "$debs/$n"*.deb 2>/dev/null | head -1 || true)
  [ -n "$deb" ] || { log "no download for ${n%_} in $debs"; exit 1; }
  dpkg-deb -x "$deb" "$root"
done

# Left out: what running qemu-system-x86_64 does not need, the tree's etc
# (QEMU and its libraries read the host's /etc), and absolute symlinks,
# which would point out of the tree wherever it is copied to.
rm -rf "$root"/usr/share/{doc,doc-base,man,info,locale,lintian,bug,bash-completion,zsh} \
  "$root"/usr/lib/systemd "$root"/usr/lib/x86_64-linux-gnu/systemd "$root"/etc
find "$root/usr/bin" -mindepth 1 ! -name qemu-system-x86_64 -delete
find "$root" -type l -lname '/*' -delete

# Unmodified: the binary matches the md5sums of its own package, as dpkg
# would check it (`dpkg --verify`).
qdeb=$(ls "$debs/${pkg}_${ver//:/%3a}_"*.deb | head -1)
if ! sums=$(dpkg-deb --ctrl-tarfile "$qdeb" | tar -xO ./md5sums | grep ' usr/bin/qemu-system-x86_64$') ||
   ! (cd "$root" && echo "$sums" | md5sum --check --quiet >&2); then
  log "usr/bin/qemu-system-x86_64 does not match the md5sums of $(basename "$qdeb")"
  exit 1
fi
log "usr/bin/qemu-system-x86_64 matches the md5sums of $(basename "$qdeb"): ${sums%% *}"

echo "$ver" > "$root/version"
libs=$root/usr/lib/x86_64-linux-gnu
if ! banner=$("$root/usr/lib64/ld-linux-x86-64.so.2" --library-path "$libs" \
  "$root/usr/bin/qemu-system-x86_64" --version 2>&1); then
  log "the unpacked qemu-system-x86_64 does not run through its own ld.so: $banner"
  exit 1
fi
log "${banner%%$'\n'*}, $(du -sh "$root" | cut -f1) unpacked"
rm "$tmp/status"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
rm -f "$debs"/*.deb
echo "$out/root"
