#!/bin/sh
# dist/build-static.sh TARGETARCH OUT
# Builds the static sentinit for one of Docker's TARGETARCH values (amd64, arm64) on whatever machine
# runs it, and copies it to OUT. The one place that maps an architecture to a Rust target and a linker,
# shared by Dockerfile.example's build stage (`docker buildx build --platform linux/amd64,linux/arm64`
# runs it on the build platform: the compiler is never emulated) and by dist/build.sh (the release
# binaries), so that images and downloads are built the same way.
#
# Linking: both targets are musl, whose C runtime rustup ships with the target, so no C library is
# needed. aarch64 always links with rustup's rust-lld (.cargo/config.toml). x86_64 links with the
# system's cc on an x86_64 machine (the default, static non-PIE as .cargo/config.toml says); elsewhere
# cc cannot link x86_64, so rust-lld does, with the same relocation model.
# SENTINIT_LINKER=rust-lld forces that cross path on an x86_64 machine (the tests use it).
set -eu
cd "$(dirname "$0")/.."

arch=${1:?usage: dist/build-static.sh TARGETARCH OUT}
out=${2:?usage: dist/build-static.sh TARGETARCH OUT}
case $arch in
amd64) target=x86_64-unknown-linux-musl ;;
arm64) target=aarch64-unknown-linux-musl ;;
*)
    echo "dist/build-static.sh: unsupported TARGETARCH '$arch' (amd64 or arm64)" >&2
    exit 2
    ;;
esac

linker=${SENTINIT_LINKER:-}
if [ -z "$linker" ] && [ "$target" = x86_64-unknown-linux-musl ] && [ "$(uname -m)" != x86_64 ]; then
    linker=rust-lld
fi
if [ "$linker" = rust-lld ] && [ "$target" = x86_64-unknown-linux-musl ]; then
    # RUSTFLAGS replaces .cargo/config.toml's rustflags: the relocation model is repeated.
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
    export RUSTFLAGS="-C relocation-model=static"
fi

# Adds the target when it is missing (the rust image has only the build platform's); a no-op otherwise.
if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
fi
cargo build --release --locked --target "$target" --bin sentinit
mkdir -p "$(dirname "$out")"
cp "${CARGO_TARGET_DIR:-target}/$target/release/sentinit" "$out"
