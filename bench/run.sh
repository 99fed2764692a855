#!/usr/bin/env bash
# bench/run.sh: sentinit beside Debian's tini (and tini-static), dumb-init and catatonit.
#
# Usage (as root, from anywhere):  bench/run.sh [--quick]
#
# Installs what it needs with apt-get (tini, dumb-init, catatonit, hyperfine, gcc, file), builds
# sentinit statically (musl target; a glibc +crt-static build as the fallback), compiles the two
# small C workloads in bench/ and prints one Markdown table on stdout (progress goes to stderr):
#
#   size      stripped size of the binary, and how `file` says it is linked
#   startup   `/bin/true` through the shim versus `/bin/true` alone (hyperfine -N in rounds; mean, min, ratio)
#   memory    VmRSS and RssAnon (/proc/PID/status) of the shim while its child sleeps
#   idle CPU  utime+stime ticks (/proc/PID/stat) and context switches over 10 s of idling
#   reaping   the shim as PID 1 (unshare --pid --fork --mount-proc) with bench/orphans.c, which hands
#             it 10,000 zombies at once and times until the last one is gone; plus the whole run
#   signals   bench/siglat.c: SIGUSR1 sent to the shim -> the workload's handler runs (median, p90)
#
# Every shim runs the same workload the same way. Startup, memory, idle CPU and signals run the shim
# as an ordinary child (tini with -s, which it needs outside PID 1 to act as a subreaper); reaping
# runs it as PID 1 (tini without -s). sentinit runs with its defaults (its START line and report go
# to stderr, which is discarded). A shim that is missing or fails a measurement gets "n/a".
# The script prints figures and asserts nothing about them: timings on a shared machine are noisy.
set -u -o pipefail

QUICK=0
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help)
        sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench/run.sh: unknown argument '$arg' (only --quick)" >&2
        exit 2
        ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    WARMUP=10 RUNS=200 ROUNDS=2 REAP_RUNS=1 SIGNALS=100
else
    WARMUP=50 RUNS=2000 ROUNDS=5 REAP_RUNS=5 SIGNALS=500
fi
IDLE_SECONDS=10
ORPHANS=10000

if [ "$(id -u)" != 0 ]; then
    echo "bench/run.sh: run as root (it uses apt-get and PID namespaces)" >&2
    exit 2
fi

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=$(mktemp -d /tmp/sentinit-bench.XXXXXX)
IDLE_PIDS=()
cleanup() {
    for pid in "${IDLE_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

say() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Tools: Debian's packages of the peers, hyperfine, and what the script itself uses.
# ---------------------------------------------------------------------------------------------
install_tools() {
    local missing=() pair cmd pkg
    for pair in tini:tini tini-static:tini dumb-init:dumb-init catatonit:catatonit hyperfine:hyperfine \
        gcc:gcc file:file strip:binutils unshare:util-linux timeout:coreutils; do
        cmd=${pair%%:*} pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    # hyperfine's JSON is read with python3, or jq when there is no python3.
    command -v python3 >/dev/null 2>&1 || command -v jq >/dev/null 2>&1 || missing+=(jq)
    [ ${#missing[@]} -eq 0 ] && return
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists first only when there are none (a fresh container image) or when the
    # install fails with the lists we have.
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        apt-get update -q >&2 || say "apt-get update failed"
    fi
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
        apt-get update -q >&2 || say "apt-get update failed"
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
            say "could not install all of ${missing[*]}: what is missing will show as n/a"
    fi
}

# ---------------------------------------------------------------------------------------------
# sentinit: the static release build the README describes.
# ---------------------------------------------------------------------------------------------
SENTINIT=""
SENTINIT_BUILD=""
build_sentinit() {
    local target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
    cd "$ROOT" || return
    say "building sentinit (release, static)"
    if command -v rustup >/dev/null 2>&1; then
        rustup target add x86_64-unknown-linux-musl >&2 || say "rustup could not add the musl target"
    fi
    if cargo build --release --target x86_64-unknown-linux-musl >&2; then
        SENTINIT=$target_dir/x86_64-unknown-linux-musl/release/sentinit
        SENTINIT_BUILD="musl"
    elif RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu >&2; then
        SENTINIT=$target_dir/x86_64-unknown-linux-gnu/release/sentinit
        SENTINIT_BUILD="glibc +crt-static"
    else
        say "could not build sentinit: its row will be n/a"
    fi
    cd - >/dev/null || true
}

install_tools
build_sentinit

# sentinit reads SENTINIT_* and ECS_* variables; the benchmark measures its defaults and must never
# send it to a metadata endpoint, so none of them reach it.
for var in $(compgen -e); do
    case "$var" in SENTINIT_* | ECS_* | AWS_*) unset "$var" ;; esac
done

# ---------------------------------------------------------------------------------------------
# The shims: binary, arguments as an ordinary child, arguments as PID 1, version.
# ---------------------------------------------------------------------------------------------
NAMES=(sentinit tini tini-static dumb-init catatonit)
declare -A BIN CHILD_ARGS PID1_ARGS VERSION
BIN[sentinit]=$SENTINIT
BIN[tini]=$(command -v tini || true)
BIN[tini-static]=$(command -v tini-static || true)
BIN[dumb-init]=$(command -v dumb-init || true)
BIN[catatonit]=$(command -v catatonit || true)
CHILD_ARGS=([sentinit]="--" [tini]="-s --" [tini-static]="-s --" [dumb-init]="" [catatonit]="--")
PID1_ARGS=([sentinit]="--" [tini]="--" [tini-static]="--" [dumb-init]="" [catatonit]="--")

debian_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }
if [ -n "$SENTINIT" ] && [ -x "$SENTINIT" ]; then
    VERSION[sentinit]="$("$SENTINIT" --version 2>/dev/null | awk '{print $2}') ($SENTINIT_BUILD)"
fi
VERSION[tini]="$(debian_version tini) (Debian)"
VERSION[tini-static]="$(debian_version tini) (Debian)"
VERSION[dumb-init]="$(debian_version dumb-init) (Debian)"
VERSION[catatonit]="$(debian_version catatonit) (Debian)"

AVAILABLE=()
for name in "${NAMES[@]}"; do
    if [ -n "${BIN[$name]}" ] && [ -x "${BIN[$name]}" ]; then
        AVAILABLE+=("$name")
    else
        say "$name not found: n/a"
    fi
done
available() { [[ " ${AVAILABLE[*]} " == *" $1 "* ]]; }

HAVE_GCC=0
if gcc -O2 -o "$WORK/orphans" "$HERE/orphans.c" >&2 && gcc -O2 -o "$WORK/siglat" "$HERE/siglat.c" >&2; then
    HAVE_GCC=1
else
    say "could not compile bench/orphans.c and bench/siglat.c: reaping and signal columns will be n/a"
fi

# Median of the numbers on stdin (empty when there are none).
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# key=value field from a line such as "n=500 median_us=41.2".
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
os_name=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Size and linking.
# ---------------------------------------------------------------------------------------------
declare -A SIZE LINKING
for name in "${AVAILABLE[@]}"; do
    copy=$WORK/size-$name
    cp "${BIN[$name]}" "$copy" && strip "$copy" 2>/dev/null
    bytes=$(stat -c %s "$copy" 2>/dev/null) || continue
    SIZE[$name]=$(awk -v b="$bytes" 'BEGIN { printf "%.1f KiB", b / 1024 }')
    description=$(file -b "${BIN[$name]}")
    case "$description" in
    *static-pie*) LINKING[$name]="static-pie" ;;
    *statically\ linked*) LINKING[$name]="static" ;;
    *dynamically\ linked*) LINKING[$name]="dynamic" ;;
    *) LINKING[$name]="?" ;;
    esac
done

# ---------------------------------------------------------------------------------------------
# Startup: /bin/true through each shim versus /bin/true alone.
# ---------------------------------------------------------------------------------------------
declare -A STARTUP
TRUE_ALONE="n/a"
# hyperfine runs all the runs of one command before the next command, so on a shared machine a change
# of load between commands would skew the ratios. The runs are therefore split into rounds, each round
# measuring every command, and each figure is the median over the rounds (ratios taken within a round).
hyperfine_round() { # $1: round number; writes "round name mean_ms sd_ms min_ms" lines to stdout
    local json=$WORK/hyperfine-$1.json hf name
    hf=(hyperfine -N --style basic --warmup "$WARMUP" --runs "$((RUNS / ROUNDS))" --export-json "$json"
        -n alone /bin/true)
    for name in "${AVAILABLE[@]}"; do
        hf+=(-n "$name" "'${BIN[$name]}' ${CHILD_ARGS[$name]} /bin/true")
    done
    "${hf[@]}" >&2 || return
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$json" "$1" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(sys.argv[2], r["command"], r["mean"] * 1e3, r["stddev"] * 1e3, r["min"] * 1e3)
PY
    else
        jq -r --arg round "$1" '.results[] | "\($round) \(.command) \(.mean * 1000) \(.stddev * 1000) \(.min * 1000)"' "$json"
    fi
}
if command -v hyperfine >/dev/null 2>&1; then
    say "startup: hyperfine -N, $ROUNDS rounds of $WARMUP warm-up runs and $((RUNS / ROUNDS)) runs per command"
    : >"$WORK/startup.txt"
    for round in $(seq "$ROUNDS"); do
        hyperfine_round "$round" >>"$WORK/startup.txt" || say "hyperfine failed in round $round"
    done
    # Each round's ratios against that round's /bin/true alone.
    awk '$2 == "alone" { alone[$1] = $3 } { line[NR] = $0 } END {
        for (i = 1; i <= NR; i++) { split(line[i], f, " "); if (f[1] in alone) print f[2], f[3], f[4], f[5], f[3] / alone[f[1]] } }' \
        "$WORK/startup.txt" >"$WORK/startup-ratios.txt"
    for name in alone "${AVAILABLE[@]}"; do
        mean=$(awk -v n="$name" '$1 == n { print $2 }' "$WORK/startup-ratios.txt" | median)
        [ -n "$mean" ] || continue
        sd=$(awk -v n="$name" '$1 == n { print $3 }' "$WORK/startup-ratios.txt" | median)
        min=$(awk -v n="$name" '$1 == n { print $4 }' "$WORK/startup-ratios.txt" | sort -g | head -1)
        ratio=$(awk -v n="$name" '$1 == n { print $5 }' "$WORK/startup-ratios.txt" | median)
        cell=$(awk -v m="$mean" -v s="$sd" -v lo="$min" -v r="$ratio" \
            'BEGIN { printf "%.2f ± %.2f ms, min %.2f (%.2f×)", m, s, lo, r }')
        if [ "$name" = alone ]; then TRUE_ALONE=${cell% (*}; else STARTUP[$name]=$cell; fi
    done
else
    say "hyperfine missing: startup is n/a"
fi

# ---------------------------------------------------------------------------------------------
# Memory and idle CPU: every shim at once, each supervising a sleeping child.
# ---------------------------------------------------------------------------------------------
declare -A MEMORY IDLE
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
# utime+stime in clock ticks; the fields after the ")" that ends the command name start at field 3.
cpu_ticks() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return; s=${s##*) }; awk '{ print $12 + $13 }' <<<"$s"; }
switches() { echo $(($(status_kb "$1" voluntary_ctxt_switches) + $(status_kb "$1" nonvoluntary_ctxt_switches))); }

say "memory and idle CPU: $IDLE_SECONDS s with every shim supervising 'sleep'"
declare -A IDLE_PID CPU0 SW0
for name in "${AVAILABLE[@]}"; do
    # shellcheck disable=SC2086 # the argument lists are meant to split
    "${BIN[$name]}" ${CHILD_ARGS[$name]} sleep 3600 </dev/null >/dev/null 2>&1 &
    IDLE_PID[$name]=$!
    IDLE_PIDS+=($!)
done
sleep 1
for name in "${AVAILABLE[@]}"; do
    pid=${IDLE_PID[$name]}
    rss=$(status_kb "$pid" VmRSS) anon=$(status_kb "$pid" RssAnon)
    [ -n "$rss" ] && MEMORY[$name]="$rss / ${anon:-?} kB"
    CPU0[$name]=$(cpu_ticks "$pid")
    SW0[$name]=$(switches "$pid" 2>/dev/null)
done
sleep "$IDLE_SECONDS"
for name in "${AVAILABLE[@]}"; do
    pid=${IDLE_PID[$name]}
    ticks=$(cpu_ticks "$pid")
    sw=$(switches "$pid" 2>/dev/null)
    if [ -n "$ticks" ] && [ -n "${CPU0[$name]}" ]; then
        IDLE[$name]="$((ticks - CPU0[$name])) ticks ($((sw - SW0[$name])) wake-ups)"
    fi
done
for name in "${AVAILABLE[@]}"; do kill -TERM "${IDLE_PID[$name]}" 2>/dev/null; done
for name in "${AVAILABLE[@]}"; do wait "${IDLE_PID[$name]}" 2>/dev/null; done
IDLE_PIDS=()

# ---------------------------------------------------------------------------------------------
# Reaping: each shim as PID 1 of a new PID namespace, handed $ORPHANS zombies at once.
# ---------------------------------------------------------------------------------------------
declare -A REAP REAP_MS REAP_WALL
if [ "$HAVE_GCC" = 1 ] && command -v unshare >/dev/null 2>&1; then
    say "reaping: $ORPHANS orphaned zombies, $REAP_RUNS run(s) per shim, shims interleaved"
    for run in $(seq "$REAP_RUNS"); do
        for name in "${AVAILABLE[@]}"; do
            start=$(date +%s%N)
            # shellcheck disable=SC2086
            out=$(timeout 120 unshare --pid --fork --mount-proc "${BIN[$name]}" ${PID1_ARGS[$name]} \
                "$WORK/orphans" "$ORPHANS" </dev/null 2>/dev/null)
            rc=$?
            end=$(date +%s%N)
            say "  $name run $run: ${out:-no output} rc=$rc"
            if [ "$rc" = 0 ] && [ "$(field "$out" reaped)" = "$ORPHANS" ]; then
                REAP_MS[$name]+="$(field "$out" reap_ms) "
                REAP_WALL[$name]+="$(((end - start) / 1000000)) "
            fi
        done
    done
    for name in "${AVAILABLE[@]}"; do
        ms=$(tr ' ' '\n' <<<"${REAP_MS[$name]:-}" | grep . | median)
        wall=$(tr ' ' '\n' <<<"${REAP_WALL[$name]:-}" | grep . | median)
        [ -n "$ms" ] && REAP[$name]=$(awk -v m="$ms" -v w="$wall" 'BEGIN { printf "%.0f ms (run %.2f s)", m, w / 1000 }')
    done
fi

# ---------------------------------------------------------------------------------------------
# Signal forwarding latency: SIGUSR1 to the shim -> the workload's handler runs.
# ---------------------------------------------------------------------------------------------
declare -A SIGLAT
DIRECT_SIGNAL="n/a"
latency_cell() {
    local median p90
    median=$(field "$1" median_us) p90=$(field "$1" p90_us)
    [ -n "$median" ] && [ "$(field "$1" lost)" = 0 ] && echo "$median µs (p90 $p90)"
}
if [ "$HAVE_GCC" = 1 ]; then
    say "signals: $SIGNALS SIGUSR1s, one at a time, through each shim"
    shared=$WORK/siglat.shared
    out=$("$WORK/siglat" send "$SIGNALS" "$shared" -- "$WORK/siglat" recv "$shared" </dev/null 2>/dev/null)
    say "  no shim: $out"
    DIRECT_SIGNAL=$(latency_cell "$out") || DIRECT_SIGNAL="n/a"
    for name in "${AVAILABLE[@]}"; do
        # shellcheck disable=SC2086
        out=$(timeout 120 "$WORK/siglat" send "$SIGNALS" "$shared" -- "${BIN[$name]}" ${CHILD_ARGS[$name]} \
            "$WORK/siglat" recv "$shared" </dev/null 2>/dev/null)
        say "  $name: ${out:-no output}"
        cell=$(latency_cell "$out") && SIGLAT[$name]=$cell
    done
fi

# ---------------------------------------------------------------------------------------------
# The table.
# ---------------------------------------------------------------------------------------------
if [ "$QUICK" = 1 ]; then mode="quick"; else mode="full"; fi
echo "Machine: $cpu_model, $(nproc) cores, kernel $(uname -r), $os_name; $(date -u '+%Y-%m-%d %H:%M UTC');" \
    "load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Mode: $mode (hyperfine: $ROUNDS rounds of $WARMUP warm-up + $((RUNS / ROUNDS)) runs per command, medians over rounds; $REAP_RUNS reaping run(s), median; $SIGNALS signals)"
echo
echo "| shim | version | stripped size | linked | \`/bin/true\` through it: mean ± σ, min (× alone) | RSS, child sleeping: VmRSS / RssAnon | CPU over ${IDLE_SECONDS} s idle | reap $ORPHANS orphans as PID 1 | signal → workload handler: median |"
echo "|---|---|---:|---|---:|---:|---:|---:|---:|"
for name in "${NAMES[@]}"; do
    if ! available "$name"; then
        echo "| $name | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |"
        continue
    fi
    echo "| $name | ${VERSION[$name]:-?} | ${SIZE[$name]:-n/a} | ${LINKING[$name]:-n/a} | ${STARTUP[$name]:-n/a}" \
        "| ${MEMORY[$name]:-n/a} | ${IDLE[$name]:-n/a} | ${REAP[$name]:-n/a} | ${SIGLAT[$name]:-n/a} |"
done
echo
echo "\`/bin/true\` alone: $TRUE_ALONE. SIGUSR1 straight to the workload, no shim: $DIRECT_SIGNAL."
echo "Shims run as ordinary children (tini with -s) except for reaping, where each is PID 1 of a new PID"
echo "namespace. Reaping time runs from the moment $ORPHANS zombies are orphaned to the last one gone; \"run\""
echo "is the whole run including forking them. CPU is utime+stime in clock ticks of $(getconf CLK_TCK) Hz;"
echo "wake-ups are context switches. Timings vary from run to run; this is one run on the machine above."
