#!/usr/bin/env bash
# minimal/build.sh: builds the minimal sentinit, the second release artefact beside the default static
# build (`cargo build --release --target x86_64-unknown-linux-musl`, at most 1 MiB). This script owns the
# minimal build's toolchain pin and its compiler flags, so that the tests (tests/static_binary.rs,
# tests/realkernel.rs), CI (.ci/run) and a person building an image all build the same bytes.
#
# Usage: minimal/build.sh            builds; prints the binary's path on stdout, its size on stderr
#        minimal/build.sh --install  only installs the pinned toolchain if missing (.ci/run)
#
# The same source, the same features, the same behaviour (it passes the same tests); smaller because std
# itself is rebuilt for size (`-Zbuild-std`) without what sentinit never uses:
#   -Cpanic=immediate-abort     a panic aborts at once: no panic message, no backtrace printer
#                               (std's default panic hook keeps both even with panic = "abort")
#   -Cforce-unwind-tables=no    no .eh_frame (100 KiB): nothing unwinds in a binary that cannot unwind
#   optimize_for_size           std's own smaller variants of its algorithms
#   rust-lld, --icf=all         the toolchain's own linker (tighter layout than GNU ld), identical code folded
#   relocation-model=static     static non-PIE, as the default build (RUSTFLAGS replaces
#                               .cargo/config.toml's rustflags, so it is repeated here): why, measured,
#                               in docs/builds.md
# What each lever saves, the ones left out and why: docs/builds.md.
#
# The toolchain is pinned because -Zbuild-std and these options are unstable and change between releases
# (panic=immediate-abort was a std feature, panic_immediate_abort, in earlier ones), so the minimal build
# names the one release it is tested with. RUSTC_BOOTSTRAP=1 lets that stable release
# accept them; only a stable toolchain is sure to be installable on a fresh machine, a nightly is not.
# The pinned toolchain, its rust-src and its musl target are installed with rustup when missing.
#
# Environment: SENTINIT_MINIMAL_TARGET_DIR (default target/minimal), SENTINIT_MINIMAL_TOOLCHAIN (default
# the pin below; another toolchain is at your own risk).
set -euo pipefail
case "${1:-}" in
"" | --install) ;;
*)
    echo "minimal/build.sh: unknown argument '$1' (only --install)" >&2
    exit 2
    ;;
esac

TOOLCHAIN=${SENTINIT_MINIMAL_TOOLCHAIN:-1.95.0}
TARGET=x86_64-unknown-linux-musl
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${SENTINIT_MINIMAL_TARGET_DIR:-$root/target/minimal}

fail() {
    echo "minimal/build.sh: $*" >&2
    exit 1
}
command -v rustup >/dev/null || fail "rustup not found: the minimal build needs the pinned toolchain $TOOLCHAIN"

installed() { rustup component list --toolchain "$TOOLCHAIN" --installed 2>/dev/null | grep -qx "$1"; }
if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    echo "minimal/build.sh: installing the pinned toolchain $TOOLCHAIN with rust-src and $TARGET" >&2
    rustup toolchain install --no-self-update "$TOOLCHAIN" --profile minimal --component rust-src --target "$TARGET" >&2 \
        || fail "cannot install toolchain $TOOLCHAIN"
fi
if ! installed rust-src; then
    rustup component add --toolchain "$TOOLCHAIN" rust-src >&2 || fail "cannot add rust-src to $TOOLCHAIN"
fi
if ! installed "rust-std-$TARGET"; then
    rustup target add --toolchain "$TOOLCHAIN" "$TARGET" >&2 || fail "cannot add $TARGET to $TOOLCHAIN"
fi
[ "${1:-}" != --install ] || exit 0

# A clean environment for cargo: nothing from the caller (a `cargo test` or a shell with RUSTFLAGS set)
# may change what is built.
unset RUSTC RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTDOC RUSTFLAGS CARGO_ENCODED_RUSTFLAGS \
    CARGO_BUILD_RUSTFLAGS CARGO_TARGET_DIR CARGO_BUILD_TARGET CARGO_PROFILE_RELEASE_OPT_LEVEL \
    CARGO_PROFILE_RELEASE_STRIP CARGO_PROFILE_RELEASE_LTO CARGO_PROFILE_RELEASE_PANIC
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Cforce-unwind-tables=no \
-Clink-self-contained=+linker -Clinker-features=+lld -Clink-arg=-Wl,--icf=all \
-Crelocation-model=static"
cd "$root"
rustup run "$TOOLCHAIN" cargo build --release --locked --quiet --bin sentinit --target "$TARGET" \
    --target-dir "$target_dir" -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size >&2 \
    || fail "cargo build failed"

binary=$target_dir/$TARGET/release/sentinit
size=$(stat -c %s "$binary")
echo "minimal/build.sh: $binary: $size bytes ($((size / 1024)) KiB)" >&2
echo "$binary"
