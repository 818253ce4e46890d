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
# It never touches the system's apt configuration: it reads the mirror URI
# from the system's own deb822 sources, writes a private sources file for
# the suites that carry new kernels, and runs apt with every directory
# pointed into CACHE_DIR/apt.
set -euo pipefail

cache=${1:?usage: fetch-source.sh CACHE_DIR [SPEC]}
spec=${2:-}
aptdir=$cache/apt
mkdir -p "$aptdir/sources" "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$cache/src"

log() { echo "fetch-source: $*" >&2; }

sysfile=/etc/apt/sources.list.d/debian.sources
[ -r "$sysfile" ] || { log "no $sysfile: cannot find the Debian mirror"; exit 1; }
# The first URI line of a stanza whose suites are not the security archive.
mirror=$(awk '
  /^URIs:/ { uri=$2 }
  /^Suites:/ { if ($0 !~ /-security/ && uri != "" && !found) { print uri; found=1 } }
' "$sysfile")
[ -n "$mirror" ] || { log "no mirror URI in $sysfile"; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

cat > "$aptdir/sources/luoinit-kernel.sources" <<SRC
Types: deb
URIs: $mirror
Suites: sid trixie-backports
Components: main
Signed-By: $keyring
SRC

apt_opts=(
  -o Dir::Etc::SourceList=/dev/null
  -o Dir::Etc::SourceParts="$aptdir/sources"
  -o Dir::State::Lists="$aptdir/lists"
  -o Dir::Cache="$aptdir/cache"
  -o Dir::Cache::Archives="$aptdir/cache/archives"
  -o Dir::Cache::pkgcache=""
  -o Dir::Cache::srcpkgcache=""
  -o APT::Sandbox::User=root
  -o Debug::NoLocking=1
  -q
)

# Reuse an index younger than a day; suites move on, so refresh after that.
stamp=$aptdir/lists/.updated
if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
  log "updating the private package index (sid, trixie-backports)"
  apt-get "${apt_opts[@]}" update >&2
  touch "$stamp"
fi

# newest VERSION...: the highest Debian version among its arguments.
newest() {
  local best=
  for v in "$@"; do
    if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
  done
  echo "$best"
}

# versions PKG: every version of PKG the private index offers.
versions() {
  apt-cache "${apt_opts[@]}" madison "$1" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | sort -uV
}

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
mapfile -t offered < <(versions "$pkg")
[ ${#offered[@]} -gt 0 ] || { log "the private index has no $pkg (suites: sid, trixie-backports)"; exit 1; }
case $spec in
  *-*)
    pkgver=
    for v in "${offered[@]}"; do [ "$v" = "$spec" ] && pkgver=$v; done
    [ -n "$pkgver" ] || { log "$pkg $spec is not in the private index; it offers: ${offered[*]}"; exit 1; }
    ;;
  *) pkgver=$(newest "${offered[@]}") ;;
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
