#!/bin/bash
# fetch-source.sh CACHE_DIR
#
# Finds the newest linux-source-X.Y (X.Y >= 6.19) that Debian's package
# archive offers and unpacks it under CACHE_DIR/src/linux-source-X.Y.
# Prints the path of the unpacked tree on stdout (and nothing else).
#
# It never touches the system's apt configuration: it reads the mirror URI
# from the system's own deb822 sources, writes a private sources file for
# the suites that carry new kernels, and runs apt with every directory
# pointed into CACHE_DIR/apt.
set -euo pipefail

cache=${1:?usage: fetch-source.sh CACHE_DIR}
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

# Newest linux-source-X.Y with X.Y >= 6.19.
pkg=$(apt-cache "${apt_opts[@]}" pkgnames linux-source- 2>/dev/null |
  grep -E '^linux-source-[0-9]+\.[0-9]+$' |
  awk -F- '{ split($3, v, "."); if (v[1] > 6 || (v[1] == 6 && v[2] >= 19)) print v[1]*1000+v[2], $0 }' |
  sort -n | tail -1 | cut -d' ' -f2)
[ -n "$pkg" ] || { log "no linux-source-X.Y >= 6.19 in the private index"; exit 1; }
ver=${pkg#linux-source-}
pkgver=$(apt-cache "${apt_opts[@]}" policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2; exit }')
[ -n "$pkgver" ] && [ "$pkgver" != "(none)" ] || { log "no installable version of $pkg"; exit 1; }
log "newest source package: $pkg $pkgver"

tree=$cache/src/$pkg-$pkgver
if [ -f "$tree/.unpacked" ]; then
  echo "$tree"
  exit 0
fi

debdir=$aptdir/debs
mkdir -p "$debdir"
deb=$(ls "$debdir"/"${pkg}"_"${pkgver//:/%3a}"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  log "downloading $pkg $pkgver (about 160 MiB)"
  (cd "$debdir" && apt-get "${apt_opts[@]}" download "$pkg=$pkgver" >&2)
  deb=$(ls "$debdir"/"${pkg}"_*.deb | head -1)
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
