#!/usr/bin/env bash
# P5: process start -> /readyz 200 of `skiff run` on the embedded default (folder source, local Docker engine),
# against a minimal ASP.NET Core app (bench/peer) started the same way, interleaved on the same machine.
#
#   host    skiff: operator/bin/Release/net10.0/skiff run --path EMPTY --node NODE --state-dir FRESH
#                  --health-probe-bind-address 127.0.0.1:PORT --metrics-bind-address 0 --log-level warning
#           peer:  bench/peer/bin/Release/net10.0/peer --urls http://127.0.0.1:PORT
#   image   the same two from the operator image skiff-test/skiff:dev (scripts/build-test-images.sh), timed from
#           `docker run` (so container creation is inside both figures): skiff with the Docker socket and the folder
#           mounted, the peer's build mounted and run with the image's own dotnet. --network host for both.
# The folder is empty: the figure is the operator's own start (runtime, engine's first answer, folder read, HTTP
# server), not a rollout. Each run gets a fresh state folder. Timing: bench/startup/measure.py polls every 5 ms.
#
# Usage: bench/startup/run.sh [--quick] [--no-image]     (N=10 runs per side, 3 with --quick; RUNS=N overrides)
#   SKIFF_IMAGE=IMAGE   the skiff image to time (default skiff-test/skiff:dev); skiff-test/skiff:native is the
#                       Dockerfile's NativeAOT executable (scripts/build-test-images.sh --native DIR). The peer always
#                       runs in skiff-test/skiff:dev, which has a dotnet to run it.
# Target (issue 22, P5): <= 1 s on this 2-core machine.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_init startup "$@"
with_image=1
for arg in "$@"; do [[ $arg != --no-image ]] || with_image=0; done
runs=${RUNS:-$([[ $BENCH_QUICK == 1 ]] && echo 3 || echo 10)}
image=${SKIFF_IMAGE:-skiff-test/skiff:dev}
peer_image_name=skiff-test/skiff:dev

bench_check_images
skiff=$(bench_skiff)
peer_dir=$BENCH_REPO/bench/peer/bin/Release/net10.0
if [[ ! -f $peer_dir/peer.dll || $BENCH_REPO/bench/peer/Program.cs -nt $peer_dir/peer.dll ]]; then
    dotnet build "$BENCH_REPO/bench/peer/Peer.csproj" -c Release -nologo -v quiet >&2 || bench_die "building bench/peer failed"
fi
if [[ $with_image == 1 ]] && ! docker image inspect "$image" >/dev/null 2>&1; then
    bench_log "$image is missing (scripts/build-test-images.sh): the image runs are skipped"
    with_image=0
fi

work=$(mktemp -d /tmp/skiff-bench-startup.XXXXXX)
bench_on_exit "rm -rf '$work'"
bench_on_exit "bench_engine_clean label=dev.skiff.bench=$BENCH_PREFIX $BENCH_PREFIX"
mkdir -p "$work/stacks"
node=$BENCH_PREFIX
raw=$BENCH_OUT/startup.csv
echo "run,side,seconds,load1" >"$raw"

measure() { # side URL COMMAND...
    local side=$1 url=$2 seconds
    shift 2
    seconds=$(python3 "$BENCH_REPO/bench/startup/measure.py" --url "$url" --timeout 60 --log "$BENCH_OUT/$side.log" -- "$@") \
        || bench_die "$side did not become ready (log: $BENCH_OUT/$side.log)"
    echo "$run,$side,$seconds,$(bench_load)" >>"$raw"
    printf '  run %2d  %-12s %6.3f s\n' "$run" "$side" "$seconds" >&2
}

skiff_host() {
    local port; port=$(bench_free_port)
    measure skiff "http://127.0.0.1:$port/readyz" "$skiff" run --path "$work/stacks" --node "$node" --state-dir "$work/state-$run" \
        --health-probe-bind-address "127.0.0.1:$port" --metrics-bind-address 0 --log-level warning
    rm -rf "$work/state-$run"
}

peer_host() {
    local port; port=$(bench_free_port)
    measure peer "http://127.0.0.1:$port/readyz" "$peer_dir/peer" --urls "http://127.0.0.1:$port"
}

skiff_image() {
    local port; port=$(bench_free_port)
    measure skiff-image "http://127.0.0.1:$port/readyz" docker run --rm --name "$BENCH_PREFIX-skiff-$run" --label "dev.skiff.bench=$BENCH_PREFIX" \
        --network host -v /var/run/docker.sock:/var/run/docker.sock -v "$work/stacks:/stacks:ro" \
        "$image" run --path /stacks --node "$node" --state-dir /var/lib/skiff \
        --health-probe-bind-address "127.0.0.1:$port" --metrics-bind-address 0 --log-level warning
    docker rm -f "$BENCH_PREFIX-skiff-$run" >/dev/null 2>&1 || true
}

peer_image() {
    local port; port=$(bench_free_port)
    measure peer-image "http://127.0.0.1:$port/readyz" docker run --rm --name "$BENCH_PREFIX-peer-$run" --label "dev.skiff.bench=$BENCH_PREFIX" \
        --network host -v "$peer_dir:/peer:ro" --entrypoint /usr/share/dotnet/dotnet \
        "$peer_image_name" /peer/peer.dll --urls "http://127.0.0.1:$port"
    docker rm -f "$BENCH_PREFIX-peer-$run" >/dev/null 2>&1 || true
}

bench_log "$runs runs per side, alternating which goes first; load average $(cut -d' ' -f1-3 /proc/loadavg)"
# One unmeasured start of each: the first start after a build reads every file from disk.
run=0
skiff_host >/dev/null 2>&1; peer_host >/dev/null 2>&1
sed -i '/^0,/d' "$raw"
for ((run = 1; run <= runs; run++)); do
    if ((run % 2)); then skiff_host; peer_host; else peer_host; skiff_host; fi
    if [[ $with_image == 1 ]]; then
        if ((run % 2)); then skiff_image; peer_image; else peer_image; skiff_image; fi
    fi
done

stats() { awk -F, -v s="$1" 'NR > 1 && $2 == s { print $3 }' "$raw" | bench_stats; }
bench_summary "### P5 start-up: process start → /readyz 200" "" \
    "Empty folder, fresh state folder each run, $runs runs per side interleaved; load average $(awk -F, 'NR > 1 { print $4 }' "$raw" | bench_stats | awk '{ print $3 }') (median at the runs' starts)." ""
bench_table_head
s=$(stats skiff); p=$(stats peer)
bench_row "\`skiff run\` (host, JIT build)" s "$s" "$p" "minimal ASP.NET Core app"
if [[ $with_image == 1 ]]; then
    si=$(stats skiff-image); pi=$(stats peer-image)
    bench_row "\`skiff run\` from $image (from \`docker run\`)" s "$si" "$pi" "the same app in $peer_image_name"
fi
median=$(awk '{ print $3 }' <<<"$s")
p5() { awk '{ print "median " $3 " s (max " $5 " s)" }' <<<"$1"; }
line="- **P5** (≤ 1 s, judged on the median): host $(p5 "$s"): **$(bench_verdict "$median" 1)**"
[[ $with_image == 0 ]] || line+="; from the image $(p5 "$si"): **$(bench_verdict "$(awk '{ print $3 }' <<<"$si")" 1)**"
bench_summary "" "$line."
echo "summary: P5 skiff $median s median (peer $(awk '{ print $3 }' <<<"$p") s, $(bench_ratio "$median" "$(awk '{ print $3 }' <<<"$p")")x)"
