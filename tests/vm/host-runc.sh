#!/bin/sh
# host-runc.sh SENTINIT_BIN PROGS_DIR
# The host half of the container scenario: rootless runc (as uid 65534) on this machine's real kernel,
# confined to a child memory group of this process's own cgroup v1 memory group, which root creates and
# hands to uid 65534 (root runc with a cgroupsPath would create groups in every hierarchy of a shared
# host; see shared/notes/real-kernel-test-environments.md, pitfalls 3 and 4). sentinit is the container's
# entrypoint running ct.sh. Prints the same @@BEGIN/@@R/@@END lines as the guest and removes every
# group and file it created. Needs root, runc, setpriv, busybox-static and a cgroup v1 memory hierarchy.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
sentinit_bin=$1
progs=$2
s=host-runc

fail() {
    echo "host-runc.sh: $*" >&2
    exit 3
}
[ "$(id -u)" = 0 ] || fail "must run as root"
runc_bin=$(command -v runc) || fail "runc not found (tests/vm/install-deps.sh installs it)"
command -v setpriv >/dev/null || fail "setpriv not found (util-linux)"
busybox=$(command -v busybox) || fail "busybox not found"
own=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
[ -n "$own" ] && [ -d "/sys/fs/cgroup/memory$own" ] || fail "no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory"

group=/sys/fs/cgroup/memory${own%/}/sentinit-rk-$$
work=$(mktemp -d /tmp/sentinit-rk.XXXXXX)
id=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
state=$work/state
cleanup() {
    runc --root "$state" delete -f "$id" >/dev/null 2>&1 || true
    for leaf in "$group"/*/; do [ -d "$leaf" ] && rmdir "$leaf" 2>/dev/null; done
    [ -d "$group" ] && rmdir "$group" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir "$group"
chown 65534:65534 "$group" "$group/cgroup.procs" "$group/tasks"
chmod 755 "$work"
bundle=$work/containers/$id
rootfs=$bundle/rootfs
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" "$rootfs/etc" "$state"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"; done
cp "$sentinit_bin" "$rootfs/bin/sentinit"
cp "$progs/alloc" "$progs/orphan" "$rootfs/bin/"
cp "$here/ct.sh" "$rootfs/ct.sh"
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/hosts"
: >"$rootfs/etc/resolv.conf"
echo "$id" | cut -c1-12 >"$bundle/hostname"
printf '127.0.0.1\tlocalhost\n' >"$bundle/hosts"
: >"$bundle/resolv.conf"
(cd "$bundle" && sh "$here/bundle-config.sh" rootless "$id" "$s" >config.json)
chmod -R a+rX "$work"
chown 65534:65534 "$state"

echo "@@BEGIN $s"
echo "@@R $s container_id $id"
echo "@@R $s runc_version $("$runc_bin" --version | head -n1)"
set +e
sh -c 'echo $$ > "$0/cgroup.procs" && exec setpriv --reuid=65534 --regid=65534 --clear-groups \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp XDG_RUNTIME_DIR= "$1" --root "$2" run --bundle "$3" "$4"' \
    "$group" "$runc_bin" "$state" "$bundle" "$id" >"$work/out" 2>&1 </dev/null
status=$?
set -e
echo "@@R $s status $status"
cat "$work/out"
runc --root "$state" delete -f "$id" >/dev/null 2>&1 || true
echo "@@R $s leftover_groups $(find "$group" -mindepth 1 -type d | wc -l)"
echo "@@END $s"
