#!/bin/sh
# bundle-config.sh MODE ID SCENARIO [CGROUPS_PATH] > config.json
# Prints the OCI config.json of the test container (runc 1.1's `runc spec` defaults, edited as Docker
# would): MODE is `root` (inside the VM: Docker-style cgroupsPath /docker/<id> in every v1 controller)
# or `rootless` (on the host: uid/gid 0 mapped to 65534, a private network namespace, no cgroupsPath so
# runc confines itself to the delegated memory group it is started in). The hostname is the ID's
# first 12 characters and /etc/hostname, /etc/hosts and /etc/resolv.conf are bind mounts of the bundle's
# files, as with Docker. The entrypoint is sentinit, running /ct.sh; memory is limited to 64 MiB, and
# in root mode the CPU to 1.5 cores (a v1 CFS quota).
# Runs under busybox sh in the guest, so no jq or python.
set -eu
mode=$1
id=$2
scenario=$3
cgroups_path=${4:-}
bundle=$(pwd)
hostname=$(echo "$id" | cut -c1-12)

case $mode in
root)
    sys_mount='{ "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid","noexec","nodev","ro"] }'
    devpts_gid=',"gid=5"'
    user_ns=''
    mappings=''
    net_ns='{ "type": "network" },'
    cgroups_line="\"cgroupsPath\": \"$cgroups_path\","
    # A CPU quota of 1.5 cores (Docker's --cpus 1.5), which the workload gets as SENTINIT_CPU_LIMIT.
    cpu_line='"cpu": { "quota": 150000, "period": 100000 },'
    ;;
rootless)
    sys_mount='{ "destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind","nosuid","noexec","nodev","ro"] }'
    devpts_gid=''
    user_ns=',{ "type": "user" }'
    mappings='"uidMappings": [{ "containerID": 0, "hostID": 65534, "size": 1 }], "gidMappings": [{ "containerID": 0, "hostID": 65534, "size": 1 }],'
    net_ns='{ "type": "network" },'
    cgroups_line=''
    cpu_line=''
    ;;
*)
    echo "bundle-config.sh: MODE must be root or rootless" >&2
    exit 2
    ;;
esac

cat <<JSON
{
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": false,
    "user": { "uid": 0, "gid": 0 },
    "args": ["/bin/sentinit", "--report", "json", "--interval", "100ms", "--", "/bin/sh", "/ct.sh"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=$hostname", "SCENARIO=$scenario"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
    "noNewPrivileges": true
  },
  "root": { "path": "rootfs", "readonly": false },
  "hostname": "$hostname",
  "mounts": [
    { "destination": "/proc", "type": "proc", "source": "proc" },
    { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid","strictatime","mode=755","size=65536k"] },
    { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"$devpts_gid] },
    { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid","noexec","nodev","mode=1777","size=65536k"] },
    { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid","noexec","nodev"] },
    $sys_mount,
    { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid","noexec","nodev","relatime","ro"] },
    { "destination": "/etc/hostname", "type": "bind", "source": "$bundle/hostname", "options": ["rbind","rprivate"] },
    { "destination": "/etc/hosts", "type": "bind", "source": "$bundle/hosts", "options": ["rbind","rprivate"] },
    { "destination": "/etc/resolv.conf", "type": "bind", "source": "$bundle/resolv.conf", "options": ["rbind","rprivate"] }
  ],
  "linux": {
    $mappings
    $cgroups_line
    "resources": {
      "devices": [{ "allow": false, "access": "rwm" }],
      $cpu_line
      "memory": { "limit": 67108864 }
    },
    "namespaces": [
      { "type": "pid" },
      $net_ns
      { "type": "ipc" },
      { "type": "uts" },
      { "type": "mount" }$user_ns
    ],
    "maskedPaths": ["/proc/acpi","/proc/asound","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/sys/firmware","/proc/scsi"],
    "readonlyPaths": ["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]
  }
}
JSON
