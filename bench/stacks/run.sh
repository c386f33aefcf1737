#!/usr/bin/env bash
# P4 + P7 on one real engine: STACKS small stacks (stack.yaml.tmpl: a busybox httpd app with a health check, a Redis
# cache on every fourth) from one folder.
#
#   converge  `skiff run` (folder source, 4 workers) from nothing until every stack is Ready (GET /status), against
#             the docker CLI peer (peer-stack.sh, 4 stacks at a time: network with its own /27, cache healthy, app
#             answering its health check), which goes first and is removed before Skiff starts.
#   P4        the operator's RSS (VmRSS) after converging and idling IDLE seconds (300; 30 with --quick), sampled every
#             5 s; then, restarted on the converged stacks, the same after VARIANT_IDLE seconds (60; 20 with --quick)
#             for: workstation GC (the default), server GC (DOTNET_gcServer=1), DOTNET_GCHeapHardLimit=3000000
#             (48 MiB; GC values are hex digits: a NativeAOT build ignores a "0x" prefix) and DOTNET_GCConserveMemory=7.
#   P7        each restart is a resync of STACKS steady stacks: from the process start until the controller's
#             reconcile counter (controller_runtime_reconcile_total) reaches STACKS, and the Docker list calls in that
#             window (the operator's own skiff_docker_requests_total: a restart talks to the engine directly, since the
#             relay's own CPU would be in the figure; while converging, bench/docker-relay.py counts them too, and
#             both counts are reported side by side); also list calls per steady
#             health period (10 s) while idling; and a warm pass: the idle window's reconciles (each steady stack is
#             looked at every health period) give the mean reconcile time and operator CPU, and from them one pass
#             over the STACKS stacks on the controller's 4 workers. Peer for scale: one `docker ps -a` plus one `docker inspect` of
#             every container.
# Everything it created (label dev.skiff.node=<its node>, dev.skiff.bench=<prefix>, and the names) is removed at the
# end, also on Ctrl-C.
#
# Usage: bench/stacks/run.sh [--quick]    (STACKS=200, 20 with --quick; IDLE, VARIANT_IDLE override; for a quicker look
#        at one figure, PEER=0 skips the docker CLI converge peer and VARIANTS="workstation" restarts with those only;
#        a variant LABEL=BINARY[,ENV=VALUE...] restarts another build, e.g. VARIANTS="workstation composite=DIR/skiff",
#        P7_VARIANT=LABEL judges P7 on that one; restarts reach the engine directly, RESTART_RELAY=1 through the relay)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_init stacks "$@"
stacks=${STACKS:-$([[ $BENCH_QUICK == 1 ]] && echo 20 || echo 200)}
idle=${IDLE:-$([[ $BENCH_QUICK == 1 ]] && echo 30 || echo 300)}
run_peer=${PEER:-1}
variants=${VARIANTS:-workstation server hardlimit-48MiB conserve-7}
variant_idle=${VARIANT_IDLE:-$([[ $BENCH_QUICK == 1 ]] && echo 20 || echo 60)}
here=$BENCH_REPO/bench/stacks

bench_check_images skiff-test/busybox:latest skiff-test/redis:7
skiff=$(bench_skiff)
work=$(mktemp -d /tmp/skiff-bench-stacks.XXXXXX)
ns=$BENCH_PREFIX
node=$BENCH_PREFIX
bench_on_exit "rm -rf '$work'"
bench_on_exit "bench_engine_clean dev.skiff.bench=$BENCH_PREFIX $BENCH_PREFIX-"
bench_on_exit "bench_engine_clean dev.skiff.node=$node skiff_${ns}_"
bench_relay_start "$work"

mkdir -p "$work/folder"
for ((i = 1; i <= stacks; i++)); do
    name=$(printf 's%03d' "$i")
    if ((i % 4 == 0)); then
        sed -e "s/@NAMESPACE@/$ns/" -e "s/@NAME@/$name/" -e "s/@NODE@/$node/" "$here/stack.yaml.tmpl"
    else
        sed -e "s/@NAMESPACE@/$ns/" -e "s/@NAME@/$name/" -e "s/@NODE@/$node/" -e '/^# cache/,$d' "$here/stack.yaml.tmpl"
    fi >"$work/folder/$name.yaml"
done
caches=$((stacks / 4))

metrics_port=
bench_on_exit stop_operator

start_operator() { # VARIANT BINARY DOCKER_HOST [ENV=VALUE...]: starts skiff run; sets operator_pid, metrics_port, started (epoch seconds)
    local variant=$1 bin=$2 docker_host=$3
    shift 3
    metrics_port=$(bench_free_port)
    started=$EPOCHREALTIME
    env "$@" "$bin" run --path "$work/folder" --node "$node" --state-dir "$work/state" --docker-host "$docker_host" \
        --network-pool 10.240.0.0/16 --network-prefix 27 \
        --metrics-bind-address "127.0.0.1:$metrics_port" --health-probe-bind-address 0 --log-level warning \
        >>"$BENCH_OUT/skiff-$variant.log" 2>&1 &
    operator_pid=$!
}

ready_count() { # stacks whose status is Ready (GET /status)
    local body
    body=$(curl -s -m 5 "http://127.0.0.1:$metrics_port/status" 2>/dev/null || true)
    python3 -c '
import json, sys
try:
    doc = json.loads(sys.stdin.read() or "{}")
except ValueError:
    doc = {}
print(sum(1 for r in doc.get("resources", []) if (r.get("status") or {}).get("phase") == "Ready"))' <<<"$body"
}

metric_sum() { # SERIES LABEL_MATCH [FORMAT]: the sum of a series' samples on the operator's /metrics that carry LABEL_MATCH
    local body
    body=$(curl -s -m 5 "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null || true)
    awk -v series="$1{" -v match_="$2" -v fmt="${3:-%d}" \
        'index($0, series) == 1 && index($0, match_) { s += $NF } END { printf fmt "\n", s + 0 }' <<<"$body"
}

# controller_runtime_reconcile_total of the appdeployment controller, all results
reconciles() { metric_sum controller_runtime_reconcile_total 'controller="appdeployment"'; }

# the operator's own count of container lists (skiff_docker_requests_total, every result)
operator_list_calls() { metric_sum skiff_docker_requests_total 'operation="container_list"'; }

# controller_runtime_reconcile_time_seconds_sum of the appdeployment controller
reconcile_seconds() { metric_sum controller_runtime_reconcile_time_seconds_sum 'controller="appdeployment"' %.6f; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$operator_pid/stat" 2>/dev/null || echo 0; } # utime + stime, USER_HZ

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$operator_pid/status" 2>/dev/null || echo 0; }

list_calls() { # FROM TO (epoch seconds): GET /containers/json requests in the relay's log
    awk -F'\t' -v a="$1" -v b="$2" '$1 >= a && $1 <= b && $3 == "GET" && $4 ~ /^(\/v[0-9.]+)?\/containers\/json/' "$BENCH_RELAY_LOG" | wc -l
}

first_request_after() { awk -F'\t' -v a="$1" '$1 >= a { print $1; exit }' "$BENCH_RELAY_LOG"; }

idle_sample() { # SECONDS LABEL: sleeps, sampling RSS every 5 s into rss.csv; prints "last_kb max_kb"
    local seconds=$1 label=$2 end max=0 kb
    end=$((SECONDS + seconds))
    while ((SECONDS < end)); do
        kill -0 "$operator_pid" 2>/dev/null || bench_die "skiff run ($label) exited while idling: $BENCH_OUT/skiff-$label.log"
        kb=$(rss_kb)
        echo "$label,$(date -u +%s),$kb" >>"$BENCH_OUT/rss.csv"
        ((kb > max)) && max=$kb
        sleep $((end - SECONDS < 5 ? (end - SECONDS > 0 ? end - SECONDS : 0) : 5))
    done
    kb=$(rss_kb)
    echo "$label,$(date -u +%s),$kb" >>"$BENCH_OUT/rss.csv"
    ((kb > max)) && max=$kb
    # Where the RSS is (anonymous: heap, stacks; file: the mapped code), for the last sample of each window.
    { echo "# $label $(date -u +%FT%TZ)"; grep -E '^(Rss|Pss_Anon|Pss_File|Pss_Shmem|Private|Shared|Anonymous)' "/proc/$operator_pid/smaps_rollup" 2>/dev/null; } >>"$BENCH_OUT/smaps.txt"
    echo "$kb $max"
}
echo "variant,epoch,rss_kb" >"$BENCH_OUT/rss.csv"

load_start=$(bench_load)
# --- converge: the docker CLI peer first, removed again, then Skiff -------------------------------------------------
if [[ $run_peer == 1 ]]; then
    bench_log "peer: $stacks stacks with the docker CLI, 4 at a time (load average $load_start)"
    t0=$EPOCHREALTIME
    for ((i = 1; i <= stacks; i++)); do echo "$i $((i % 4 == 0 ? 1 : 0))"; done \
        | xargs -P 4 -L 1 bash -c '"$0" "$1" "$2" "$3"' "$here/peer-stack.sh" "$BENCH_PREFIX" >"$BENCH_OUT/peer.log" 2>&1 \
        || bench_die "the docker CLI peer failed: $BENCH_OUT/peer.log"
    peer_converge=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    bench_log "peer converged in $peer_converge s; removing it"
    bench_engine_clean "dev.skiff.bench=$BENCH_PREFIX" "$BENCH_PREFIX-"
else
    peer_converge=
fi

bench_log "skiff: $stacks stacks ($caches with a cache) from one folder"
start_operator converge "$skiff" "unix://$BENCH_RELAY_SOCK"
deadline=$((SECONDS + 1800))
ready=0
while ((ready < stacks)); do
    kill -0 "$operator_pid" 2>/dev/null || bench_die "skiff run exited: $BENCH_OUT/skiff-converge.log"
    ((SECONDS < deadline)) || bench_die "only $ready of $stacks stacks Ready after 30 minutes"
    sleep 0.5
    ready=$(ready_count)
done
skiff_converge=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
bench_log "skiff converged in $skiff_converge s; idling $idle s"
converge_lists=$(list_calls "$started" "$EPOCHREALTIME")
# The restarts count their list calls with the operator's own counter (below); here both count the same calls.
converge_lists_own=$(operator_list_calls)
converge_requests=$(awk -F'\t' -v a="$started" '$1 >= a' "$BENCH_RELAY_LOG" | wc -l)

idle_from=$EPOCHREALTIME
reconciles_before=$(reconciles)
seconds_before=$(reconcile_seconds)
ticks_before=$(cpu_ticks)
read -r idle_kb idle_max_kb < <(idle_sample "$idle" converge)
idle_to=$EPOCHREALTIME
idle_reconciles=$(( $(reconciles) - reconciles_before ))
# A warm pass over every stack (the health period requeues each steady stack every 10 s, so the idle window is a run
# of such passes): per reconcile, its time and the operator's CPU, and for one pass over the STACKS stacks the CPU and
# the time on the controller's 4 workers.
read -r warm_ms warm_cpu_ms warm_pass_s warm_pass_cpu_s < <(awk -v n="$idle_reconciles" -v s0="$seconds_before" -v s1="$(reconcile_seconds)" \
    -v t0="$ticks_before" -v t1="$(cpu_ticks)" -v hz="$(getconf CLK_TCK)" -v stacks="$stacks" \
    'BEGIN { if (n < 1) n = 1; ms = (s1 - s0) * 1000 / n; cpu = (t1 - t0) * 1000 / hz / n;
             printf "%.2f %.2f %.3f %.3f\n", ms, cpu, ms * stacks / 4 / 1000, cpu * stacks / 1000 }')
idle_lists=$(list_calls "$idle_from" "$idle_to")
lists_per_period=$(awk -v n="$idle_lists" -v a="$idle_from" -v b="$idle_to" 'BEGIN { printf "%.0f", n / ((b - a) / 10) }')
stop_operator

# --- restarts: a resync of steady stacks each (P7), then RSS after VARIANT_IDLE per GC setting (P4) ---------------
declare -A variant_env=(
    [workstation]="DOTNET_gcServer=0"
    [server]="DOTNET_gcServer=1"
    [hardlimit-48MiB]="DOTNET_GCHeapHardLimit=3000000"
    [conserve-7]="DOTNET_GCConserveMemory=7"
)
resync_csv=$BENCH_OUT/resync.csv
echo "variant,path,seconds_from_start,seconds_from_first_request,list_calls,requests,rss_kb,rss_max_kb,inspects_from,inspects_to" >"$resync_csv"
for spec in $variants; do
    # A variant is a name from variant_env (this build, that setting), or LABEL=BINARY[,ENV=VALUE...]: another build
    # (a publish folder's skiff) restarted on the same stacks, e.g. composite=/tmp/composite/skiff. A name may repeat
    # (VARIANTS="workstation composite=… workstation composite=…" interleaves them); P7's verdict takes the median of
    # the P7_VARIANT rows.
    if [[ $spec == *=* ]]; then
        variant=${spec%%=*}
        IFS=, read -r -a extra <<<"${spec#*=}"
        bin=${extra[0]}
        extra=("${extra[@]:1}")
        [[ -x $bin ]] || bench_die "variant $variant: $bin is not an executable skiff"
    else
        variant=$spec bin=$skiff
        read -r -a extra <<<"${variant_env[$variant]:?unknown variant $variant}"
    fi
    bench_log "restart ($variant): resync of $stacks steady stacks, then $variant_idle s idle"
    # Straight to the engine, not through the relay: the relay handles each of a restart's ~260 requests in Python on
    # the same 2 busy cores, so its CPU would be in the figure. The list calls are then the operator's own count, which
    # the converge above reports beside the relay's. RESTART_RELAY=1: through the relay, with the first request and the
    # copy's inspects timed from its log.
    if [[ ${RESTART_RELAY:-0} == 1 ]]; then host="unix://$BENCH_RELAY_SOCK"; else host="unix://$BENCH_ENGINE"; fi
    start_operator "$variant" "$bin" "$host" "${extra[@]}"
    deadline=$((SECONDS + 600))
    while (( $(reconciles) < stacks )); do
        kill -0 "$operator_pid" 2>/dev/null || bench_die "skiff run ($variant) exited: $BENCH_OUT/skiff-$variant.log"
        ((SECONDS < deadline)) || bench_die "the resync ($variant) did not reconcile $stacks stacks in 10 minutes"
        sleep 0.1
    done
    done_at=$EPOCHREALTIME
    if [[ ${RESTART_RELAY:-0} == 1 ]]; then
        first=$(first_request_after "$started")
        lists=$(list_calls "$started" "$done_at")
        requests=$(awk -F'\t' -v a="$started" -v b="$done_at" '$1 >= a && $1 <= b' "$BENCH_RELAY_LOG" | wc -l)
    else
        # Its own counter has the lists but not every request (a list's inspects count as part of it): no request count.
        first= requests= lists=$(operator_list_calls)
    fi
    # Where the resync's time goes (through the relay only): the container copy's first list inspects every container,
    # then the stacks run.
    inspects_from= inspects_to=
    if [[ -n $first ]]; then
        read -r inspects_from inspects_to < <(awk -F'\t' -v a="$started" -v b="$done_at" \
            '$1 >= a && $1 <= b && $3 == "GET" && $4 ~ /^(\/v[0-9.]+)?\/containers\/[0-9a-f]+\/json/ { if (!f) f = $1; l = $1 }
             END { printf "%.3f %.3f\n", (f ? f - a : 0), (l ? l - a : 0) }' "$BENCH_RELAY_LOG")
    fi
    read -r kb max_kb < <(idle_sample "$variant_idle" "$variant")
    awk -v v="$variant" -v s="$started" -v f="$first" -v d="$done_at" -v l="$lists" -v r="$requests" -v k="$kb" -v m="$max_kb" \
        -v i0="$inspects_from" -v i1="$inspects_to" -v path="$([[ -n $first ]] && echo relay || echo direct)" \
        'BEGIN { printf "%s,%s,%.3f,%s,%d,%s,%d,%d,%s,%s\n", v, path, d - s, (f == "" ? "" : sprintf("%.3f", d - f)), l, r, k, m, i0, i1 }' >>"$resync_csv"
    stop_operator
done

# The peer of a resync, for scale: list every container of the node and inspect each, with the docker CLI.
t0=$EPOCHREALTIME
docker ps -aq --filter "label=dev.skiff.node=$node" | xargs docker inspect >/dev/null
peer_resync=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
containers=$(docker ps -aq --filter "label=dev.skiff.node=$node" | wc -l)

# --- summary ---------------------------------------------------------------------------------------------------------
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
bench_summary "### P4 memory and P7 resync: $stacks stacks on one engine" "" \
    "$stacks stacks ($caches with a Redis cache; $containers containers), busybox httpd apps with a 10 s health check; load average $load_start at the start." "" \
    "| measurement | skiff | peer | ratio |" "|---|---:|---:|---:|" \
    "| converge from nothing (s) | $skiff_converge | ${peer_converge:-not run (PEER=0)}$([[ -n $peer_converge ]] && echo " (docker CLI, 4 at a time)") | $([[ -n $peer_converge ]] && echo "$(bench_ratio "$skiff_converge" "$peer_converge")×" || echo –) |" \
    "| Docker requests while converging (list calls; the operator's own count of them) | $converge_requests ($converge_lists; $converge_lists_own) | – | – |" \
    "| RSS after converging + ${idle} s idle (MiB; max while idle) | $(mib "$idle_kb") ($(mib "$idle_max_kb")) | – | – |" \
    "| steady: reconciles / list calls in ${idle} s idle | $idle_reconciles / $idle_lists ($lists_per_period per 10 s health period) | – | – |" \
    "| steady reconcile: time / operator CPU (ms, mean) | $warm_ms / $warm_cpu_ms | – | – |" \
    "| warm pass over the $stacks stacks: on 4 workers / operator CPU (s) | $warm_pass_s / $warm_pass_cpu_s | – | – |" ""
bench_summary "| restart with | to the engine | resync s (from start) | s (from 1st Docker request) | the copy's inspects (s from start) | list calls | Docker requests | RSS MiB after ${variant_idle} s (max) |" \
    "|---|---|---:|---:|---:|---:|---:|---:|"
while IFS=, read -r v path s f l r k m i0 i1; do
    bench_summary "| $v | $path | $s | ${f:-–} | $([[ -n $i0 ]] && echo "$i0–$i1" || echo –) | $l | ${r:-–} | $(mib "$k") ($(mib "$m")) |"
done < <(tail -n +2 "$resync_csv")
# P7 is judged on P7_VARIANT's restarts (default workstation, the plain build; the median when it ran several times).
p7_variant=${P7_VARIANT:-workstation}
resync=$(awk -F, -v v="$p7_variant" '$1 == v { print $3 }' "$resync_csv" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
resync_lists=$(awk -F, -v v="$p7_variant" '$1 == v { print $5 }' "$resync_csv" | sort -n | tail -1)
bench_summary "" "Peer of a resync, for scale: \`docker ps -a\` + \`docker inspect\` of all $containers containers: $peer_resync s." "" \
    "- **P4** (≤ 60 MB RSS after $stacks stacks and 5 min idle): $(mib "$idle_kb") MiB after ${idle} s: **$(bench_verdict "$(awk -v k="$idle_kb" 'BEGIN { print k * 1024 / 1e6 }')" 60)**$([[ $idle -lt 300 ]] && echo " (idle only ${idle} s: --quick)")." \
    "- **P7** (resync ≤ 2 s, constant list calls; $p7_variant restarts, median): $resync s with $resync_lists list calls for $stacks stacks: time **$(bench_verdict "$resync" 2)**, list calls **$( ((resync_lists <= 5)) && echo constant || echo "per resource ($resync_lists for $stacks): missed")**; a warm pass over the same stacks in the running operator $warm_pass_s s on its 4 workers ($warm_pass_cpu_s s of CPU), with $idle_lists list calls in ${idle} s."
echo "summary: P4 RSS $(mib "$idle_kb") MiB after ${idle}s idle; P7 resync $resync s, $resync_lists list calls, warm pass $warm_pass_s s; converge skiff $skiff_converge s vs docker CLI $peer_converge s"
bench_log "removing the $stacks stacks"
