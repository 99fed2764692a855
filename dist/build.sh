#!/bin/sh
# dist/build.sh: the release artifacts, what users download with `ADD` in a Dockerfile (as tini's
# releases are used). Builds the static sentinit for x86_64 and aarch64 (dist/build-static.sh, the
# Dockerfile's build too), checks each one (an ELF of the right machine, static: no program
# interpreter, and its --version, the arm64 one under qemu-aarch64 called directly: no binfmt_misc is
# assumed), and writes to dist/out/ (or $DIST_OUT):
#   sentinit-<version>-linux-amd64, sentinit-<version>-linux-arm64   Docker's TARGETARCH spellings
#   SHA256SUMS                                                       `sha256sum -c SHA256SUMS` checks them
# Needs cargo with both musl targets (rustup target add ...), readelf (binutils), qemu-aarch64 (Debian's
# qemu-user) and sha256sum; tests/vm/install-deps.sh installs them all.
set -eu
cd "$(dirname "$0")/.."

fail() {
    echo "dist/build.sh: $*" >&2
    exit 1
}
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || fail "no version in Cargo.toml"
out=${DIST_OUT:-dist/out}
command -v readelf >/dev/null || fail "readelf not found (apt-get install binutils)"
command -v qemu-aarch64 >/dev/null || fail "qemu-aarch64 not found (tests/vm/install-deps.sh installs qemu-user)"

rm -rf "$out"
mkdir -p "$out"
for arch in amd64 arm64; do
    file=sentinit-$version-linux-$arch
    binary=$out/$file
    dist/build-static.sh "$arch" "$binary"
    case $arch in
    amd64) machine="Advanced Micro Devices X86-64" run="" ;;
    arm64) machine="AArch64" run="qemu-aarch64" ;;
    esac
    got=$(readelf -h "$binary" | awk -F: '/Machine:/ { gsub(/^ +/, "", $2); print $2 }')
    [ "$got" = "$machine" ] || fail "$file is for '$got', not $machine"
    ! readelf -l "$binary" | grep -q 'program interpreter' || fail "$file is not static"
    ! readelf -d "$binary" | grep -q '(NEEDED)' || fail "$file needs shared libraries"
    said=$($run "$binary" --version) || fail "$file --version failed"
    [ "$said" = "sentinit $version" ] || fail "$file --version says '$said', not 'sentinit $version'"
    echo "$file: $(wc -c <"$binary") bytes, static $machine, --version: $said"
done
(cd "$out" && sha256sum "sentinit-$version-linux-amd64" "sentinit-$version-linux-arm64" >SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
echo "$out/SHA256SUMS:"
cat "$out/SHA256SUMS"
