#!/usr/bin/env bash
# bench/run.sh: the project's benchmark entry point. It owns the side-by-side figures of issue 11 for
# sentinit against the musl builds of tini, dumb-init and catatonit (the floor a static init is held to),
# measured in one run by one method, so that the README's Benchmarks table can be regenerated at will.
#
# Usage (as root, from anywhere):  bench/run.sh [--quick] [--write]
#   --quick   fewer samples: 1-2.5 minutes once the binaries are built (full mode: 6-12 minutes; the
#             longer times are on a busy machine, waiting for idle CPUs)
#   --write   also put this run's tables into README.md and docs/benchmarks.md (between their markers)
#   Environment:
#   SENTINIT=/path          the sentinit binary to measure (default: build the static musl release,
#                           `cargo build --release --target x86_64-unknown-linux-musl`, in this checkout)
#   SENTINIT_MINIMAL=/path  a second sentinit binary (the minimal build), measured in its own column
#   BENCH_CACHE=/dir        where bench/peers.sh keeps the peers (default /var/cache/sentinit-bench)
#   BENCH_IDLE_WAIT=N       seconds to wait, before each timing block, for the CPUs to be 85 % idle
#                           over 3 s (default 60, quick 20; 0: no wait). The outcome is printed either way.
#
# The peers come from bench/peers.sh (Debian source packages built with musl-gcc, cached; Debian's
# binary packages when that fails, said so in the output). Progress goes to stderr; stdout is Markdown:
# a header (what was measured, where, when), the table with every shim, and the compact table the README
# shows. Figures, for each shim:
#   startup    hyperfine -N in interleaved rounds (command order shuffled each round): /bin/true alone,
#              through each peer, through sentinit with `-q --report none` and with its defaults. Each
#              figure is the median over rounds of the round's median; ratios and "time above /bin/true"
#              are taken within each round, then their median.
#   syscalls   strace -f: every syscall up to the workload's execve (the shim's own execve excluded).
#   memory     RssAnon (/proc/PID/status) and Private_Dirty (/proc/PID/smaps_rollup) of the shim while
#              its child sleeps, as a child and as PID 1 (unshare --pid --fork --mount-proc).
#   wake-ups   voluntary_ctxt_switches of the shim over 10 s idle, defaults (sentinit: also --report none).
#   size       the stripped binary, bytes.
#   reaping    the shim as PID 1 handed 10,000 zombies at once (bench/orphans.c), median reap time.
#   signals    SIGUSR1 to the shim -> the workload's handler runs (bench/siglat.c), median.
# It asserts nothing about the figures; it fails loudly when a tool it measures with is missing.
set -u -o pipefail

QUICK=0 WRITE=0
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=1 ;;
    --write) WRITE=1 ;;
    -h | --help)
        sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench/run.sh: unknown argument '$arg' (--quick, --write, --help)" >&2
        exit 2
        ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    ROUNDS=10 RUNS=50 WARMUP=5 SYSCALL_RUNS=1 WINDOWS=1 REAP_RUNS=3 SIGNAL_REPS=2 SIGNALS=200
else
    ROUNDS=30 RUNS=100 WARMUP=10 SYSCALL_RUNS=3 WINDOWS=3 REAP_RUNS=11 SIGNAL_REPS=7 SIGNALS=500
fi
IDLE_SECONDS=10
ORPHANS=10000
if [ "$QUICK" = 1 ]; then IDLE_WAIT=${BENCH_IDLE_WAIT:-20}; else IDLE_WAIT=${BENCH_IDLE_WAIT:-60}; fi

die() {
    echo "bench/run.sh: $*" >&2
    exit 1
}
say() { echo "bench: $*" >&2; }
[ "$(id -u)" = 0 ] || die "run as root (it installs tools and uses PID namespaces)"

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")

# What to measure; then no SENTINIT_*, ECS_* or AWS_* variable reaches any shim (sentinit must measure
# its defaults and never contact a metadata endpoint).
SENTINIT_BIN=${SENTINIT:-}
MINIMAL_BIN=${SENTINIT_MINIMAL:-}
for var in $(compgen -e); do
    case "$var" in SENTINIT | SENTINIT_* | ECS_* | AWS_*) unset "$var" ;; esac
done

WORK=$(mktemp -d /tmp/sentinit-bench.XXXXXX)
BG_PIDS=()
cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Tools. A missing measurement tool is fatal: a table with holes would read as a result.
# ---------------------------------------------------------------------------------------------
need_tools() {
    local missing=() pair
    for pair in hyperfine:hyperfine strace:strace gcc:gcc jq:jq strip:binutils unshare:util-linux \
        timeout:coreutils shuf:coreutils file:file; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
            { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
    fi
    for pair in hyperfine strace gcc jq strip unshare timeout shuf file; do
        command -v "$pair" >/dev/null 2>&1 || die "$pair is missing and could not be installed"
    done
    [ -r /proc/self/smaps_rollup ] || die "/proc/PID/smaps_rollup is missing (kernel older than 4.14?)"
}
need_tools

# ---------------------------------------------------------------------------------------------
# The binaries.
# ---------------------------------------------------------------------------------------------
MEASURED=""
if [ -z "$SENTINIT_BIN" ]; then
    say "building sentinit (static musl release)"
    command -v rustup >/dev/null 2>&1 && rustup target add x86_64-unknown-linux-musl >&2
    (cd "$ROOT" && cargo build --release --target x86_64-unknown-linux-musl >&2) ||
        die "cargo build --release --target x86_64-unknown-linux-musl failed (or set SENTINIT=/path)"
    SENTINIT_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-musl/release/sentinit
    # The last commit that changed what the binary is built from (bench/ and docs/ commits do not count).
    commit=$(git -C "$ROOT" log -1 --format=%h -- src Cargo.toml Cargo.lock build.rs 2>/dev/null)
    git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock build.rs 2>/dev/null || commit="${commit:-?} + uncommitted changes"
    MEASURED="built here from commit ${commit:-?} (the last to change src/ or Cargo.*)"
else
    MEASURED="given as SENTINIT"
fi
[ -x "$SENTINIT_BIN" ] || die "sentinit binary '$SENTINIT_BIN' is not executable"
[ -z "$MINIMAL_BIN" ] || [ -x "$MINIMAL_BIN" ] || die "SENTINIT_MINIMAL '$MINIMAL_BIN' is not executable"

declare -A BIN SOURCE LABEL CHILD_ARGS PID1_ARGS
COLS=(sentinit)
BIN[sentinit]=$SENTINIT_BIN
LABEL[sentinit]="sentinit"
if [ -n "$MINIMAL_BIN" ]; then
    COLS+=(minimal)
    BIN[minimal]=$MINIMAL_BIN
    LABEL[minimal]="sentinit minimal"
fi
SENTINITS=("${COLS[@]}")
PEERS=()
while IFS=$'\t' read -r name path source; do
    PEERS+=("$name")
    BIN[$name]=$path SOURCE[$name]=$source
    case "$source" in
    *musl-gcc*) LABEL[$name]="musl $name" ;;
    *) LABEL[$name]="$name (Debian, glibc)" ;;
    esac
done < <("$HERE/peers.sh")
for name in tini dumb-init catatonit; do
    [ -n "${BIN[$name]:-}" ] || die "no $name binary (bench/peers.sh failed; see above)"
done
COLS+=("${PEERS[@]}")
for col in "${SENTINITS[@]}"; do CHILD_ARGS[$col]="--" PID1_ARGS[$col]="--"; done
CHILD_ARGS[tini]="-s --" PID1_ARGS[tini]="--"
CHILD_ARGS[dumb-init]="" PID1_ARGS[dumb-init]=""
CHILD_ARGS[catatonit]="--" PID1_ARGS[catatonit]="--"
QUIET_ARGS="-q --report none --"
describe_sentinit() { # $1: col
    local version
    version=$("${BIN[$1]}" --version 2>/dev/null | head -n1)
    echo "${version#sentinit }, $(stat -c %s "${BIN[$1]}") bytes, sha256 $(sha256sum "${BIN[$1]}" | cut -c1-12)"
}

gcc -O2 -o "$WORK/orphans" "$HERE/orphans.c" >&2 || die "could not compile bench/orphans.c"
gcc -O2 -o "$WORK/siglat" "$HERE/siglat.c" >&2 || die "could not compile bench/siglat.c"
gcc -O2 -static -o "$WORK/execlat" "$HERE/execlat.c" >&2 || die "could not compile bench/execlat.c statically (libc6-dev?)"

# ---------------------------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------------------------
# "median p10 p90" of the numbers on stdin (nearest rank); nothing when there are none.
stats() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        lo = int(NR * 0.1 + 0.5); if (lo < 1) lo = 1; hi = int(NR * 0.9 + 0.5); if (hi < 1) hi = 1
        print m, v[lo], v[hi] }'
}
median() { stats | cut -d' ' -f1; }
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
private_dirty_kb() { awk '$1 == "Private_Dirty:" { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null; }
cpu_busy() { # prints "total idle" jiffies of all CPUs
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6 }' /proc/stat
}

# Waits (up to IDLE_WAIT s) for the CPUs to be at least 85 % idle over 3 s; records the outcome.
IDLE_LOG=() IDLE_PCTS=()
wait_idle() { # $1: block name
    local start=$SECONDS a b pct
    while :; do
        a=$(cpu_busy) && sleep 3 && b=$(cpu_busy)
        pct=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); d = y[1] - x[1]
            printf "%d", (d > 0 ? 100 * (y[2] - x[2]) / d : 100) }')
        if [ "$pct" -ge 85 ]; then
            IDLE_LOG+=("$1: ${pct} % idle after $((SECONDS - start)) s") IDLE_PCTS+=("$pct")
            return
        fi
        if [ $((SECONDS - start)) -ge "$IDLE_WAIT" ]; then
            IDLE_LOG+=("$1: **only ${pct} % idle** after waiting $((SECONDS - start)) s") IDLE_PCTS+=("$pct")
            say "$1: the machine is busy (${pct} % idle); measuring anyway"
            return
        fi
        say "$1: waiting for the machine to be idle (${pct} % idle)"
    done
}

declare -A CELL VAL # CELL[figure,col]: the table's text; VAL[figure,col]: the number compared
set_fig() { CELL[$1,$2]=$3 VAL[$1,$2]=$4; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }
thousands() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; }

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
os_name=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
t_start=$SECONDS

# ---------------------------------------------------------------------------------------------
# Size.
# ---------------------------------------------------------------------------------------------
for col in "${COLS[@]}"; do
    strip -o "$WORK/stripped" "${BIN[$col]}" || die "strip ${BIN[$col]} failed"
    bytes=$(stat -c %s "$WORK/stripped")
    set_fig size "$col" "$(thousands "$bytes") B ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1024 }') KiB)" "$bytes"
done

# ---------------------------------------------------------------------------------------------
# Startup, in rounds with the order shuffled per round: hyperfine -N of `/bin/true` through each shim,
# then bench/execlat.c's time from the fork of the shim to its workload's execve.
# ---------------------------------------------------------------------------------------------
wait_idle startup
say "startup: $ROUNDS rounds of hyperfine -N ($WARMUP warm-up + $RUNS runs per command) and of execlat ($RUNS runs)"
declare -A CMD
CMD[true]=""
for col in "${SENTINITS[@]}"; do
    CMD[$col-q]="${BIN[$col]} $QUIET_ARGS"
    CMD[$col-d]="${BIN[$col]} ${CHILD_ARGS[$col]}"
done
for col in "${PEERS[@]}"; do CMD[$col]="${BIN[$col]} ${CHILD_ARGS[$col]}"; done
: >"$WORK/startup.txt"
: >"$WORK/execve.txt"
for round in $(seq "$ROUNDS"); do
    hf=(hyperfine -N --style none --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/round.json")
    while read -r name; do hf+=(-n "$name" "${CMD[$name]} /bin/true"); done < <(printf '%s\n' "${!CMD[@]}" | shuf)
    "${hf[@]}" >/dev/null 2>"$WORK/hyperfine.err" || die "hyperfine failed: $(cat "$WORK/hyperfine.err")"
    jq -r --arg r "$round" '.results[] | "\($r) \(.command) \(.median * 1000)"' "$WORK/round.json" >>"$WORK/startup.txt"
    for name in $(printf '%s\n' "${!CMD[@]}" | shuf); do
        # shellcheck disable=SC2086 # the command is meant to split
        out=$("$WORK/execlat" run "$RUNS" "$WORK/execlat.shared" -- ${CMD[$name]} "$WORK/execlat" stamp "$WORK/execlat.shared" \
            </dev/null 2>/dev/null)
        us=$(field "$out" median_us)
        [ -n "$us" ] && [ "$(field "$out" missed)" = 0 ] || die "execlat failed for $name: '$out'"
        echo "$round $name $(awk -v u="$us" 'BEGIN { print u / 1000 }')" >>"$WORK/execve.txt"
    done
done
# Per round: each command's median, its ratio to that round's tini, its excess over that round's baseline.
declare -A RATIO_RANGE
per_round() { # $1: the file of "round name ms" lines; writes "name ms ratio above" lines to $1.per-round
    awk '{ m[$1, $2] = $3; rounds[$1] = 1; names[$2] = 1 } END {
        for (r in rounds) for (n in names) print n, m[r, n], m[r, n] / m[r, "tini"], m[r, n] - m[r, "true"] }' \
        "$1" >"$1.per-round"
}
round_stat() { awk -v n="$2" -v c="$3" '$1 == n { print $c }' "$1.per-round" | stats; }
round_figs() { # $1: file, $2: command name, $3: col, $4: figure, $5: figure of the excess (or "")
    local ms ratio lo hi above
    ms=$(round_stat "$1" "$2" 2 | cut -d' ' -f1)
    read -r ratio lo hi < <(round_stat "$1" "$2" 3)
    set_fig "$4" "$3" "$(fmt "$ms" '%.3f ms')" "$ms"
    RATIO_RANGE[$4,$3]="$(fmt "$ratio" '%.2f') ($(fmt "$lo" '%.2f')–$(fmt "$hi" '%.2f'))"
    if [ -n "$5" ]; then
        above=$(round_stat "$1" "$2" 4 | cut -d' ' -f1)
        set_fig "$5" "$3" "$(fmt "$above" '+%.3f ms')" "$above"
    fi
}
per_round "$WORK/startup.txt"
per_round "$WORK/execve.txt"
TRUE_MS=$(round_stat "$WORK/startup.txt" true 2 | cut -d' ' -f1)
EXEC_ALONE_MS=$(round_stat "$WORK/execve.txt" true 2 | cut -d' ' -f1)
for col in "${COLS[@]}"; do
    for v in q d; do
        name=$col
        [[ " ${SENTINITS[*]} " == *" $col "* ]] && name=$col-$v
        round_figs "$WORK/startup.txt" "$name" "$col" "startup_$v" "above_$v"
        round_figs "$WORK/execve.txt" "$name" "$col" "exec_$v" ""
    done
done

# ---------------------------------------------------------------------------------------------
# Syscalls before the workload's execve (strace -f; the shim's own execve is the first line).
# ---------------------------------------------------------------------------------------------
say "syscalls: strace -f, $SYSCALL_RUNS run(s) per command"
count_syscalls() { # the shim's argv (without the workload); prints the count
    for _ in $(seq "$SYSCALL_RUNS"); do
        strace -f -qq -o "$WORK/trace.txt" "$@" /bin/true </dev/null >/dev/null 2>&1
        awk 'NR == 1 { next }
            /execve\("\/bin\/true"/ { found = 1; exit }
            /<\.\.\. .* resumed>/ || / (\+\+\+|---) / { next }
            { n++ }
            END { if (found) print n }' "$WORK/trace.txt"
    done | median
}
for col in "${SENTINITS[@]}"; do
    for v in q d; do
        if [ "$v" = q ]; then args=$QUIET_ARGS; else args=${CHILD_ARGS[$col]}; fi
        # shellcheck disable=SC2086
        n=$(count_syscalls "${BIN[$col]}" $args) && [ -n "$n" ] || die "strace of ${BIN[$col]} found no execve of /bin/true"
        set_fig "sys_$v" "$col" "$n" "$n"
    done
done
for col in "${PEERS[@]}"; do
    # shellcheck disable=SC2086
    n=$(count_syscalls "${BIN[$col]}" ${CHILD_ARGS[$col]}) && [ -n "$n" ] || die "strace of ${BIN[$col]} found no execve of /bin/true"
    set_fig sys_q "$col" "$n" "$n"
    set_fig sys_d "$col" "$n" "$n"
done

# ---------------------------------------------------------------------------------------------
# Memory and idle wake-ups: every shim at once supervising `sleep`, as a child and as PID 1.
# ---------------------------------------------------------------------------------------------
declare -A MEM_ANON MEM_DIRTY WAKE
for window in $(seq "$WINDOWS"); do
    say "memory and idle: window $window of $WINDOWS, $IDLE_SECONDS s"
    declare -A SHIM_PID=()
    instances=()
    for col in "${COLS[@]}"; do
        # shellcheck disable=SC2086
        "${BIN[$col]}" ${CHILD_ARGS[$col]} sleep $((IDLE_SECONDS + 30)) </dev/null >/dev/null 2>&1 &
        SHIM_PID[$col,child]=$! && BG_PIDS+=($!) && instances+=("$col,child")
        # shellcheck disable=SC2086
        unshare --pid --fork --mount-proc "${BIN[$col]}" ${PID1_ARGS[$col]} sleep $((IDLE_SECONDS + 30)) \
            </dev/null >/dev/null 2>&1 &
        SHIM_PID[$col,unshare]=$! && BG_PIDS+=($!) && instances+=("$col,pid1")
        if [[ " ${SENTINITS[*]} " == *" $col "* ]]; then
            # shellcheck disable=SC2086
            "${BIN[$col]}" $QUIET_ARGS sleep $((IDLE_SECONDS + 30)) </dev/null >/dev/null 2>&1 &
            SHIM_PID[$col,quiet]=$! && BG_PIDS+=($!) && instances+=("$col,quiet")
        fi
    done
    sleep 1.5
    declare -A SW0=()
    for inst in "${instances[@]}"; do
        col=${inst%,*}
        if [ "${inst#*,}" = pid1 ]; then
            u=${SHIM_PID[$col,unshare]}
            SHIM_PID[$inst]=$(awk '{ print $1 }' "/proc/$u/task/$u/children" 2>/dev/null)
        fi
        pid=${SHIM_PID[$inst]:-}
        [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || die "$inst: the shim is not running (pid '${pid}')"
        MEM_ANON[$inst]+="$(status_kb "$pid" RssAnon) "
        MEM_DIRTY[$inst]+="$(private_dirty_kb "$pid") "
        SW0[$inst]=$(status_kb "$pid" voluntary_ctxt_switches)
    done
    sleep "$IDLE_SECONDS"
    for inst in "${instances[@]}"; do
        pid=${SHIM_PID[$inst]}
        sw=$(status_kb "$pid" voluntary_ctxt_switches)
        [ -n "$sw" ] || die "$inst: the shim exited during the idle window"
        WAKE[$inst]+="$((sw - SW0[$inst])) "
    done
    for inst in "${instances[@]}"; do kill -TERM "${SHIM_PID[$inst]}" 2>/dev/null; done
    sleep 0.5
    for inst in "${instances[@]}"; do kill -KILL "${SHIM_PID[$inst]}" 2>/dev/null; done
    wait 2>/dev/null
    BG_PIDS=()
done
med_list() { tr ' ' '\n' <<<"$1" | grep . | median; }
for col in "${COLS[@]}"; do
    for mode in child pid1; do
        anon=$(med_list "${MEM_ANON[$col,$mode]}") dirty=$(med_list "${MEM_DIRTY[$col,$mode]}")
        set_fig "mem_$mode" "$col" "$anon / $dirty kB" "$dirty"
    done
    w=$(med_list "${WAKE[$col,child]}")
    set_fig wake_d "$col" "$w" "$w"
    if [ -n "${WAKE[$col,quiet]:-}" ]; then
        w=$(med_list "${WAKE[$col,quiet]}")
        set_fig wake_q "$col" "$w" "$w"
    else
        set_fig wake_q "$col" "—" ""
    fi
done
# PID 1's wake-ups, for the details.
WAKE_PID1=""
for col in "${COLS[@]}"; do WAKE_PID1+="${LABEL[$col]} $(med_list "${WAKE[$col,pid1]}"), "; done

# ---------------------------------------------------------------------------------------------
# Reaping: each shim as PID 1 of a new PID namespace, handed $ORPHANS zombies at once.
# ---------------------------------------------------------------------------------------------
wait_idle reaping
say "reaping: $ORPHANS zombies, $REAP_RUNS run(s) per shim, order shuffled per run"
: >"$WORK/reap.txt"
for run in $(seq "$REAP_RUNS"); do
    for col in $(printf '%s\n' "${COLS[@]}" | shuf); do
        # shellcheck disable=SC2086
        out=$(timeout 120 unshare --pid --fork --mount-proc "${BIN[$col]}" ${PID1_ARGS[$col]} \
            "$WORK/orphans" "$ORPHANS" </dev/null 2>/dev/null)
        rc=$?
        say "  $col run $run: ${out:-no output} rc=$rc"
        [ "$rc" = 0 ] && [ "$(field "$out" reaped)" = "$ORPHANS" ] && echo "$run $col $(field "$out" reap_ms)" >>"$WORK/reap.txt"
    done
done
for col in "${COLS[@]}"; do
    ms=$(awk -v c="$col" '$2 == c { print $3 }' "$WORK/reap.txt" | median)
    n=$(awk -v c="$col" '$2 == c' "$WORK/reap.txt" | wc -l)
    if [ -n "$ms" ]; then
        extra=""
        [ "$n" -lt "$REAP_RUNS" ] && extra=" ($((REAP_RUNS - n)) of $REAP_RUNS runs failed)"
        set_fig reap "$col" "$(fmt "$ms" '%.1f ms')$extra" "$ms"
    else
        set_fig reap "$col" "failed" ""
    fi
done

# ---------------------------------------------------------------------------------------------
# Signal latency: SIGUSR1 to the shim -> the workload's handler runs.
# ---------------------------------------------------------------------------------------------
wait_idle signals
say "signals: $SIGNAL_REPS repetition(s) of $SIGNALS SIGUSR1s through each shim, order shuffled"
: >"$WORK/siglat.txt"
for _ in $(seq "$SIGNAL_REPS"); do
    for col in $( (printf '%s\n' "${COLS[@]}" direct) | shuf); do
        if [ "$col" = direct ]; then
            out=$(timeout 120 "$WORK/siglat" send "$SIGNALS" "$WORK/shared" -- "$WORK/siglat" recv "$WORK/shared" </dev/null 2>/dev/null)
        else
            # shellcheck disable=SC2086
            out=$(timeout 120 "$WORK/siglat" send "$SIGNALS" "$WORK/shared" -- "${BIN[$col]}" ${CHILD_ARGS[$col]} \
                "$WORK/siglat" recv "$WORK/shared" </dev/null 2>/dev/null)
        fi
        say "  $col: ${out:-no output}"
        [ -n "$(field "$out" median_us)" ] && [ "$(field "$out" lost)" = 0 ] &&
            echo "$col $(field "$out" median_us) $(field "$out" p90_us)" >>"$WORK/siglat.txt"
    done
done
for col in "${COLS[@]}" direct; do
    us=$(awk -v c="$col" '$1 == c { print $2 }' "$WORK/siglat.txt" | median)
    p90=$(awk -v c="$col" '$1 == c { print $3 }' "$WORK/siglat.txt" | median)
    if [ -n "$us" ]; then
        set_fig siglat "$col" "$(fmt "$us" '%.1f µs') (p90 $(fmt "$p90" '%.0f'))" "$us"
    else
        set_fig siglat "$col" "failed" ""
    fi
done

# ---------------------------------------------------------------------------------------------
# The tables.
# ---------------------------------------------------------------------------------------------
FIGS=(startup_q startup_d above_q above_d exec_q exec_d sys_q sys_d mem_child mem_pid1 wake_d wake_q size reap siglat)
COMPACT_FIGS=(startup_q startup_d above_q exec_d sys_d mem_child mem_pid1 wake_d wake_q size reap siglat)
declare -A FIG_LABEL GOAL
FIG_LABEL=(
    [startup_q]='`/bin/true` through it, `-q --report none`'
    [startup_d]='`/bin/true` through it, defaults'
    [above_q]='time above `/bin/true` alone, `-q --report none`'
    [above_d]='time above `/bin/true` alone, defaults'
    [exec_q]="time to the workload's execve, \`-q --report none\`"
    [exec_d]="time to the workload's execve, defaults"
    [sys_q]="syscalls before the workload's execve, \`-q --report none\`"
    [sys_d]="syscalls before the workload's execve, defaults"
    [mem_child]='private memory as a child: RssAnon / Private_Dirty'
    [mem_pid1]='private memory as PID 1: RssAnon / Private_Dirty'
    [wake_d]='wake-ups in 10 s idle, defaults (1 s interval)'
    [wake_q]='wake-ups in 10 s idle, `--report none`'
    [size]='stripped size'
    [reap]="reaping $(thousands "$ORPHANS") zombies as PID 1"
    [siglat]='signal latency, SIGUSR1 → workload'
)
GOAL=(
    [startup_q]='' [startup_d]='≤ 1.25× musl tini' [above_q]='' [above_d]='' [exec_q]='' [exec_d]='≤ 1.25× musl tini' [sys_q]='' [sys_d]=''
    [mem_child]='≤ 48 KiB' [mem_pid1]='≤ 48 KiB' [wake_d]='10 (one per interval)' [wake_q]='0'
    [size]='≤ 1 MiB (minimal ≤ 512 KiB)' [reap]='' [siglat]=''
)
ratio() { # $1 figure, $2 col: col / musl tini, with the p10–p90 of the rounds for startup
    local a=${VAL[$1,$2]:-} b=${VAL[$1,tini]:-}
    if [ -n "${RATIO_RANGE[$1,$2]:-}" ] && [ "$3" = long ]; then
        echo "${RATIO_RANGE[$1,$2]}"
    elif [ -n "${RATIO_RANGE[$1,$2]:-}" ]; then
        echo "${RATIO_RANGE[$1,$2]%% *}"
    elif [ -z "$a" ] || [ -z "$b" ]; then
        echo "—"
    elif awk -v b="$b" 'BEGIN { exit !(b == 0) }'; then
        if awk -v a="$a" 'BEGIN { exit !(a == 0) }'; then echo "1"; else echo "∞"; fi
    else
        fmt "$(awk -v a="$a" -v b="$b" 'BEGIN { print a / b }')" '%.2f'
    fi
}
best_peer() { # $1 figure: the lowest of the C peers, with its name(s)
    local col best="" names=""
    for col in "${PEERS[@]}"; do
        [ -n "${VAL[$1,$col]:-}" ] || continue
        if [ -z "$best" ] || awk -v a="${VAL[$1,$col]}" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=${VAL[$1,$col]} names=$col
        elif awk -v a="${VAL[$1,$col]}" -v b="$best" 'BEGIN { exit !(a == b) }'; then
            names+=", $col"
        fi
    done
    [ -n "$best" ] || { echo "—"; return; }
    for col in "${PEERS[@]}"; do
        [[ "$names" == "$col"* ]] && { echo "$names: ${CELL[$1,$col]}"; return; }
    done
}
[ "$QUICK" = 1 ] && mode=quick || mode=full
header() {
    echo "Measured $started with \`bench/run.sh$([ "$QUICK" = 1 ] && echo " --quick")\` ($mode mode, $(((SECONDS - t_start + 30) / 60)) min):"
    echo "sentinit $(describe_sentinit sentinit), $MEASURED."
    [ -n "$MINIMAL_BIN" ] && echo "sentinit minimal: $(describe_sentinit minimal), given as SENTINIT_MINIMAL."
    echo "Peers: $(for col in "${PEERS[@]}"; do printf '%s from %s; ' "$col" "${SOURCE[$col]}"; done | sed 's/; $/./')"
    echo "Machine: $cpu_model, $(nproc) CPUs, kernel $(uname -r), $os_name; load average $load_start at the start," \
        "$(cut -d' ' -f1-3 /proc/loadavg) at the end. Before each timing block: $(printf '%s; ' "${IDLE_LOG[@]}" | sed 's/; $//')."
}
full_table() {
    local line col fig
    line="| figure |"
    for col in "${COLS[@]}"; do line+=" ${LABEL[$col]} |"; done
    for col in "${SENTINITS[@]}"; do line+=" ${LABEL[$col]} / musl tini |"; done
    echo "$line goal |"
    line="|---|"
    for col in "${COLS[@]}" "${SENTINITS[@]}"; do line+="---:|"; done
    echo "$line---|"
    for fig in "${FIGS[@]}"; do
        line="| ${FIG_LABEL[$fig]} |"
        for col in "${COLS[@]}"; do line+=" ${CELL[$fig,$col]:-—} |"; done
        for col in "${SENTINITS[@]}"; do line+=" $(ratio "$fig" "$col" long) |"; done
        echo "$line ${GOAL[$fig]:-} |"
    done
}
compact_table() {
    local line col fig
    line="| figure |"
    for col in "${SENTINITS[@]}"; do line+=" ${LABEL[$col]} |"; done
    line+=" musl tini | best C peer |"
    for col in "${SENTINITS[@]}"; do line+=" ${LABEL[$col]} / tini |"; done
    echo "$line goal |"
    line="|---|"
    for col in "${SENTINITS[@]}" tini best "${SENTINITS[@]}"; do line+="---:|"; done
    echo "$line---|"
    for fig in "${COMPACT_FIGS[@]}"; do
        line="| ${FIG_LABEL[$fig]} |"
        for col in "${SENTINITS[@]}"; do line+=" ${CELL[$fig,$col]:-—} |"; done
        line+=" ${CELL[$fig,tini]:-—} | $(best_peer "$fig") |"
        for col in "${SENTINITS[@]}"; do line+=" $(ratio "$fig" "$col" short) |"; done
        echo "$line ${GOAL[$fig]:-} |"
    done
}
footnote() {
    echo "\`/bin/true\` alone: $(fmt "$TRUE_MS" '%.3f ms'); the workload's execve with no shim (fork, exec): $(fmt "$EXEC_ALONE_MS" '%.3f ms');"
    echo "SIGUSR1 straight to the workload, no shim: ${CELL[siglat,direct]}." \
        "Wake-ups as PID 1: ${WAKE_PID1%, }. Peers have one invocation, so their startup and syscall cells repeat;" \
        "tini runs with \`-s\` as a child. Medians: startup over $ROUNDS rounds × $RUNS runs (ratio brackets: p10–p90 of the" \
        "rounds), syscalls over $SYSCALL_RUNS run(s), memory and wake-ups over $WINDOWS window(s), reaping over $REAP_RUNS" \
        "run(s), signals over $SIGNAL_REPS × $SIGNALS. Timings vary from run to run; sizes, syscalls, memory and wake-ups do not."
}

FULL=$WORK/full.md COMPACT=$WORK/compact.md
PEERS_FROM="peers built from Debian's source packages with musl-gcc"
for col in "${PEERS[@]}"; do
    [[ "${SOURCE[$col]}" == *musl-gcc* ]] || PEERS_FROM="**$col is Debian's glibc binary package**, the other peers musl builds"
done
{
    header
    echo
    full_table
    echo
    footnote
} >"$FULL"
{
    idle_min=$(printf '%s\n' "${IDLE_PCTS[@]}" | sort -n | head -n1)
    busy=""
    [ "$idle_min" -lt 85 ] && busy=" **The CPUs were as little as ${idle_min} % idle before a timing block: the timing rows are noisy.**"
    echo "Measured $started, $mode mode, on $(nproc) CPUs of $cpu_model (sentinit $(describe_sentinit sentinit | cut -d, -f1),$([ -n "$MINIMAL_BIN" ] && echo " minimal build beside it,") $MEASURED; $PEERS_FROM).$busy"
    echo
    compact_table
} >"$COMPACT"

echo "## All shims"
echo
cat "$FULL"
echo
echo "## README block (bench/run.sh --write puts it between the bench markers)"
echo
cat "$COMPACT"

# --write: replace what lies between <!-- bench:NAME:begin --> and <!-- bench:NAME:end -->.
replace_block() { # $1 file, $2 block name, $3 content file
    local begin="<!-- bench:$2:begin -->" end="<!-- bench:$2:end -->"
    grep -qF "$begin" "$1" && grep -qF "$end" "$1" || die "$1 has no $begin … $end markers"
    awk -v b="$begin" -v e="$end" -v f="$3" '
        $0 == b { print; print ""; while ((getline l < f) > 0) print l; print ""; skip = 1; next }
        $0 == e { skip = 0 }
        !skip' "$1" >"$1.new" && mv "$1.new" "$1"
}
if [ "$WRITE" = 1 ]; then
    replace_block "$ROOT/README.md" readme "$COMPACT"
    replace_block "$ROOT/docs/benchmarks.md" full "$FULL"
    say "wrote the tables into README.md and docs/benchmarks.md"
fi
