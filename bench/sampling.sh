#!/usr/bin/env bash
# bench/sampling.sh: what per-process sampling costs sentinit, by number of processes.
#
# Usage (as root, from anywhere):  bench/sampling.sh [SECONDS]     (default 10)
#
# At each --interval tick (default 1 s) sentinit reads /proc/<pid>/stat of every process of the
# workload (src/processes.rs), so the cost of a sample grows with the number of processes. This runs
# the static release build with a workload of 1, 100 and 1,000 sleeping processes (a shell that starts
# N-1 `sleep`s, then execs the last one), lets them settle, then measures sentinit's CPU over SECONDS at the default
# interval: utime+stime from /proc/<pid>/stat (clock ticks, 10 ms each at 100 Hz) and, finer, the
# run time in /proc/<pid>/schedstat (ns). Both are printed as a share of one core, side by side, for
# sentinit as PID 1 of a PID namespace (unshare --pid --fork --mount-proc: every process of the
# namespace but itself is the workload) and as an ordinary child (it then reads the stat of every
# process of the machine to find its descendants). Prints figures and asserts nothing.
set -u -o pipefail

SECONDS_MEASURED=${1:-10}
COUNTS=(1 100 1000)
SETTLE=3

if [ "$(id -u)" != 0 ]; then
    echo "bench/sampling.sh: run as root (it uses PID namespaces)" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
say() { echo "bench: $*" >&2; }

target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
say "building sentinit (release, static)"
if (cd "$ROOT" && cargo build --release --target x86_64-unknown-linux-musl >&2); then
    SENTINIT=$target_dir/x86_64-unknown-linux-musl/release/sentinit
elif (cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu >&2); then
    SENTINIT=$target_dir/x86_64-unknown-linux-gnu/release/sentinit
else
    say "could not build sentinit"
    exit 1
fi
for var in $(compgen -e); do
    case "$var" in SENTINIT_* | ECS_* | AWS_*) unset "$var" ;; esac
done

RUNNING=()
cleanup() { for pid in "${RUNNING[@]}"; do kill -KILL "$pid" 2>/dev/null; done; }
trap cleanup EXIT

HZ=$(getconf CLK_TCK)
# utime+stime in clock ticks; the fields after the ")" that ends the command name start at field 3.
cpu_ticks() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return; s=${s##*) }; awk '{ print $12 + $13 }' <<<"$s"; }
run_ns() { awk '{ print $1 }' "/proc/$1/schedstat" 2>/dev/null; }
count_descendants() { # processes below $1, by parent links
    ps -e -o pid=,ppid= | awk -v root="$1" '{ parent[$1] = $2 } END {
        n = 0; for (p in parent) { q = parent[p]; while (q > 1) { if (q == root) { n++; break } q = parent[q] } } print n }'
}

# One measurement: $1 = pid1|child, $2 = number of workload processes. Prints "ticks_pct ns_pct found".
measure() {
    local mode=$1 count=$2 workload launcher pid t0 t1 n0 n1 found
    # The shell starts count-1 sleeps, then becomes the last one: count processes in all.
    workload="i=1; while [ \$i -lt $count ]; do sleep 3600 & i=\$((i + 1)); done; exec sleep 3600"
    if [ "$mode" = pid1 ]; then
        unshare --pid --fork --mount-proc "$SENTINIT" --report none -- sh -c "$workload" </dev/null >/dev/null 2>&1 &
        launcher=$!
        RUNNING+=("$launcher")
        for _ in $(seq 100); do
            pid=$(cat "/proc/$launcher/task/$launcher/children" 2>/dev/null | awk '{ print $1 }')
            [ -n "$pid" ] && break
            sleep 0.05
        done
    else
        "$SENTINIT" --report none -- sh -c "$workload" </dev/null >/dev/null 2>&1 &
        pid=$!
        launcher=$pid
        RUNNING+=("$pid")
    fi
    sleep "$SETTLE"
    found=$(count_descendants "$pid")
    t0=$(cpu_ticks "$pid") n0=$(run_ns "$pid")
    sleep "$SECONDS_MEASURED"
    t1=$(cpu_ticks "$pid") n1=$(run_ns "$pid")
    kill -TERM "$pid" 2>/dev/null
    wait "$launcher" 2>/dev/null
    awk -v t0="$t0" -v t1="$t1" -v n0="$n0" -v n1="$n1" -v hz="$HZ" -v s="$SECONDS_MEASURED" -v f="$found" \
        'BEGIN { printf "%.2f %.3f %d %d\n", (t1 - t0) / hz / s * 100, (n1 - n0) / 1e9 / s * 100, f, t1 - t0 }'
}

declare -A CELL
for mode in pid1 child; do
    for count in "${COUNTS[@]}"; do
        say "$mode, $count process(es), $SECONDS_MEASURED s"
        read -r ticks_pct ns_pct found ticks <<<"$(measure "$mode" "$count")"
        say "  found $found, $ticks ticks, $ticks_pct % (stat), $ns_pct % (schedstat)"
        CELL[$mode,$count]="$ns_pct % ($ticks ticks = $ticks_pct %)"
    done
done

echo "Machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores, kernel $(uname -r);" \
    "$(date -u '+%Y-%m-%d %H:%M UTC'); $(ps -e --no-headers | wc -l) processes on the machine at the end"
echo
echo "sentinit's CPU while it supervises N sleeping processes, default --interval (1 s), over $SECONDS_MEASURED s,"
echo "as a share of one core: schedstat run time (utime+stime clock ticks at $HZ Hz, and that share)."
echo
printf '| sentinit as |'
for count in "${COUNTS[@]}"; do printf ' %s process(es) |' "$count"; done
echo
printf '|---|'
for _ in "${COUNTS[@]}"; do printf -- '---:|'; done
echo
for mode in pid1 child; do
    if [ "$mode" = pid1 ]; then printf '| PID 1 of a PID namespace |'; else printf '| ordinary child (reads every process of the machine) |'; fi
    for count in "${COUNTS[@]}"; do printf ' %s |' "${CELL[$mode,$count]}"; done
    echo
done
