# Shared shell helpers for tests/vm/*.sh (sourced, not run).
#
# VM_CACHE: where downloads and built artefacts are kept between runs, so a second run is fast and
# needs no network: $SENTINIT_VM_CACHE, else /var/cache/sentinit-vm when it can be written (root, CI),
# else tests/vm/.cache (gitignored).

vm_here=$(cd "$(dirname "$0")" && pwd)

if [ -n "${SENTINIT_VM_CACHE:-}" ]; then
    VM_CACHE=$SENTINIT_VM_CACHE
elif mkdir -p /var/cache/sentinit-vm 2>/dev/null && [ -w /var/cache/sentinit-vm ]; then
    VM_CACHE=/var/cache/sentinit-vm
else
    VM_CACHE=$vm_here/.cache
fi
mkdir -p "$VM_CACHE"
export VM_CACHE

# A private apt configuration: the machine's own Debian mirrors plus bookworm-backports, with lists
# kept under $VM_CACHE/apt. /etc/apt is never modified.
VM_APT_DIR=$VM_CACHE/apt
VM_APT_LISTS=$VM_APT_DIR/lists
APT_PRIVATE="-o Dir::Etc::sourcelist=$VM_APT_DIR/sources.list -o Dir::Etc::sourceparts=- -o Dir::State::Lists=$VM_APT_LISTS"

# vm_apt_arch ARCH: points APT_PRIVATE at the lists of ARCH's packages. amd64 is this machine's own
# architecture (packages are installed from it); arm64 has a lists directory of its own that knows only
# arm64 packages, used for `apt-get download` alone (the arm64 kernel and busybox-static are unpacked
# with dpkg-deb, never installed), so dpkg's architectures are never changed.
vm_apt_arch() {
    case $1 in
    amd64)
        VM_APT_LISTS=$VM_APT_DIR/lists
        APT_PRIVATE="-o Dir::Etc::sourcelist=$VM_APT_DIR/sources.list -o Dir::Etc::sourceparts=- -o Dir::State::Lists=$VM_APT_LISTS"
        ;;
    arm64)
        VM_APT_LISTS=$VM_APT_DIR/lists-arm64
        APT_PRIVATE="-o Dir::Etc::sourcelist=$VM_APT_DIR/sources.list -o Dir::Etc::sourceparts=- -o Dir::State::Lists=$VM_APT_LISTS -o APT::Architecture=arm64 -o APT::Architectures=arm64"
        ;;
    *)
        echo "tests/vm: unknown architecture '$1' (known: amd64 arm64)" >&2
        return 1
        ;;
    esac
}

vm_write_private_sources() {
    mkdir -p "$VM_APT_LISTS/partial"
    deb_uri=""
    sec_uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        deb_uri=$(awk '/^URIs:/{print $2}' /etc/apt/sources.list.d/debian.sources | grep -v security | head -n1)
        sec_uri=$(awk '/^URIs:/{print $2}' /etc/apt/sources.list.d/debian.sources | grep security | head -n1)
    fi
    if [ -z "$deb_uri" ] && [ -f /etc/apt/sources.list ]; then
        deb_uri=$(awk '$1=="deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
        sec_uri=$(awk '$1=="deb" && $3 ~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    if [ -z "$deb_uri" ]; then
        echo "tests/vm: cannot find this machine's Debian mirror in /etc/apt (sources.list or debian.sources)" >&2
        return 1
    fi
    {
        printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-backports main\n' \
            "$deb_uri" "$deb_uri" "$deb_uri"
        [ -z "$sec_uri" ] || printf 'deb %s bookworm-security main\n' "$sec_uri"
    } >"$VM_APT_DIR/sources.list.new"
    mv "$VM_APT_DIR/sources.list.new" "$VM_APT_DIR/sources.list"
}

# Refreshes the private lists (always when asked to, otherwise when missing or older than a day).
vm_apt_update_private_lists() {
    vm_write_private_sources
    stamp=$VM_APT_LISTS.updated
    if [ -n "${SENTINIT_VM_REFRESH:-}" ] || [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
        # shellcheck disable=SC2086
        apt-get $APT_PRIVATE update -q >&2
        touch "$stamp"
    fi
}
