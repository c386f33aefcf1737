# Shared helpers of the benchmark scripts (bench/*/run.sh, bench/run-all.sh). Source it:
#   . "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"; bench_init NAME "$@"
# Benchmarks are not tests: nothing here runs in CI. Every figure is compared with a peer measured in the same run.
#
# After bench_init:
#   $BENCH_REPO      the repository's root
#   $BENCH_QUICK     1 with --quick (or BENCH_QUICK=1 from run-all): small N, a smoke check of the script
#   $BENCH_OUT       this benchmark's results folder: $BENCH_RESULTS/NAME when run-all set BENCH_RESULTS, else
#                    bench/results/<UTC stamp>-NAME; raw data goes there, and summary.md (the figures section's part)
#   $BENCH_PREFIX    the prefix of every name this run creates on the engine (skiff-bench-<pid>-...)
set -euo pipefail

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_ENGINE=${BENCH_ENGINE:-/var/run/docker.sock}

bench_die() { echo "${BENCH_NAME:-bench}: $*" >&2; exit 1; }
bench_log() { printf '[%s %s] %s\n' "$(date -u +%H:%M:%S)" "${BENCH_NAME:-bench}" "$*" >&2; }

bench_init() { # NAME "$@" (only --quick is understood here; the script reads its own options after)
    BENCH_NAME=$1; shift
    BENCH_QUICK=${BENCH_QUICK:-0}
    local arg
    for arg in "$@"; do [[ $arg != --quick ]] || BENCH_QUICK=1; done
    local stamp; stamp=$(date -u +%Y%m%dT%H%M%SZ)
    if [[ -n ${BENCH_RESULTS:-} ]]; then BENCH_OUT=$BENCH_RESULTS/$BENCH_NAME; else BENCH_OUT=$BENCH_REPO/bench/results/$stamp-$BENCH_NAME; fi
    mkdir -p "$BENCH_OUT"
    : >"$BENCH_OUT/summary.md"
    BENCH_PREFIX=skiff-bench-$$
    BENCH_CLEANUPS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# bench_on_exit 'COMMAND': run at exit (also on Ctrl-C and errors), the last registered first.
bench_on_exit() { BENCH_CLEANUPS+=("$1"); }

# The operator a benchmark runs (its pid in operator_pid): stop_operator ends it with SIGTERM and waits; registered to
# run at exit as well.
operator_pid=
stop_operator() {
    [[ -n $operator_pid ]] || return 0
    kill -TERM "$operator_pid" 2>/dev/null || true
    wait "$operator_pid" 2>/dev/null || true
    operator_pid=
}

bench_cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#BENCH_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${BENCH_CLEANUPS[i]}" >/dev/null 2>&1 || true
    done
    exit "$rc"
}

# bench_engine_clean LABEL=VALUE [NAME_PREFIX]: removes every container, network and volume of the engine that carries
# the label, or whose name starts with NAME_PREFIX. Nothing else is touched.
bench_engine_clean() {
    local label=$1 prefix=${2:-} ids
    ids=$( { docker ps -aq --filter "label=$label"; [[ -z $prefix ]] || docker ps -aq --filter "name=^/?$prefix"; } | sort -u)
    [[ -z $ids ]] || docker rm -f -v $ids >/dev/null 2>&1 || true
    ids=$( { docker network ls -q --filter "label=$label"; [[ -z $prefix ]] || docker network ls -q --filter "name=^$prefix"; } | sort -u)
    [[ -z $ids ]] || docker network rm $ids >/dev/null 2>&1 || true
    ids=$( { docker volume ls -q --filter "label=$label"; [[ -z $prefix ]] || docker volume ls -q --filter "name=^$prefix"; } | sort -u)
    [[ -z $ids ]] || docker volume rm -f $ids >/dev/null 2>&1 || true
}

# bench_stats: numbers on stdin, one a line -> "n min median p99 max" (p99 by nearest rank; median of the middle two).
bench_stats() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "0 - - - -"; exit }
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        r = int(0.99 * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR
        printf "%d %.3f %.3f %.3f %.3f\n", NR, a[1], m, a[r], a[NR] }'
}

# bench_ratio A B -> A/B with two decimals ("-" when B is 0 or missing).
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "-" || b == "-") print "-"; else printf "%.2f", a / b }'; }

# bench_verdict VALUE LIMIT -> "met" when VALUE <= LIMIT, else "missed" ("not measured" without a value).
bench_verdict() { awk -v v="$1" -v l="$2" 'BEGIN { if (v == "" || v == "-") print "not measured"; else print (v + 0 <= l + 0) ? "met" : "missed" }'; }

# bench_machine: the facts a figure needs beside it, as "key: value" lines.
bench_machine() {
    echo "cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "cores: $(nproc)"
    echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "kernel: $(uname -sr)"
    echo "os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "docker: engine $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'), storage $(docker info --format '{{.Driver}}' 2>/dev/null || echo '?')"
    echo "dotnet: SDK $(dotnet --version 2>/dev/null || echo '?'), runtime $(dotnet --list-runtimes 2>/dev/null | awk '/Microsoft.NETCore.App/ { v = $2 } END { print v }')"
    echo "skiff: $(git -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH_REPO" diff --quiet HEAD -- operator 2>/dev/null || echo ' (operator/ modified)')"
}

# bench_load: the 1-minute load average now.
bench_load() { cut -d' ' -f1 /proc/loadavg; }

# bench_skiff: the path of the skiff binary (operator/bin/Release/net10.0/skiff), built when missing; SKIFF_BIN names
# another build instead (a publish folder's `skiff`, e.g. ReadyToRun or composite, to measure it with the same script).
bench_skiff() {
    if [[ -n ${SKIFF_BIN:-} ]]; then
        [[ -x $SKIFF_BIN ]] || bench_die "SKIFF_BIN=$SKIFF_BIN is not an executable skiff"
        echo "$SKIFF_BIN"
        return
    fi
    local skiff=$BENCH_REPO/operator/bin/Release/net10.0/skiff
    if [[ ! -x $skiff ]]; then
        bench_log "building skiff (dotnet build operator -c Release)"
        dotnet build "$BENCH_REPO/operator/Skiff.csproj" -c Release -nologo -v quiet >&2 || bench_die "building skiff failed"
    fi
    echo "$skiff"
}

# bench_free_port: a free TCP port on 127.0.0.1.
bench_free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# bench_relay_start DIR: starts bench/docker-relay.py on DIR/docker.sock (log DIR/requests.log) in front of the engine,
# stopped at exit. Sets BENCH_RELAY_SOCK and BENCH_RELAY_LOG.
bench_relay_start() {
    local dir=$1 pid
    BENCH_RELAY_SOCK=$dir/docker.sock BENCH_RELAY_LOG=$dir/requests.log
    python3 "$BENCH_REPO/bench/docker-relay.py" --listen "$BENCH_RELAY_SOCK" --upstream "$BENCH_ENGINE" --log "$BENCH_RELAY_LOG" &
    pid=$!
    bench_on_exit "kill $pid"
    for _ in $(seq 100); do [[ -S $BENCH_RELAY_SOCK ]] && return 0; sleep 0.1; done
    bench_die "the Docker relay did not start"
}

# bench_check_images IMAGE...: every image is on the engine (scripts/build-test-images.sh builds them).
bench_check_images() {
    local image
    docker info >/dev/null 2>&1 || bench_die "the Docker engine does not answer (scripts/ensure-docker.sh starts it)"
    for image in "$@"; do
        docker image inspect "$image" >/dev/null 2>&1 || bench_die "image $image is missing: run scripts/build-test-images.sh"
    done
}

# bench_summary LINE...: appends markdown lines to the summary (the generated figures section) and prints them.
bench_summary() { printf '%s\n' "$@" | tee -a "$BENCH_OUT/summary.md"; }

# bench_row LABEL UNIT STATS_SKIFF [STATS_PEER PEER_LABEL]: a table row "| label | n | min | median | max | peer median | ratio |"
# from two "n min median p99 max" strings.
bench_row() {
    local label=$1 unit=$2 n mn md p99 mx pn pmn pmd pp99 pmx
    read -r n mn md p99 mx <<<"$3"
    if [[ -n ${4:-} ]]; then
        read -r pn pmn pmd pp99 pmx <<<"$4"
        bench_summary "| $label | $n | $mn | $md | $p99 | $mx | $unit | $5: $pmd ($pmn–$pmx) | $(bench_ratio "$md" "$pmd")× |"
    else
        bench_summary "| $label | $n | $mn | $md | $p99 | $mx | $unit | – | – |"
    fi
}

bench_table_head() {
    bench_summary "| measurement | n | min | median | p99 | max | unit | peer: median (min–max) | ratio (medians) |" \
        "|---|---:|---:|---:|---:|---:|---|---|---:|"
}
