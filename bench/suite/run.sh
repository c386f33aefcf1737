#!/usr/bin/env bash
# P9: the test suite's time, and where its CPU goes.
#
#   bash bench/suite/run.sh [--filter EXPR]
#
# Runs `scripts/test.sh` (the README's test command; with --filter, SKIFF_TEST_FILTER=EXPR) once from the current tree
# under Linux process accounting (Debian's `acct`, installed when missing), and reports:
#   - the wall time of the whole command and of each test assembly (first test start to last end), the tests running at
#     once over the integration run (4 at a time on 2 cores: the suite is CPU-bound, so its time is its CPU / 2) and the
#     slowest tests;
#   - the machine's CPU over the run (user, system, idle) and the CPU of the processes that ended, by program
#     (bench/suite/breakdown.py): skiff processes the tests start, the test app and proxy in containers, dockerd's
#     re-exec per container start ("exe"), PostgreSQL, runc, pg_isready, kubectl, ...; the main dockerd and containerd
#     run through and are read from /proc.
# The build is warm when the tree was built before (P9's figure is from a warm build); the first run builds.
# No peer: the target is absolute (under 15 minutes on this 2-core machine).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_init suite "$@"

filter=""
while (($#)); do
    case $1 in
        --filter) filter=$2; shift 2 ;;
        --quick) shift ;;
        *) bench_die "unknown option $1" ;;
    esac
done
((BENCH_QUICK == 0)) || [[ -n $filter ]] || filter="FullyQualifiedName~Skiff.IntegrationTests.Cli"

command -v accton >/dev/null || { apt-get install -y acct >/dev/null || bench_die "apt-get install acct failed"; }
pacct=$BENCH_OUT/pacct
: >"$pacct"
accton "$pacct" >/dev/null
bench_on_exit 'accton off >/dev/null 2>&1 || true'

cpu_of() { [[ -n $1 && -r /proc/$1/stat ]] && awk '{ printf "%.1f", ($14 + $15) / 100 }' "/proc/$1/stat" || echo 0; }
machine() { awk '/^cpu / { print $2 + $3, $4, $5 + $6 }' /proc/stat; } # user, system, idle (ticks)

bench_machine >"$BENCH_OUT/machine.txt"
dockerd_pid=$(pgrep -x dockerd | head -1 || true)
containerd_pid=$(pgrep -x containerd | head -1 || true)
d0=$(cpu_of "$dockerd_pid"); c0=$(cpu_of "$containerd_pid")
read -r u0 s0 i0 < <(machine)
start=$(date +%s.%N)
bench_log "scripts/test.sh ${filter:+(SKIFF_TEST_FILTER=$filter)}"
status=0
(cd "$BENCH_REPO" && SKIFF_TEST_FILTER=$filter bash scripts/test.sh) >"$BENCH_OUT/test.log" 2>&1 || status=$?
end=$(date +%s.%N)
read -r u1 s1 i1 < <(machine)
d1=$(cpu_of "$dockerd_pid"); c1=$(cpu_of "$containerd_pid")
accton off >/dev/null
dump-acct "$pacct" >"$BENCH_OUT/pacct.txt"
cp -r "$BENCH_REPO/TestResults/run" "$BENCH_OUT/trx" 2>/dev/null || true

minutes=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (b - a) / 60 }')
{
    echo "### P9: the test suite"
    echo
    if [[ -z $filter ]]; then
        echo "- **P9** \`scripts/test.sh\`, every test: **$minutes min** wall ($(tail -1 "$BENCH_OUT/test.log")); target under 15 min from a warm build: **$(bench_verdict "$minutes" 15)**"
        echo
    fi
    echo "\`scripts/test.sh\`${filter:+ with SKIFF_TEST_FILTER=$filter}: $(tail -1 "$BENCH_OUT/test.log") (exit $status)," \
        "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f s (%.1f min)", b - a, (b - a) / 60 }') wall;" \
        "$(grep -h 'Duration:' "$BENCH_OUT/test.log" | sed 's/.*Duration: \([^-]*\) - \(.*\)/\2 \1/' | paste -sd ';' -)"
    echo
    awk -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v i="$((i1 - i0))" -v d="$(awk -v a="$d0" -v b="$d1" 'BEGIN { print b - a }')" \
        -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" 'BEGIN {
        t = u + s + i
        printf "Machine CPU over the run: user %.0f s, system %.0f s, idle %.0f s (%.0f%% busy); main dockerd %.0f s, containerd %.0f s\n", u / 100, s / 100, i / 100, 100 * (u + s) / t, d, c }'
    echo
    echo '```'
    python3 "$(dirname "${BASH_SOURCE[0]}")/breakdown.py" "$BENCH_OUT/pacct.txt" "$BENCH_OUT/trx"
    echo '```'
} >"$BENCH_OUT/summary.md"
cat "$BENCH_OUT/summary.md"
