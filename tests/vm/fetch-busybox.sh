#!/bin/sh
# fetch-busybox.sh ARCH
# The guest's userland for a foreign architecture: Debian's busybox-static for ARCH (arm64), downloaded
# with `apt-get download` from the private ARCH-only lists (lib.sh) and unpacked with dpkg-deb: never
# installed, and dpkg's architectures are never changed. Kept in $VM_CACHE/busybox-<arch>/ (busybox,
# version) and reused without network access; SENTINIT_VM_REFRESH=1 picks up a newer package.
# Prints the path of the static busybox. (The amd64 guests use this machine's own busybox-static.)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

arch=${1:?usage: fetch-busybox.sh ARCH}
dir=$VM_CACHE/busybox-$arch
mkdir -p "$VM_CACHE/kernels"
# The same lock as fetch-kernels.sh: both refresh the private apt lists.
exec 9>"$VM_CACHE/kernels/.lock"
flock 9

if [ -n "${SENTINIT_VM_REFRESH:-}" ] || [ ! -s "$dir/busybox" ] || [ ! -s "$dir/version" ]; then
    vm_apt_arch "$arch"
    vm_apt_update_private_lists
    # shellcheck disable=SC2086
    version=$(apt-cache $APT_PRIVATE show busybox-static | awk '/^Version:/{print $2; exit}')
    work=$(mktemp -d "$VM_CACHE/.busybox.XXXXXX")
    # shellcheck disable=SC2086
    (cd "$work" && apt-get $APT_PRIVATE -o APT::Sandbox::User=root download -q "busybox-static=$version" >&2)
    dpkg-deb --fsys-tarfile "$work"/*.deb | tar -x -C "$work" ./bin/busybox
    mkdir -p "$work/out"
    mv "$work/bin/busybox" "$work/out/busybox"
    echo "$version" >"$work/out/version"
    rm -rf "$dir"
    mv "$work/out" "$dir"
    rm -rf "$work"
fi
echo "$dir/busybox"
