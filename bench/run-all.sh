#!/usr/bin/env bash
# Runs every benchmark of issue 22 in one go and rewrites the generated figures section of docs/PERFORMANCE.md (between
# <!-- bench:begin --> and <!-- bench:end -->; the hand-written sections stay as they are).
#
#   bash bench/run-all.sh [--quick] [--only NAME[,NAME]] [--skip NAME[,NAME]] [--no-docs] [--no-native]
#
#   --quick    small N everywhere: a smoke check of every script (a few minutes in all), not figures to quote
#   --only     run just these benchmarks;  --skip  leave these out
#   --no-docs  leave docs/PERFORMANCE.md alone (the summary is still in the results folder)
#   --no-native  image-size and startup time skiff-test/skiff:dev (the tests' ReadyToRun image), and stacks runs the
#              JIT build, instead of the NativeAOT executable the Dockerfile ships, which is otherwise published first
#              (.build/native, about 5 minutes), packed as skiff-test/skiff:native (scripts/build-test-images.sh
#              --native) and judged on for P1/P2 (compose) and P4/P7 (stacks; its restarts alternating with the JIT
#              build's)
#
# Benchmarks, in the order they run (each also runs alone: bash bench/NAME/run.sh [--quick]):
#   image-size      the operator image's size                                   (item 4)
#   startup         process start -> /readyz 200 vs a minimal ASP.NET Core app  (P5)
#   gc-planning     BenchmarkDotNet: the image GC planner vs a naive one        (planner target)
#   gc-vs-prune     a real GC pass vs `docker image prune -a -f`, 500 images    (P6)
#   change-latency  a change -> the first Docker request, folder and Kubernetes (P3)
#   stacks          200 stacks: converge vs the docker CLI, idle RSS, resync    (P4, P7)
#   queue           1,000 runtime: kubernetes stacks, 10 changes/s for 5 min:   (P8)
#                   queue depth and change -> the operator's first write
#   compose         rollouts vs docker-compose                                  (P1, P2)
#   proxy           latency and throughput through skiff proxy vs direct, nginx (node proxy)
#   suite           scripts/test.sh under process accounting: its time and      (P9)
#                   where its CPU goes (about 20 minutes)
# Results: bench/results/<UTC stamp>/ — NAME.log (each benchmark's own output), NAME/ (its raw data and summary.md),
# machine.txt, and summary.md (the generated section). Needs root, the Docker engine, the .NET 10 SDK and the
# skiff-test images (scripts/build-test-images.sh). On a shared 2-core machine (2026-12-04) the run took 40 minutes
# without compose and proxy (--skip compose,proxy), and those two 5 more.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
all=(image-size startup gc-planning gc-vs-prune change-latency stacks queue compose proxy suite)
quick=0 docs=1 native=1 only="" skip="" native_bin=""
while (($#)); do
    case $1 in
        --quick) quick=1 ;;
        --no-docs) docs=0 ;;
        --no-native) native=0 ;;
        --only) only=${2:?--only needs NAME[,NAME]}; shift ;;
        --skip) skip=${2:?--skip needs NAME[,NAME]}; shift ;;
        -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-all.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for name in ${only//,/ } ${skip//,/ }; do
    [[ " ${all[*]} " == *" $name "* ]] || { echo "run-all.sh: no benchmark '$name' (${all[*]})" >&2; exit 2; }
done
selected=()
for name in "${all[@]}"; do
    [[ -z $only || ",$only," == *",$name,"* ]] || continue
    [[ ",$skip," != *",$name,"* ]] || continue
    selected+=("$name")
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$repo/bench/results/$stamp
mkdir -p "$results"
export BENCH_RESULTS=$results BENCH_QUICK=$quick
. "$repo/bench/lib.sh"
BENCH_NAME=run-all
bench_machine >"$results/machine.txt"
echo "run-all: ${selected[*]}$([[ $quick == 1 ]] && echo ' (--quick)'); results in $results"
cat "$results/machine.txt"

# The benchmarks this script did not write (compose, gc-vs-prune, proxy) print their own summaries; these turn them
# into the same markdown parts the others write.
summarize_gc_vs_prune() { # LOG OUT_DIR IMAGES
    local log=$1 out=$2 r2r jit whole
    jit=$(awk '/its pass alone \(JIT\)/ { print $(NF - 1) }' "$log")
    r2r=$(awk '/its pass alone \(ReadyToRun\)/ { print $(NF - 1) }' "$log")
    whole=$(awk '/skiff gc \(ReadyToRun\), whole command/ { print $(NF - 1) }' "$log")
    {
        echo "### P6 image GC pass vs \`docker image prune -a -f\` ($3 images, throwaway dockerd)"
        echo
        echo '```'
        sed -n '/^images:/,$p' "$log"
        echo '```'
        echo
        echo "- **P6** (≤ 1.2× prune): the pass alone ${jit:-?} (JIT) and ${r2r:-?} (ReadyToRun): **$(bench_verdict "${r2r%x}" 1.2)** (ReadyToRun, as the image ships); the whole \`skiff gc\` command with its start-up ${whole:-?}."
    } >"$out/summary.md"
}

summarize_compose() { # LOG OUT_DIR
    local log=$1 out=$2 cold change
    cold=$(awk '/^cold +skiff\/compose/ { print $NF }' "$log")
    change=$(awk '/^change +skiff\/compose/ { print $NF }' "$log")
    {
        echo "### P1/P2 rollouts vs docker-compose"
        echo
        echo '```'
        sed -n '/^scenario/,$p' "$log"
        echo '```'
        echo
        echo "- **P1** (cold ≤ 1.0× compose): ${cold:-?}: **$(bench_verdict "${cold%x}" 1.0)**; **P2** (image change ≤ 1.0×): ${change:-?}: **$(bench_verdict "${change%x}" 1.0)**."
    } >"$out/summary.md"
}

summarize_proxy() { # LOG OUT_DIR
    local log=$1 out=$2
    {
        echo "### Node proxy vs the app directly and vs nginx (wrk)"
        echo
        echo '```'
        sed -n '/^round/,/^raw wrk/p' "$log" | grep -v '^raw wrk' | grep -v '^target (p99'
        echo '```'
        echo
        # summary.py's verdict line: "target (...): skiff proxy +X ms: met|missed; nginx on the same rounds: +Y ms"
        sed -n 's/^target (p99 overhead <= 1 ms at 1,000 requests\/s): skiff proxy \(.*\): \(met\|missed\)\(.*\)$/- Paced, p99 overhead (median over rounds; target ≤ 1 ms at 1,000 requests\/s): skiff proxy \1: **\2**\3./p' "$log"
    } >"$out/summary.md"
}

run_one() { # NAME: runs it, its output to the terminal and NAME.log; returns its exit code
    local name=$1 out=$results/$1 rc=0 images rounds
    mkdir -p "$out"
    case $name in
        gc-vs-prune)
            # 500 images as P6 says; one round (each side once): a round makes 3 x 500 images, minutes on 2 cores.
            images=$([[ $quick == 1 ]] && echo 50 || echo 500); rounds=${GC_ROUNDS:-1}
            bash "$repo/bench/gc-vs-prune/run.sh" "$images" "$rounds" 2>&1 | tee "$results/$name.log" || rc=$?
            ((rc != 0)) || summarize_gc_vs_prune "$results/$name.log" "$out" "$images" ;;
        compose)
            # The shipped build (the native executable) against docker-compose, when it was published.
            local shipped=()
            [[ -n $native_bin ]] && shipped=("SKIFF_BIN=$native_bin")
            env "${shipped[@]}" RESULTS_DIR="$out" ROUNDS=$([[ $quick == 1 ]] && echo 1 || echo 5) bash "$repo/bench/compose/run.sh" 2>&1 | tee "$results/$name.log" || rc=$?
            ((rc != 0)) || summarize_compose "$results/$name.log" "$out" ;;
        proxy)
            RESULTS_DIR=$out DURATION=$([[ $quick == 1 ]] && echo 3 || echo 10) ROUNDS=$([[ $quick == 1 ]] && echo 1 || echo 6) \
                bash "$repo/bench/proxy/run.sh" 2>&1 | tee "$results/$name.log" || rc=$?
            ((rc != 0)) || summarize_proxy "$results/$name.log" "$out" ;;
        stacks)
            # P4 and P7 judged on the shipped build (the native executable): it converges and idles, and its restarts
            # alternate with the JIT build's; the GC variants run on it too (its GC is chosen at build time: no server GC).
            if [[ -n $native_bin ]]; then
                local n=$native_bin j
                j=$(bench_skiff)
                SKIFF_BIN=$n P7_VARIANT=${P7_VARIANT:-native} \
                    VARIANTS=${VARIANTS:-"native=$n jit=$j native=$n jit=$j native=$n hardlimit-48MiB conserve-7"} \
                    bash "$repo/bench/stacks/run.sh" 2>&1 | tee "$results/$name.log" || rc=$?
            else
                bash "$repo/bench/stacks/run.sh" 2>&1 | tee "$results/$name.log" || rc=$?
            fi ;;
        *)
            bash "$repo/bench/$name/run.sh" 2>&1 | tee "$results/$name.log" || rc=$?
            ;;
    esac
    return "$rc"
}

started=$SECONDS
declare -A outcome=()
# The image figures are the shipped build's: the NativeAOT executable, packed as the Dockerfile packs it.
if [[ $native == 1 && ( " ${selected[*]} " == *" image-size "* || " ${selected[*]} " == *" startup "* || " ${selected[*]} " == *" stacks "* || " ${selected[*]} " == *" compose "* ) ]]; then
    echo "run-all: publishing the NativeAOT executable for the image and memory figures (about 5 minutes)"
    dotnet publish "$repo/operator" -c Release -r linux-x64 -p:PublishAot=true -o "$repo/.build/native" -nologo -v quiet >"$results/native-publish.log" 2>&1 \
        || { echo "run-all: the NativeAOT publish failed ($results/native-publish.log)" >&2; exit 1; }
    bash "$repo/scripts/build-test-images.sh" --native "$repo/.build/native"
    export IMAGE=skiff-test/skiff:native SKIFF_IMAGE=skiff-test/skiff:native
    native_bin=$repo/.build/native/skiff # what compose and stacks judge (published by this run, never a stale one)
fi

for name in "${selected[@]}"; do
    echo
    echo "=== $name ($(date -u +%H:%M:%S) UTC, load average $(bench_load))"
    t=$SECONDS
    if run_one "$name"; then
        outcome[$name]="ok, $((SECONDS - t)) s"
    else
        outcome[$name]="FAILED after $((SECONDS - t)) s (see $name.log)"
        echo "run-all: $name failed; going on with the others" >&2
    fi
done
elapsed=$((SECONDS - started))

# The generated section.
section=$results/summary.md
{
    echo "## Figures (generated by \`bench/run-all.sh\`)"
    echo
    echo "Do not edit by hand: \`bash bench/run-all.sh\` rewrites everything between the bench markers."
    echo
    echo "Run \`$stamp\`$([[ $quick == 1 ]] && echo ' with **`--quick`** (small N: a smoke check, not figures to quote)'), $((elapsed / 60)) min $((elapsed % 60)) s; raw data in \`bench/results/$stamp/\`."
    echo
    sed 's/^/- /' "$results/machine.txt"
    echo "- benchmarks: $(for name in "${selected[@]}"; do printf '%s (%s); ' "$name" "${outcome[$name]}"; done | sed 's/; $//')"
    echo
    echo "### Targets"
    echo
    for name in "${selected[@]}"; do grep -h '^- \*\*P[0-9]' "$results/$name/summary.md" 2>/dev/null || true; done
    grep -h '^- Planner mean\|^- Paced: proxy' "$results"/*/summary.md 2>/dev/null || true
    for name in "${selected[@]}"; do
        [[ -s $results/$name/summary.md ]] || continue
        echo
        grep -v '^- \*\*P[0-9]' "$results/$name/summary.md" | sed 's/^###/####/' | cat -s
    done
} >"$section"
echo
echo "run-all: done in $((elapsed / 60)) min $((elapsed % 60)) s; summary in $section"

if [[ $docs == 1 ]]; then
    doc=$repo/docs/PERFORMANCE.md
    python3 - "$doc" "$section" <<'EOF'
import sys
doc, section = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
text = open(doc).read()
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
block = f"{begin}\n{section}\n{end}"
if begin in text and end in text:
    text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(doc, "w").write(text)
EOF
    echo "run-all: rewrote the generated section of docs/PERFORMANCE.md"
fi
for name in "${selected[@]}"; do [[ ${outcome[$name]} == ok* ]] || exit 1; done
