# tests/apt/private.sh: a private apt configuration under CACHE_DIR/apt.
# Sourced, not run:
#
#   log() { echo "me: $*" >&2; }
#   . "$here/../apt/private.sh"
#   private_apt "$cache"                  # sets aptdir and apt_opts
#   apt-cache "${apt_opts[@]}" madison qemu-system-x86
#
# It never touches the system's apt configuration: it reads the mirror URI
# from the system's own deb822 sources, writes a private sources file for
# the suites that carry new kernels and QEMU (sid, trixie-backports), and
# runs apt with every directory pointed into CACHE_DIR/apt. The caller
# defines log() and runs under set -euo pipefail.

private_apt_suites="sid trixie-backports"

# private_apt CACHE_DIR: sets aptdir and apt_opts, writes the sources file
# and refreshes the index when it is older than a day.
private_apt() {
  aptdir=$1/apt
  mkdir -p "$aptdir/sources" "$aptdir/lists/partial" "$aptdir/cache/archives/partial"

  local sysfile=/etc/apt/sources.list.d/debian.sources
  [ -r "$sysfile" ] || { log "no $sysfile: cannot find the Debian mirror"; exit 1; }
  # The first URI line of a stanza whose suites are not the security archive.
  local mirror
  mirror=$(awk '
    /^URIs:/ { uri=$2 }
    /^Suites:/ { if ($0 !~ /-security/ && uri != "" && !found) { print uri; found=1 } }
  ' "$sysfile")
  [ -n "$mirror" ] || { log "no mirror URI in $sysfile"; exit 1; }

  # The file keeps the name it had when only kernels came from here, so an
  # existing cache does not end up with the same sources twice.
  cat > "$aptdir/sources/luoinit-kernel.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $private_apt_suites
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
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
  # The lock keeps two fetch scripts from updating the same lists at once.
  local stamp=$aptdir/lists/.updated
  (
    flock 8
    if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
      log "updating the private package index (${private_apt_suites// /, })"
      apt-get "${apt_opts[@]}" update >&2
      touch "$stamp"
    fi
  ) 8>"$aptdir/.lock"
}

# private_apt_versions PKG: every version of PKG the private index offers,
# one a line, in ascending order.
private_apt_versions() {
  apt-cache "${apt_opts[@]}" madison "$1" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | sort -uV
}

# private_apt_newest VERSION...: the highest Debian version among its
# arguments (dpkg --compare-versions, so a sid upload beats a backport).
private_apt_newest() {
  local best= v
  for v in "$@"; do
    if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
  done
  echo "$best"
}
