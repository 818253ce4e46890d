#!/bin/bash
# deps.sh: makes sure the tools the kernel build and the VM tests use are
# installed, from Debian's own suite. As root it installs what is missing;
# otherwise it names the packages and fails.
set -euo pipefail

pkgs=(make gcc libc6-dev flex bison bc libelf-dev libssl-dev cpio xz-utils util-linux
      qemu-system-x86 zstd e2fsprogs erofs-utils fdisk patch)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
