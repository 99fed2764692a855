#!/bin/sh
# run-vm.sh KERNEL INITRAMFS LOG TIMEOUT_SECONDS KERNEL_ARGS...
# Boots one microVM under TCG (KVM guests do not boot on this machine kind; see
# shared/notes/real-kernel-test-environments.md), 1 vCPU, 512 MiB, no network, serial console to LOG.
# QEMU runs under `timeout`: exit status 124 means the guest did not finish in time.
set -eu
kernel=$1
initramfs=$2
log=$3
limit=$4
shift 4
qemu=$(command -v qemu-system-x86_64) || {
    echo "run-vm.sh: qemu-system-x86_64 not found (tests/vm/install-deps.sh installs it)" >&2
    exit 3
}
: >"$log"
exec timeout --kill-after=10 "$limit" "$qemu" -accel tcg -m 512 -smp 1 -nic none -no-reboot \
    -display none -monitor none -serial "file:$log" \
    -kernel "$kernel" -initrd "$initramfs" \
    -append "console=ttyS0 panic=-1 loglevel=4 $*" </dev/null
