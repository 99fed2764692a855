#!/bin/sh
# build-initramfs.sh SENTINIT_BIN OUT_DIR [ARCH [MINIMAL_BIN]]
# Builds OUT_DIR/initramfs.cpio.gz for the guest of ARCH (amd64, the default, or arm64): busybox-static
# with its applets, the static sentinit (and, for amd64, the minimal build as /minimal/sentinit, which
# guest-init.sh puts in its place on sentinit.build=minimal),
# the static test programs (progs/*.c, built with musl-gcc -static, or gcc -static as a fallback), the
# guest's /init and /stage2.sh, runc with its shared libraries, and /ctroot, the test container's root
# filesystem (busybox, sentinit, alloc, orphan, /ct.sh). Needs root (device nodes, file ownership).
# ARCH is amd64 (the default: this machine's own busybox, compiler and runc) or arm64: Debian's arm64
# busybox-static (fetch-busybox.sh), the test programs cross-compiled as static glibc binaries with
# aarch64-linux-gnu-gcc, and no runc (the container scenario runs on amd64 only).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
sentinit_bin=$1
out=$2
arch=${3:-amd64}
minimal_bin=${4:-}

fail() {
    echo "build-initramfs.sh: $*" >&2
    exit 1
}
[ -x "$sentinit_bin" ] || fail "no executable sentinit at $sentinit_bin"
# A static binary asks for no program interpreter (readelf comes with binutils, which gcc pulls in).
is_static() { ! readelf -l "$1" 2>/dev/null | grep -q 'program interpreter'; }
# The ELF machine the guest's CPU runs: a binary of the host's architecture in an arm64 guest would
# only fail at boot, with a far less clear message.
machine() { readelf -h "$1" 2>/dev/null | awk -F: '/Machine:/ { gsub(/^ +/, "", $2); print $2 }'; }
command -v readelf >/dev/null || fail "readelf not found (apt-get install binutils)"
case $arch in
amd64)
    busybox=$(command -v busybox) || fail "busybox not found (apt-get install busybox-static)"
    applets=$("$busybox" --list)
    runc_bin=$(command -v runc) || fail "runc not found (tests/vm/install-deps.sh installs it)"
    if command -v musl-gcc >/dev/null 2>&1; then cc="musl-gcc -static"; else cc="gcc -static"; fi
    elf_machine="Advanced Micro Devices X86-64"
    ;;
arm64)
    busybox=$("$here/fetch-busybox.sh" arm64) || fail "cannot fetch the arm64 busybox-static"
    # The arm64 busybox lists its own applets under user-mode emulation (no binfmt_misc needed).
    command -v qemu-aarch64 >/dev/null || fail "qemu-aarch64 not found (tests/vm/install-deps.sh installs qemu-user)"
    applets=$(qemu-aarch64 "$busybox" --list)
    runc_bin=""
    command -v aarch64-linux-gnu-gcc >/dev/null ||
        fail "aarch64-linux-gnu-gcc not found (tests/vm/install-deps.sh installs gcc-aarch64-linux-gnu)"
    cc="aarch64-linux-gnu-gcc -static"
    elf_machine="AArch64"
    ;;
*) fail "unknown ARCH '$arch' (amd64 or arm64)" ;;
esac
is_static "$busybox" || fail "$busybox is not static (install busybox-static)"
is_static "$sentinit_bin" || fail "$sentinit_bin is not static"
[ -z "$minimal_bin" ] || is_static "$minimal_bin" || fail "$minimal_bin is not static"
for binary in "$busybox" "$sentinit_bin" $minimal_bin; do
    [ "$(machine "$binary")" = "$elf_machine" ] || fail "$binary is for $(machine "$binary"), not $arch"
done

mkdir -p "$out/progs"
for src in "$here"/progs/*.c; do
    name=$(basename "$src" .c)
    $cc -O2 -Wall -Wextra -Werror -o "$out/progs/$name" "$src" || fail "cannot compile $src with $cc"
    if ! is_static "$out/progs/$name" || [ "$(machine "$out/progs/$name")" != "$elf_machine" ]; then
        fail "$cc did not build a static $arch $name"
    fi
done

root=$out/root
rm -rf "$root"
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/dev" "$root/proc" "$root/sys" \
    "$root/tmp" "$root/run" "$root/etc" "$root/var/lib/docker/containers"
install_busybox() {
    cp "$busybox" "$1/bin/busybox"
    for applet in $applets; do
        [ -e "$1/bin/$applet" ] || ln -s busybox "$1/bin/$applet"
    done
}
install_busybox "$root"
cp "$sentinit_bin" "$root/bin/sentinit"
if [ -n "$minimal_bin" ]; then
    mkdir -p "$root/minimal"
    cp "$minimal_bin" "$root/minimal/sentinit"
fi
cp "$out"/progs/* "$root/bin/"
cp "$here/guest-init.sh" "$root/init"
cp "$here/stage2.sh" "$root/stage2.sh"
cp "$here/bundle-config.sh" "$root/bundle-config.sh"
chmod 755 "$root/init" "$root/stage2.sh"
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3

if [ -n "$runc_bin" ]; then
    # runc and what it links against, at the same paths.
    cp "$runc_bin" "$root/usr/sbin/runc"
    for lib in $(ldd "$runc_bin" | awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done

    # The container's root filesystem.
    ct=$root/ctroot
    mkdir -p "$ct/bin" "$ct/proc" "$ct/sys" "$ct/dev" "$ct/tmp" "$ct/etc"
    install_busybox "$ct"
    cp "$sentinit_bin" "$ct/bin/sentinit"
    cp "$out/progs/alloc" "$out/progs/orphan" "$ct/bin/"
    cp "$here/ct.sh" "$ct/ct.sh"
    : >"$ct/etc/hostname"
    : >"$ct/etc/hosts"
    : >"$ct/etc/resolv.conf"
fi

# The archive is written by this machine's cpio (the guest's busybox may be of another architecture);
# sh has no pipefail, so an empty archive is what a failed cpio leaves behind.
command -v cpio >/dev/null || fail "cpio not found (apt-get install cpio)"
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$out/initramfs.cpio.gz.new"
[ "$(wc -c <"$out/initramfs.cpio.gz.new")" -gt 100000 ] || fail "cpio wrote no archive"
mv "$out/initramfs.cpio.gz.new" "$out/initramfs.cpio.gz"
rm -rf "$root"
echo "$out/initramfs.cpio.gz"
