#!/bin/sh
# Installs what the real-kernel matrix (tests/realkernel.rs) needs on a fresh Debian 12 machine, as root:
#   - qemu-system-x86 from bookworm-backports (the plain-bookworm QEMU would remove the image's qemu-utils
#     from backports), through a private apt lists directory: nothing under /etc/apt is changed;
#   - busybox-static (the guest's userland), runc (container runtime, in the guest and rootless on the host),
#     musl-tools (musl-gcc -static for the guest's test programs), gcc, libc6-dev, cpio, xz-utils;
#   - the musl Rust target for the static sentinit;
#   - and it pre-fetches the guest kernels (tests/vm/fetch-kernels.sh) into the cache.
# Idempotent: a second run installs nothing new and re-downloads nothing it has.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

if [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: must run as root" >&2
    exit 1
fi

vm_apt_update_private_lists

# shellcheck disable=SC2086 # $APT_PRIVATE is a list of -o options
DEBIAN_FRONTEND=noninteractive apt-get $APT_PRIVATE install -y --no-install-recommends \
    busybox-static runc musl-tools gcc binutils libc6-dev cpio xz-utils util-linux
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get $APT_PRIVATE install -y --no-install-recommends \
    -t bookworm-backports qemu-system-x86

if command -v rustup >/dev/null 2>&1; then
    rustup target add x86_64-unknown-linux-musl || echo "install-deps.sh: warning: rustup could not add the musl target; the glibc static fallback will be used" >&2
fi

"$here/fetch-kernels.sh"
qemu-system-x86_64 --version | head -n1
