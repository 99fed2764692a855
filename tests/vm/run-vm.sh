#!/bin/sh
# [VM_ARCH=arm64] run-vm.sh KERNEL INITRAMFS LOG TIMEOUT_SECONDS KERNEL_ARGS...
# Boots one microVM under TCG (KVM guests do not boot on this machine kind; see
# shared/notes/real-kernel-test-environments.md), 1 vCPU, 512 MiB, no network, serial console to LOG.
# VM_ARCH=amd64 (default): qemu-system-x86_64, a `pc` machine, console ttyS0. VM_ARCH=arm64:
# qemu-system-aarch64 `-machine virt` with a Neoverse N1 CPU (AWS Graviton2's core), console on its
# PL011 UART, ttyAMA0; the kernel is an arm64 Image, which QEMU boots directly (no firmware).
# QEMU runs under `timeout`: exit status 124 means the guest did not finish in time.
set -eu
kernel=$1
initramfs=$2
log=$3
limit=$4
shift 4
case ${VM_ARCH:-amd64} in
amd64)
    qemu="qemu-system-x86_64"
    machine=""
    console=ttyS0
    ;;
arm64)
    qemu="qemu-system-aarch64"
    machine="-machine virt -cpu neoverse-n1"
    console=ttyAMA0
    ;;
*)
    echo "run-vm.sh: unknown VM_ARCH '$VM_ARCH' (amd64 or arm64)" >&2
    exit 3
    ;;
esac
qemu_path=$(command -v "$qemu") || {
    echo "run-vm.sh: $qemu not found (tests/vm/install-deps.sh installs it)" >&2
    exit 3
}
: >"$log"
# shellcheck disable=SC2086 # $machine is a list of options
exec timeout --kill-after=10 "$limit" "$qemu_path" $machine -accel tcg -m 512 -smp 1 -nic none -no-reboot \
    -display none -monitor none -serial "file:$log" \
    -kernel "$kernel" -initrd "$initramfs" \
    -append "console=$console panic=-1 loglevel=4 $*" </dev/null
