#!/usr/bin/env bash
# P3: a resource change -> the first Docker request it causes, for the folder source (a file of the watched folder
# is rewritten) and for the Kubernetes source (the AppDeployment is patched on the in-repo test API server, served
# by bench/kube-apiserver; `skiff run --source kubernetes --kubeconfig` watches it).
#
# The operator talks to the engine through bench/docker-relay.py (--docker-host unix://RELAY), which logs every
# request with its arrival time; bench/change-latency/drive.py makes the changes one at a time, round four stacks,
# each stack's change after its previous rollout has gone quiet, and matches each change to the first request naming
# the stack (stack.yaml.tmpl: a busybox httpd app; every change is a new value of one environment variable, so a
# rollout; going round four stacks lets a change fall while another stack rolls out, and keeps 200 changes within
# minutes).
# There is no peer: the target is absolute (p99 <= 100 ms); the relay's own hop is in the figure (tens of µs).
#
# Usage: bench/change-latency/run.sh [--quick] [--only folder|kubernetes]   (200 changes per source, 20 with --quick;
#        CHANGES=N overrides)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_init change-latency "$@"
sources="folder kubernetes"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [[ ${args[i]} != --only ]] || sources=${args[i + 1]}; done
changes=${CHANGES:-$([[ $BENCH_QUICK == 1 ]] && echo 20 || echo 200)}
here=$BENCH_REPO/bench/change-latency
names=p3a,p3b,p3c,p3d

bench_check_images skiff-test/busybox:latest
skiff=$(bench_skiff)
apiserver=$BENCH_REPO/bench/kube-apiserver/bin/Release/net10.0/kube-apiserver
if [[ $sources == *kubernetes* && ! -x $apiserver ]]; then
    dotnet build "$BENCH_REPO/bench/kube-apiserver/KubeApiServer.csproj" -c Release -nologo -v quiet >&2 || bench_die "building bench/kube-apiserver failed"
fi

work=$(mktemp -d /tmp/skiff-bench-p3.XXXXXX)
ns=$BENCH_PREFIX
node=$BENCH_PREFIX
bench_on_exit "rm -rf '$work'"
bench_on_exit "clean_stacks"
bench_relay_start "$work"
sed -e "s/@NAMESPACE@/$ns/" -e "s/@NODE@/$node/" "$here/stack.yaml.tmpl" >"$work/stack.tmpl"

clean_stacks() {
    local name
    for name in ${names//,/ }; do bench_engine_clean "dev.skiff.app=$ns/$name"; done
    bench_engine_clean "dev.skiff.node=$node" "skiff_${ns}_"
}

write_stacks() { # the stacks' documents, first version, on stdout
    local name
    for name in ${names//,/ }; do echo "---"; sed -e "s/@NAME@/$name/" -e "s/@CHANGE@/0/" "$work/stack.tmpl"; done
}

bench_on_exit stop_operator

wait_ready() { # PORT: the operator's /readyz answers 200
    for _ in $(seq 600); do
        [[ $(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$1/readyz" || true) == 200 ]] && return 0
        kill -0 "$operator_pid" 2>/dev/null || bench_die "skiff run exited (log in $BENCH_OUT)"
        sleep 0.1
    done
    bench_die "skiff run did not become ready"
}

run_folder() {
    local port state=$work/state-folder
    port=$(bench_free_port)
    mkdir -p "$work/folder"
    for name in ${names//,/ }; do sed -e "s/@NAME@/$name/" -e "s/@CHANGE@/0/" "$work/stack.tmpl" >"$work/folder/$name.yaml"; done
    "$skiff" run --path "$work/folder" --node "$node" --state-dir "$state" --docker-host "unix://$BENCH_RELAY_SOCK" \
        --health-probe-bind-address "127.0.0.1:$port" --metrics-bind-address 0 --log-level "${SKIFF_LOG_LEVEL:-warning}" >"$BENCH_OUT/skiff-folder.log" 2>&1 &
    operator_pid=$!
    wait_ready "$port"
    for name in ${names//,/ }; do
        "$skiff" wait "$name" -n "$ns" --state-dir "$state" --timeout 3m --log-level warning >/dev/null || bench_die "stack $name did not become Ready"
    done
    bench_log "folder source: $changes changes"
    python3 "$here/drive.py" --relay-log "$BENCH_RELAY_LOG" --engine "$BENCH_ENGINE" --namespace "$ns" --names "$names" --changes "$changes" \
        --folder "$work/folder" --template "$work/stack.tmpl" --out "$BENCH_OUT/folder.csv"
    stop_operator
    clean_stacks
}

run_kubernetes() {
    local port state=$work/state-kube kubeconfig=$work/kubeconfig apiserver_pid
    port=$(bench_free_port)
    "$apiserver" --kubeconfig "$kubeconfig" --namespace "$ns" >"$BENCH_OUT/kube-apiserver.log" 2>&1 &
    apiserver_pid=$!
    bench_on_exit "kill $apiserver_pid"
    for _ in $(seq 300); do grep -q '^serving' "$BENCH_OUT/kube-apiserver.log" 2>/dev/null && break; sleep 0.1; done
    grep -q '^serving' "$BENCH_OUT/kube-apiserver.log" || bench_die "bench/kube-apiserver did not start"
    write_stacks | kubectl --kubeconfig "$kubeconfig" apply -f - >/dev/null
    "$skiff" run --source kubernetes --kubeconfig "$kubeconfig" --node "$node" --state-dir "$state" \
        --leader-election-namespace "$ns" --docker-host "unix://$BENCH_RELAY_SOCK" \
        --health-probe-bind-address "127.0.0.1:$port" --metrics-bind-address 0 --log-level warning >"$BENCH_OUT/skiff-kubernetes.log" 2>&1 &
    operator_pid=$!
    wait_ready "$port"
    kubectl --kubeconfig "$kubeconfig" -n "$ns" wait --for=condition=Ready appdeployment --all --timeout=180s >/dev/null \
        || bench_die "the stacks did not become Ready"
    bench_log "kubernetes source: $changes changes"
    python3 "$here/drive.py" --relay-log "$BENCH_RELAY_LOG" --engine "$BENCH_ENGINE" --namespace "$ns" --names "$names" --changes "$changes" \
        --kubeconfig "$kubeconfig" --out "$BENCH_OUT/kubernetes.csv"
    stop_operator
    kill "$apiserver_pid" 2>/dev/null || true
    clean_stacks
}

bench_log "load average $(cut -d' ' -f1-3 /proc/loadavg)"
load_start=$(bench_load)
for source in $sources; do "run_$source"; done

bench_summary "### P3 change → first Docker request" "" \
    "Four app-only stacks changed in turn, $changes changes per source, each after that stack's previous rollout went quiet; load average $load_start at the start." ""
bench_summary "| source | n | missed | min ms | p50 ms | p99 ms | max ms |" "|---|---:|---:|---:|---:|---:|---:|"
verdicts=()
for source in $sources; do
    csv=$BENCH_OUT/$source.csv
    missed=$(awk -F, 'NR > 1 && $3 == ""' "$csv" | wc -l)
    read -r n mn md p99 mx < <(awk -F, 'NR > 1 && $3 != "" { print $3 * 1000 }' "$csv" | bench_stats)
    bench_summary "| $source | $n | $missed | $mn | $md | $p99 | $mx |"
    verdicts+=("$source p99 $p99 ms: **$(bench_verdict "$p99" 100)**")
    echo "summary: P3 $source p50 $md ms p99 $p99 ms (n=$n, missed $missed)"
done
bench_summary "" "- **P3** (p99 ≤ 100 ms over 200 changes): $(IFS=';'; echo "${verdicts[*]}" | sed 's/;/; /g')$([[ $changes -lt 200 ]] && echo " (only $changes changes: --quick)")."
