#!/bin/sh
# Downloads the guest kernels as Debian packages (never installed: only ./boot/vmlinuz-* and
# ./boot/config-* are unpacked with dpkg-deb) into $VM_CACHE/kernels/<series>/:
#   6.1         Debian 12's kernel: the package linux-image-amd64 of bookworm (-security) depends on
#   6.12        the bookworm-backports kernel: what linux-image-amd64/bookworm-backports depends on
#   arm64-6.1   the same for arm64 (linux-image-arm64), from the arm64-only private lists (lib.sh)
#   arm64-6.12  (Debian's arm64 vmlinuz is an uncompressed Image, which QEMU's -kernel boots as is)
# Each directory gets vmlinuz, config, package (name) and version (Debian version). Once a kernel is
# cached it is reused without any network access; SENTINIT_VM_REFRESH=1 picks up newer packages.
# Prints one line per kernel: "<series> <package> <version>".
set -eu

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

series_list=${*:-6.1 6.12}
mkdir -p "$VM_CACHE/kernels"
# Tests fetch concurrently: one fetcher at a time (apt's own lists lock would fail, not wait).
exec 9>"$VM_CACHE/kernels/.lock"
flock 9

for series in $series_list; do
    dir=$VM_CACHE/kernels/$series
    if [ -z "${SENTINIT_VM_REFRESH:-}" ] && [ -s "$dir/vmlinuz" ] && [ -s "$dir/package" ] && [ -s "$dir/version" ]; then
        echo "$series $(cat "$dir/package") $(cat "$dir/version")"
        continue
    fi
    case $series in
    arm64-*) arch=arm64 ;;
    *) arch=amd64 ;;
    esac
    version_series=${series#arm64-}
    case $version_series in
    6.1) meta=linux-image-$arch ;;
    6.12) meta=linux-image-$arch/bookworm-backports ;;
    *)
        echo "fetch-kernels.sh: unknown kernel series '$series' (known: 6.1 6.12 arm64-6.1 arm64-6.12)" >&2
        exit 2
        ;;
    esac
    vm_apt_arch "$arch"
    vm_apt_update_private_lists
    # shellcheck disable=SC2086
    pkg=$(apt-cache $APT_PRIVATE depends "$meta" | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    case $pkg in
    linux-image-"$version_series".*-"$arch") ;;
    *)
        echo "fetch-kernels.sh: $meta depends on '$pkg', not a $version_series $arch kernel" >&2
        exit 1
        ;;
    esac
    # shellcheck disable=SC2086
    version=$(apt-cache $APT_PRIVATE show "$pkg" | awk '/^Version:/{print $2; exit}')
    work=$(mktemp -d "$VM_CACHE/kernels/.fetch.XXXXXX")
    # shellcheck disable=SC2086
    (cd "$work" && apt-get $APT_PRIVATE -o APT::Sandbox::User=root download -q "$pkg=$version" >&2)
    deb=$(ls "$work"/*.deb)
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards './boot/vmlinuz-*' './boot/config-*'
    mkdir -p "$work/out"
    mv "$work"/boot/vmlinuz-* "$work/out/vmlinuz"
    mv "$work"/boot/config-* "$work/out/config"
    echo "$pkg" >"$work/out/package"
    echo "$version" >"$work/out/version"
    rm -rf "$dir"
    mv "$work/out" "$dir"
    rm -rf "$work"
    echo "$series $pkg $version"
done
