#!/bin/sh
# Installs what the real-kernel matrix (tests/realkernel.rs) needs on a fresh Debian 12 machine, as root:
#   - qemu-system-x86 from bookworm-backports (the plain-bookworm QEMU would remove the image's qemu-utils
#     from backports), through a private apt lists directory: nothing under /etc/apt is changed;
#   - busybox-static (the guest's userland), runc (container runtime, in the guest and rootless on the host),
#     musl-tools (musl-gcc -static for the guest's test programs), gcc, libc6-dev, cpio, xz-utils;
#   - the musl Rust target for the static sentinit;
#   - for the arm64 guests and release binaries (issue 12): qemu-system-arm (qemu-system-aarch64) and
#     qemu-user (static qemu-aarch64, for user-mode emulation; its recommended qemu-user-binfmt is
#     left out, so nothing registers binfmt_misc handlers), both from bookworm-backports like
#     qemu-system-x86; gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (the guest's test programs, static
#     glibc); the aarch64-unknown-linux-musl Rust target (linked with rustup's rust-lld);
#   - and it pre-fetches the guest kernels (tests/vm/fetch-kernels.sh) and the arm64 busybox-static
#     (tests/vm/fetch-busybox.sh) into the cache.
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
    busybox-static runc musl-tools gcc binutils libc6-dev cpio xz-utils util-linux \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get $APT_PRIVATE install -y --no-install-recommends \
    -t bookworm-backports qemu-system-x86 qemu-system-arm qemu-user

if command -v rustup >/dev/null 2>&1; then
    rustup target add x86_64-unknown-linux-musl || echo "install-deps.sh: warning: rustup could not add the musl target; the glibc static fallback will be used" >&2
    rustup target add aarch64-unknown-linux-musl || echo "install-deps.sh: warning: rustup could not add the aarch64 musl target; the arm64 tests will fail in CI" >&2
fi

"$here/fetch-kernels.sh" 6.1 6.12 arm64-6.1 arm64-6.12
"$here/fetch-busybox.sh" arm64 >/dev/null
qemu-system-x86_64 --version | head -n1
qemu-system-aarch64 --version | head -n1
qemu-aarch64 --version | head -n1
