#!/usr/bin/env bash
# The image GC planner (operator/ImageGC) against its naive peer, with BenchmarkDotNet (bench/Skiff.Bench, filter
# *Gc*): 10,000 images, with and without disk pressure. BenchmarkDotNet's own table and artifacts are kept; the
# summary is its Mean column and the planner/naive ratio.
#
# Usage: bench/gc-planning/run.sh [--quick]    (ShortRun, as GcPlanningBenchmarks declares; --quick: one warm-up and one
#        iteration, a smoke check)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_init gc-planning "$@"
job=()
[[ $BENCH_QUICK == 0 ]] || job=(--warmupCount 1 --iterationCount 1)
load_start=$(bench_load)
(cd "$BENCH_OUT" && dotnet run -c Release --project "$BENCH_REPO/bench/Skiff.Bench" -- --filter '*Gc*' "${job[@]}" \
    --artifacts "$BENCH_OUT/artifacts") >"$BENCH_OUT/benchmarkdotnet.log" 2>&1 || { tail -30 "$BENCH_OUT/benchmarkdotnet.log" >&2; bench_die "BenchmarkDotNet failed"; }
table=$(find "$BENCH_OUT/artifacts" -name '*-report-github.md' | head -1)
[[ -n $table ]] || bench_die "no BenchmarkDotNet report in $BENCH_OUT/artifacts"
bench_summary "### Image GC planning (10,000 images), BenchmarkDotNet $([[ $BENCH_QUICK == 1 ]] && echo "(--quick: 1 warm-up, 1 iteration)" || echo "ShortRun")" "" \
    "Load average $load_start at the start. Target ≤ 20 ms per plan (docs above); peer: the naive planner." ""
awk '/^\|/' "$table" | tee -a "$BENCH_OUT/summary.md"
# Mean and Ratio of each Method and Pressure, by the header's column names.
planner=$(awk -F'|' '
    /^\| *Method/ { for (i = 2; i < NF; i++) { h = $i; gsub(/[ *]/, "", h); col[h] = i }; next }
    /^\|/ { m = $col["Method"]; gsub(/[ *]/, "", m); if (m != "Planner") next
            p = $col["Pressure"]; gsub(/[ *]/, "", p); v = $col["Mean"]; gsub(/^ +| +$|\*/, "", v); r = $col["Ratio"]; gsub(/[ *]/, "", r)
            printf "pressure %s: %s (%s× the naive peer); ", p, v, r }' "$table")
bench_summary "" "- Planner mean per plan: ${planner}target ≤ 20 ms."
echo "summary: gc planning $planner"
