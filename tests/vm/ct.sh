#!/bin/sh
# The test container's workload, run by sentinit as the container's PID 1 (runc in the VM, rootless runc
# on the host). Prints what the container sees as "@@R <scenario> <key> <value>" lines for the host to
# check, makes orphans for sentinit to reap, then lets a child be OOM-killed at the 64 MiB limit and
# exits with that child's status.
s=${SCENARIO:-container}
r() { echo "@@R $s $1 $2"; }
zombies() { cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == "Z" { n++ } END { print n + 0 }'; }

r ct_pid1_comm "$(cat /proc/1/comm)"
r ct_shell_ppid "$PPID"
r ct_hostname "$(hostname)"
r ct_docker_container_id "${DOCKER_CONTAINER_ID:-unset}"
r ct_cpu_limit "${SENTINIT_CPU_LIMIT:-unset}"
r ct_cpus "${SENTINIT_CPUS:-unset}"
r ct_memory_limit_env "${SENTINIT_MEMORY_LIMIT_BYTES:-unset}"
while read -r line; do r ct_proc_self_cgroup "$line"; done </proc/self/cgroup
r ct_identity "$(/bin/sentinit --identity 2>/dev/null | tr -d '\n')"
r ct_orphan "$(/bin/orphan 3)"
n=$(zombies)
tries=0
while [ "$n" -gt 0 ] && [ $tries -lt 50 ]; do
    sleep 0.1
    n=$(zombies)
    tries=$((tries + 1))
done
r ct_zombies "$n"
r ct_memory_limit "$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo unreadable)"
/bin/alloc 200
status=$?
r ct_alloc_status "$status"
r ct_oom_kill "$(awk '$1 == "oom_kill" { print $2 }' /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null)"
exit "$status"
