#!/bin/bash
# fetch-source.sh CACHE_DIR [SPEC]
#
# Unpacks a Linux source tree from Debian's linux-source-X.Y packages under
# CACHE_DIR/src/linux-source-X.Y-<Debian version> and prints its path on
# stdout (and nothing else). SPEC says which:
#   (empty)           the newest version of the newest series X.Y >= 6.19
#   X.Y               the newest version of linux-source-X.Y, e.g. 7.2
#   <Debian version>  exactly that version, e.g. 7.2.12-1~bpo13+1
# "Newest" compares Debian versions (dpkg --compare-versions) over every
# suite of the private index, so a sid upload beats a backport.
#
# It never touches the system's apt configuration: it asks the private
# index of tests/apt/private.sh, kept under CACHE_DIR/apt.
set -euo pipefail

cache=${1:?usage: fetch-source.sh CACHE_DIR [SPEC]}
spec=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache/src"

log() { echo "fetch-source: $*" >&2; }

. "$here/../apt/private.sh"
private_apt "$cache"

case $spec in
  "")
    # The newest series X.Y >= 6.19 that has a linux-source-X.Y package.
    pkg=$(apt-cache "${apt_opts[@]}" pkgnames linux-source- 2>/dev/null |
      grep -E '^linux-source-[0-9]+\.[0-9]+$' |
      awk -F- '{ split($3, v, "."); if (v[1] > 6 || (v[1] == 6 && v[2] >= 19)) print v[1]*1000+v[2], $0 }' |
      sort -n | tail -1 | cut -d' ' -f2)
    [ -n "$pkg" ] || { log "no linux-source-X.Y >= 6.19 in the private index"; exit 1; }
    ;;
  [0-9]*.[0-9]*-*|[0-9]*:[0-9]*.[0-9]*-*)
    # A Debian version: its series is the upstream major.minor.
    upstream=${spec#*:}
    upstream=${upstream%-*}
    pkg=linux-source-$(echo "$upstream" | cut -d. -f1-2)
    ;;
  [0-9]*.[0-9]*)
    [[ $spec =~ ^[0-9]+\.[0-9]+$ ]] || { log "SPEC $spec: want X.Y or a Debian version"; exit 1; }
    pkg=linux-source-$spec
    ;;
  *)
    log "SPEC $spec: want X.Y (e.g. 7.2) or a Debian version (e.g. 7.2.12-1~bpo13+1)"
    exit 1
    ;;
esac
ver=${pkg#linux-source-}
mapfile -t offered < <(private_apt_versions "$pkg")
[ ${#offered[@]} -gt 0 ] || { log "the private index has no $pkg (suites: ${private_apt_suites// /, })"; exit 1; }
case $spec in
  *-*)
    pkgver=
    for v in "${offered[@]}"; do [ "$v" = "$spec" ] && pkgver=$v; done
    [ -n "$pkgver" ] || { log "$pkg $spec is not in the private index; it offers: ${offered[*]}"; exit 1; }
    ;;
  *) pkgver=$(private_apt_newest "${offered[@]}") ;;
esac
log "source package: $pkg $pkgver (offered: ${offered[*]})"

tree=$cache/src/$pkg-$pkgver
if [ -f "$tree/.unpacked" ]; then
  echo "$tree"
  exit 0
fi

debdir=$aptdir/debs
mkdir -p "$debdir"
# apt names a download PKG_VERSION_ARCH.deb with the epoch's colon as %3a.
debglob=$debdir/${pkg}_${pkgver//:/%3a}_
deb=$(ls "$debglob"*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  log "downloading $pkg $pkgver (about 160 MiB)"
  (cd "$debdir" && apt-get "${apt_opts[@]}" download "$pkg=$pkgver" >&2)
  deb=$(ls "$debglob"*.deb | head -1)
fi

log "unpacking $deb"
tmp=$(mktemp -d "$cache/src/.unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "./usr/src/linux-source-$ver.tar.xz"
tar -xJf "$tmp/usr/src/linux-source-$ver.tar.xz" -C "$tmp"
rm -rf "$tree"
mv "$tmp/linux-source-$ver" "$tree"
touch "$tree/.unpacked"
log "source tree at $tree"
echo "$tree"
