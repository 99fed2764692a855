#!/bin/sh
# /init of the guest initramfs: the kernel's first process. It only moves the root to a tmpfs (runc
# needs pivot_root, which an initramfs root cannot do) and then switch_roots to sentinit, so that
# sentinit is the VM's real PID 1, supervising /stage2.sh, which runs the scenarios. When stage2 exits,
# sentinit exits with its code and the kernel panics with "Attempted to kill init! exitcode=0x..."
# (panic=-1 reboots at once; QEMU runs with -no-reboot, so it exits). With sentinit.build=minimal on the
# kernel command line, the minimal build (/minimal/sentinit) replaces /bin/sentinit, the container's too.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mkdir -p /newroot
mount -t tmpfs -o mode=755,size=400m tmpfs /newroot
for entry in /*; do
    case $entry in
    /newroot | /proc | /sys | /dev) mkdir -p "/newroot$entry" ;;
    *) cp -a "$entry" /newroot/ ;;
    esac
done
cp -a /dev/console /dev/null /newroot/dev/ 2>/dev/null
if tr ' ' '\n' </proc/cmdline | grep -qx sentinit.build=minimal; then
    cp /minimal/sentinit /newroot/bin/sentinit
    cp /minimal/sentinit /newroot/ctroot/bin/sentinit
fi
sha256sum /newroot/bin/sentinit /newroot/ctroot/bin/sentinit | sed 's/^/@@SENTINIT /'
umount /proc
exec switch_root /newroot /bin/sentinit -- /bin/sh /stage2.sh
