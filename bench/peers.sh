#!/usr/bin/env bash
# bench/peers.sh: owns the peers bench/run.sh compares sentinit with: tini, dumb-init and catatonit built
# statically with musl-gcc from Debian's source packages, cached so that a rerun builds nothing.
#
# Usage (as root):  bench/peers.sh [--rebuild]      (bench/run.sh calls it; it rarely needs running alone)
#
# Prints one line per peer on stdout, tab-separated:  NAME  PATH-OF-STRIPPED-BINARY  PROVENANCE
# (progress goes to stderr). Why from source: Debian's binary packages are glibc builds (tini and
# dumb-init dynamic, tini-static and catatonit static glibc, ~690 KiB), which are not the floor a
# static init is held to; musl builds of the same sources are.
#
# How: `apt-get source --download-only` through a private apt configuration (one deb-src line for this
# machine's own Debian mirror, lists kept in the cache; /etc/apt is never touched), `dpkg-source -x`
# (Debian's patches applied: catatonit 0.1.7 needs one to autoreconf), then upstream's own build with
# CC=musl-gcc: tini `cmake .. && make tini-static`, dumb-init `make`, catatonit `./autogen.sh &&
# ./configure && make`; every binary stripped. When Debian's diff cannot be downloaded but the upstream
# tarball can (it is checked against the signed .dsc), the upstream tarball is built and the provenance
# says so. When a peer cannot be built at all, Debian's binary package is unpacked instead (glibc) and
# the provenance says that too.
#
# Cache: $BENCH_CACHE, else /var/cache/sentinit-bench when writable, else bench/.peers (gitignored).
# Nothing is written to the repository except, in that last case, bench/.peers.
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REBUILD=0
[ "${1:-}" = --rebuild ] && REBUILD=1

if [ -n "${BENCH_CACHE:-}" ]; then
    CACHE=$BENCH_CACHE
elif mkdir -p /var/cache/sentinit-bench 2>/dev/null && [ -w /var/cache/sentinit-bench ]; then
    CACHE=/var/cache/sentinit-bench
else
    CACHE=$HERE/.peers
fi
mkdir -p "$CACHE/peers" "$CACHE/src" "$CACHE/apt/lists/partial" || exit 1
say() { echo "bench/peers.sh: $*" >&2; }

APT_PRIVATE=(-o "Dir::Etc::sourcelist=$CACHE/apt/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$CACHE/apt/lists")
export DEBIAN_FRONTEND=noninteractive

# The build tools, from the machine's own apt configuration.
install_build_tools() {
    local missing=() pair
    for pair in musl-gcc:musl-tools cmake:cmake autoreconf:autoconf automake:automake libtoolize:libtool \
        make:make dpkg-source:dpkg-dev strip:binutils; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

# deb-src lists for this machine's mirror, refreshed when missing or older than a week.
private_lists() {
    local uri="" stamp=$CACHE/apt/updated
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ { print $2 }' /etc/apt/sources.list.d/debian.sources | grep -v security | head -n1)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $3 !~ /security/ { print $2; exit }' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || { say "no Debian mirror in /etc/apt"; return 1; }
    printf 'deb-src %s bookworm main\n' "$uri" >"$CACHE/apt/sources.list"
    if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +10080 2>/dev/null)" ]; then
        apt-get "${APT_PRIVATE[@]}" update -q >&2 || return 1
        touch "$stamp"
    fi
}

# Unpacks the source package $1 into $2; prints what was unpacked ("debian" or "upstream").
unpack_source() {
    local pkg=$1 dest=$2 dsc orig
    (cd "$CACHE/src" && apt-get "${APT_PRIVATE[@]}" source --download-only "$pkg" >&2) ||
        say "$pkg: not every file of the source package could be downloaded"
    dsc=$(ls -t "$CACHE/src/${pkg}"_*.dsc 2>/dev/null | head -n1)
    [ -n "$dsc" ] || return 1
    rm -rf "$dest" && mkdir -p "$dest"
    if dpkg-source -x "$dsc" "$dest/src" >&2 2>&1; then
        echo "debian"
        return 0
    fi
    # The Debian diff is missing: the upstream tarball alone, if its checksum matches the .dsc.
    orig=$(ls "$CACHE/src/${pkg}"_*.orig.tar.* 2>/dev/null | head -n1)
    [ -n "$orig" ] || return 1
    grep -q "$(sha256sum "$orig" | cut -d' ' -f1)" "$dsc" || { say "$orig does not match $dsc"; return 1; }
    mkdir -p "$dest/src" && tar -xf "$orig" -C "$dest/src" --strip-components=1 || return 1
    echo "upstream"
}

dsc_version() { awk '/^Version:/ { print $2; exit }' "$(ls -t "$CACHE/src/${1}"_*.dsc | head -n1)"; }

build_peer() { # $1: name; builds $CACHE/peers/$1 from source and writes $CACHE/peers/$1.source
    local name=$1 dir=$CACHE/build/$1 what out
    what=$(unpack_source "$name" "$dir") || return 1
    case "$name" in
    tini)
        (cd "$dir/src" && mkdir -p build && cd build && CC=musl-gcc cmake .. >&2 && make tini-static >&2) || return 1
        out=$dir/src/build/tini-static
        ;;
    dumb-init)
        (cd "$dir/src" && make CC=musl-gcc >&2) || return 1
        out=$dir/src/dumb-init
        ;;
    catatonit)
        (cd "$dir/src" && ./autogen.sh >&2 && CC=musl-gcc ./configure >&2 && make >&2) || return 1
        out=$dir/src/catatonit
        ;;
    esac
    strip -o "$CACHE/peers/$name" "$out" || return 1
    if [ "$what" = debian ]; then
        echo "Debian source package $name $(dsc_version "$name"), musl-gcc" >"$CACHE/peers/$name.source"
    else
        echo "upstream tarball of Debian source package $name $(dsc_version "$name") (Debian's diff could not be downloaded), musl-gcc" \
            >"$CACHE/peers/$name.source"
    fi
    rm -rf "$dir"
}

fallback_binary() { # $1: name; Debian's binary package, unpacked (not installed)
    local name=$1 dir=$CACHE/build/$1-deb deb file
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && apt-get download "$name" >&2) || return 1
    deb=$(ls "$dir"/*.deb | head -n1)
    dpkg-deb -x "$deb" "$dir/root" || return 1
    file=$dir/root/usr/bin/$name
    [ "$name" = tini ] && file=$dir/root/usr/bin/tini-static
    strip -o "$CACHE/peers/$name" "$file" || return 1
    echo "Debian binary package $name $(dpkg-deb -f "$deb" Version) (glibc; the musl build from source failed)" \
        >"$CACHE/peers/$name.source"
    rm -rf "$dir"
}

NEED=()
for name in tini dumb-init catatonit; do
    # A glibc fallback is not kept: the musl build is tried again at every run until it works.
    if [ "$REBUILD" = 1 ] || [ ! -x "$CACHE/peers/$name" ] || ! grep -qs musl-gcc "$CACHE/peers/$name.source"; then
        NEED+=("$name")
    fi
done
if [ ${#NEED[@]} -gt 0 ]; then
    install_build_tools || say "could not install every build tool"
    private_lists || say "no deb-src lists: falling back to Debian's binary packages"
    for name in "${NEED[@]}"; do
        say "building $name with musl-gcc"
        build_peer "$name" || { say "$name: the build from source failed; using Debian's binary package"; fallback_binary "$name"; } ||
            say "$name: no binary at all"
    done
fi
for name in tini dumb-init catatonit; do
    [ -x "$CACHE/peers/$name" ] && printf '%s\t%s\t%s\n' "$name" "$CACHE/peers/$name" "$(cat "$CACHE/peers/$name.source")"
done
exit 0
