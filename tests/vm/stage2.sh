#!/bin/sh
# The guest's test runner, run by sentinit as the VM's PID 1. Selects scenarios from the kernel command
# line (sentinit.layout=v2|v1, sentinit.scenarios=a,b,...), runs each, and prints on the serial console:
#   @@BEGIN <scenario> / @@END <scenario>   around everything a scenario prints (reports included)
#   @@R <scenario> <key> <value>           observations for the host to check
# The host (tests/realkernel.rs) parses the log after the boot and makes every assertion.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# Kernel messages (OOM kills) must not split our lines on the console; they stay in dmesg.
echo 1 >/proc/sys/kernel/printk

cmdline_value() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n1; }
layout=$(cmdline_value sentinit.layout)
scenarios=$(cmdline_value sentinit.scenarios | tr ',' ' ')
SENTINIT="/bin/sentinit --report json --interval 100ms"

r() { echo "@@R $1 $2 $3"; }
zombies() { cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == "Z" { n++ } END { print n + 0 }'; }
# Waits (at most 5 s) until no zombie is left, then prints how many are.
zombies_after_reaping() {
    n=$(zombies)
    tries=0
    while [ "$n" -gt 0 ] && [ $tries -lt 50 ]; do
        sleep 0.1
        n=$(zombies)
        tries=$((tries + 1))
    done
    echo "$n"
}
wait_for_file() {
    tries=0
    while [ ! -e "$1" ] && [ $tries -lt 100 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
}
# Prints a file's lines (a workload's output, sentinit's stderr with its report).
show() { [ -f "$1" ] && cat "$1"; }
# Reads one key of a flat "key value" cgroup file.
kv() { awk -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null; }

echo "@@VM kernel=$(uname -r) layout=$layout scenarios=$scenarios uptime=$(cut -d' ' -f1 /proc/uptime)"

# ---------------------------------------------------------------------------- cgroup v2 layout
setup_v2() {
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
    echo "+memory +cpu +pids" >/sys/fs/cgroup/cgroup.subtree_control
}
# new_group NAME [MEMORY_MAX]: a fresh child group of the root.
new_group() {
    mkdir "/sys/fs/cgroup/$1"
    [ -n "${2:-}" ] && echo "$2" >"/sys/fs/cgroup/$1/memory.max"
    echo "/sys/fs/cgroup/$1"
}
# in_group DIR CMD...: runs CMD inside the group (the shell moves itself in, then execs).
in_group() {
    dir=$1
    shift
    sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$dir" "$@"
}
# Prints the group's kernel counters that the host compares the report against.
group_counters() {
    s=$1
    g=$2
    r "$s" cg_oom_kill "$(kv "$g/memory.events" oom_kill)"
    r "$s" cg_oom_group_kill "$(kv "$g/memory.events" oom_group_kill)"
    r "$s" cg_memory_max_events "$(kv "$g/memory.events" max)"
    r "$s" cg_memory_peak "$(cat "$g/memory.peak" 2>/dev/null)"
    r "$s" cg_nr_throttled "$(kv "$g/cpu.stat" nr_throttled)"
    r "$s" cg_throttled_usec "$(kv "$g/cpu.stat" throttled_usec)"
    r "$s" cg_usage_usec "$(kv "$g/cpu.stat" usage_usec)"
}

sc_pid1() {
    r pid1 pid1_comm "$(cat /proc/1/comm)"
    r pid1 pid1_cmdline "$(tr '\0' ' ' </proc/1/cmdline)"
    r pid1 runner_ppid "$PPID"
    r pid1 orphan "$(/bin/orphan 3)"
    r pid1 zombies "$(zombies_after_reaping)"
}

sc_signals() {
    rm -f /tmp/sig.ready
    $SENTINIT -- /bin/sh -c 'trap "echo got-TERM; exit 42" TERM; touch /tmp/sig.ready; while :; do sleep 1; done' \
        >/tmp/sig.out 2>&1 &
    pid=$!
    wait_for_file /tmp/sig.ready
    kill -TERM "$pid"
    wait "$pid"
    r signals term_status $?
    show /tmp/sig.out
    $SENTINIT -- /bin/sh -c 'exit 3' 2>/dev/null
    r signals exit3_status $?
    $SENTINIT -- /bin/sh -c 'kill -KILL $$' 2>/dev/null
    r signals killed_status $?
    $SENTINIT --remap-exit 3:0 -- /bin/sh -c 'exit 3' 2>/dev/null
    r signals remapped_status $?
    $SENTINIT -- /nonexistent/program 2>/dev/null
    r signals missing_status $?
}

sc_pidns() {
    unshare -p -f --mount-proc /bin/sentinit -- /bin/sh -c '
        echo "@@R pidns ns_pid1_comm $(cat /proc/1/comm)"
        echo "@@R pidns ns_shell_ppid $PPID"
        echo "@@R pidns orphan $(/bin/orphan 3)"
        n=$(cat /proc/[0-9]*/stat 2>/dev/null | awk "\$3 == \"Z\" { n++ } END { print n + 0 }")
        tries=0
        while [ "$n" -gt 0 ] && [ $tries -lt 50 ]; do
            sleep 0.1
            n=$(cat /proc/[0-9]*/stat 2>/dev/null | awk "\$3 == \"Z\" { n++ } END { print n + 0 }")
            tries=$((tries + 1))
        done
        echo "@@R pidns ns_zombies $n"
        exit 5' >/tmp/pidns.out 2>&1
    r pidns status $?
    show /tmp/pidns.out
}

# The negative control: a PID 1 that never waits (sleep) keeps the same orphans as zombies, which
# shows that the zombie count above can fail.
sc_zombie_control() {
    rm -f /tmp/ctl.done
    unshare -p -f --mount-proc /bin/sh -c '/bin/sh -c "/bin/orphan 3 >/dev/null; touch /tmp/ctl.done" & exec sleep 2' &
    pid=$!
    wait_for_file /tmp/ctl.done
    sleep 0.2
    r zombie-control zombies "$(zombies)"
    wait "$pid"
}

sc_oom_main() {
    g=$(new_group oom-main 64M)
    in_group "$g" $SENTINIT -- /bin/alloc 200 >/tmp/oom-main.out 2>&1
    r oom-main status $?
    show /tmp/oom-main.out
    group_counters oom-main "$g"
}

sc_oom_worker() {
    g=$(new_group oom-worker 64M)
    in_group "$g" $SENTINIT -- /bin/sh -c '/bin/alloc 200; echo "@@R oom-worker worker_status $?"; exit 0' \
        >/tmp/oom-worker.out 2>&1
    r oom-worker status $?
    show /tmp/oom-worker.out
    group_counters oom-worker "$g"
}

sc_normal() {
    g=$(new_group normal 64M)
    in_group "$g" $SENTINIT -- /bin/alloc 30 500 >/tmp/normal.out 2>&1
    r normal status $?
    show /tmp/normal.out
    group_counters normal "$g"
}

# A group whose lifetime memory.peak (~40 MiB, from a run without sentinit) is above what sentinit's
# workload uses (~12 MiB): the report's peak must be this run's. 6.12+ resets the peak through
# sentinit's descriptor; 6.1 cannot, so sentinit must fall back to its sampled maximum.
sc_peak_reset() {
    g=$(new_group peak-reset 64M)
    in_group "$g" /bin/alloc 40 >/tmp/peak-reset-pre.out 2>&1
    r peak-reset pre_status $?
    r peak-reset cg_memory_peak_before "$(cat "$g/memory.peak" 2>/dev/null)"
    r peak-reset cg_memory_current_before "$(cat "$g/memory.current" 2>/dev/null)"
    in_group "$g" $SENTINIT -- /bin/alloc 12 300 >/tmp/peak-reset.out 2>&1
    r peak-reset status $?
    show /tmp/peak-reset.out
    # Read through a fresh descriptor: the group's lifetime peak, which sentinit's reset must not touch.
    group_counters peak-reset "$g"
}

sc_cpu_throttle() {
    g=$(new_group cpu-throttle)
    echo "20000 100000" >"$g/cpu.max"
    in_group "$g" $SENTINIT -- /bin/burn 1500 >/tmp/cpu.out 2>&1
    r cpu-throttle status $?
    show /tmp/cpu.out
    group_counters cpu-throttle "$g"
}

sc_oom_group() {
    g=$(new_group oom-group 64M)
    echo 1 >"$g/memory.oom.group"
    in_group "$g" $SENTINIT -- /bin/sh -c '/bin/alloc 200 & sleep 5; echo "@@R oom-group survived yes"' \
        >/tmp/oom-group.out 2>&1
    r oom-group status $?
    show /tmp/oom-group.out
    group_counters oom-group "$g"
    r oom-group procs_left "$(wc -l <"$g/cgroup.procs")"
}

sc_cgroupns() {
    g=$(new_group cgroupns 64M)
    in_group "$g" /bin/cgns $SENTINIT -- /bin/sh -c '
        echo "@@R cgroupns ns_proc_self_cgroup $(cat /proc/self/cgroup)"
        echo "@@R cgroupns ns_memory_max $(cat /sys/fs/cgroup/memory.max)"
        /bin/alloc 16 300' >/tmp/cgroupns.out 2>&1
    r cgroupns status $?
    show /tmp/cgroupns.out
    group_counters cgroupns "$g"
}

# A group of the workload's own on v2: sentinit alone in a writable (delegated) group, --cgroup own. It
# moves itself into a leaf, enables the controllers for the group's children, gives the workload its
# own group, and undoes all of it at the end.
sc_own_group() {
    g=$(new_group own-group 64M)
    in_group "$g" $SENTINIT --cgroup own -- /bin/sh -c '
        echo "@@R own-group workload_cgroup $(cat /proc/self/cgroup)"
        exec /bin/alloc 30 300' >/tmp/own-group.out 2>&1
    r own-group status $?
    show /tmp/own-group.out
    r own-group leftover_groups "$(find "$g" -mindepth 1 -type d | wc -l)"
    r own-group subtree_control "$(cat "$g/cgroup.subtree_control")"
    group_counters own-group "$g"
}

# A shared v2 group (another process holds 20 MiB in it): the no-internal-process rule leaves no room
# for a group of the workload's own, so the scope is shared and the foreign process is counted.
sc_shared_group() {
    g=$(new_group shared-group 128M)
    in_group "$g" /bin/alloc 20 4000 >/dev/null 2>&1 &
    foreign=$!
    sleep 1
    in_group "$g" $SENTINIT -- /bin/alloc 10 300 >/tmp/shared-group.out 2>&1
    r shared-group status $?
    kill $foreign
    wait $foreign 2>/dev/null
    show /tmp/shared-group.out
    r shared-group leftover_groups "$(find "$g" -mindepth 1 -type d | wc -l)"
}

# A container's read-only cgroup mount (private cgroup namespace): --cgroup own cannot create anything,
# says so, and reads the group as it is.
sc_own_readonly() {
    g=$(new_group own-readonly 64M)
    CGNS_RO=1 in_group "$g" /bin/cgns $SENTINIT --cgroup own -- /bin/alloc 16 300 >/tmp/own-readonly.out 2>&1
    r own-readonly status $?
    show /tmp/own-readonly.out
    r own-readonly leftover_groups "$(find "$g" -mindepth 1 -type d | wc -l)"
}

# cpu.max 1.5 cores and memory.max 64M on a parent group (an ECS task's or a pod's), `max` on the
# container's group below it, and --cgroup own: the workload, in a group of its own two levels below the
# limits, is given them (SENTINIT_CPUS capped at the VM's vCPUs).
sc_cpu_limit() {
    g=$(new_group cpu-limit 64M)
    echo "150000 100000" >"$g/cpu.max"
    echo "+memory +cpu +pids" >"$g/cgroup.subtree_control"
    mkdir "$g/ctr"
    in_group "$g/ctr" $SENTINIT --cgroup own -- /bin/sh -c '
        echo "@@R cpu-limit workload_cgroup $(cat /proc/self/cgroup)"
        echo "@@R cpu-limit cpu_limit ${SENTINIT_CPU_LIMIT-unset}"
        echo "@@R cpu-limit cpus ${SENTINIT_CPUS-unset}"
        echo "@@R cpu-limit memory_limit ${SENTINIT_MEMORY_LIMIT_BYTES-unset}"' >/tmp/cpu-limit.out 2>&1
    r cpu-limit status $?
    r cpu-limit vcpus "$(grep -c '^processor' /proc/cpuinfo)"
    show /tmp/cpu-limit.out
    r cpu-limit leftover_groups "$(find "$g/ctr" -mindepth 1 -type d | wc -l)"
}

# ---------------------------------------------------------------------------- cgroup v1 layout
# Docker's hybrid host: every v1 controller mounted, name=systemd, and an (empty) cgroup2 at unified.
setup_v1() {
    mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
    for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
        mkdir /sys/fs/cgroup/$c
        mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
    done
    mkdir /sys/fs/cgroup/systemd
    mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
    mkdir /sys/fs/cgroup/unified
    mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
}

sc_runc() {
    id=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    bundle=/var/lib/docker/containers/$id
    mkdir -p "$bundle"
    cp -a /ctroot "$bundle/rootfs"
    echo "$id" | cut -c1-12 >"$bundle/hostname"
    printf '127.0.0.1\tlocalhost\n' >"$bundle/hosts"
    : >"$bundle/resolv.conf"
    (cd "$bundle" && sh /bundle-config.sh root "$id" runc "/docker/$id" >config.json)
    r runc container_id "$id"
    runc run --bundle "$bundle" "$id" >/tmp/runc.out 2>&1
    r runc status $?
    show /tmp/runc.out
    r runc leftover_groups "$(find /sys/fs/cgroup -path "*/docker/$id" -type d 2>/dev/null | wc -l)"
}

case $layout in
v2) setup_v2 ;;
v1) setup_v1 ;;
*) echo "@@ERROR unknown layout '$layout'" ;;
esac

for s in $scenarios; do
    echo "@@BEGIN $s"
    fn=sc_$(echo "$s" | tr '-' '_')
    if type "$fn" >/dev/null 2>&1; then
        "$fn"
    else
        echo "@@ERROR unknown scenario $s"
    fi
    echo "@@END $s"
done
echo "@@DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
# sentinit (PID 1) passes this on: the kernel's panic line then says exitcode=0x00000700.
exit 7
