#!/usr/bin/env bash
# P8: 1,000 AppDeployments in the test API server with 10 changing per second for 5 minutes: the work queue's depth stays
# bounded and every change is acted on within 1 s (the distribution is reported).
#
# The stacks have `runtime: kubernetes`, so the operator under test is the instance holding the Lease skiff-cluster
# (`skiff run --source kubernetes --kubeconfig`), which renders each AppDeployment into a Deployment on the same API
# server (bench/kube-apiserver, the in-repo test API server) with server-side apply. No pods ever run there (the test
# API server has no controllers), so every stack stays in its first rollout, "waiting for the Deployment to roll out",
# and the runtime looks at each again every 10 s (KubeRolloutPlanner.PollInterval: read the Deployment, list the Jobs
# and Pods, apply the Deployment again, no status write) without a progress deadline ever passing (no Deployment
# controller sets ProgressDeadlineExceeded): N/10 reconciles per second of background work, part of the load on the
# queue, not of the measurement (see drive.py for how a change is matched to the operator's writes).
#
# Steps: the API server with --request-log (one line per request as it arrives); N AppDeployments POSTed; the
# operator started (metrics sampled every second: workqueue_*, reconciles, RSS, load); the initial converge (until the
# operator has applied every stack's Deployment once: its time from the operator's start); WARMUP seconds; then RATE
# changes per second for DURATION seconds, round the stacks (drive.py change); then every change is matched to the
# operator's first writes for its stack in the request log (drive.py match: "acted" = the status write that begins the
# new revision, "applied" = the Deployment apply with its template, "first" = any write naming the stack).
# There is no peer: the target is absolute (every change acted on within 1 s, a bounded queue), as for P3.
#
# Usage: bench/queue/run.sh [--quick]   (1,000 stacks, 10 changes/s, 300 s; --quick: 200 stacks, 60 s)
#        STACKS=N RATE=R DURATION=S WARMUP=S GRACE=S override; results in bench/results/<stamp>-queue/ (or run-all's)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_init queue "$@"
stacks=${STACKS:-$([[ $BENCH_QUICK == 1 ]] && echo 200 || echo 1000)}
rate=${RATE:-10}
duration=${DURATION:-$([[ $BENCH_QUICK == 1 ]] && echo 60 || echo 300)}
warmup=${WARMUP:-30}
grace=${GRACE:-60}
here=$BENCH_REPO/bench/queue

skiff=$(bench_skiff)
apiserver=$BENCH_REPO/bench/kube-apiserver/bin/Release/net10.0/kube-apiserver
if [[ ! -x $apiserver || $BENCH_REPO/bench/kube-apiserver/Program.cs -nt $apiserver ]]; then
    bench_log "building bench/kube-apiserver"
    dotnet build "$BENCH_REPO/bench/kube-apiserver/KubeApiServer.csproj" -c Release -nologo -v quiet >&2 || bench_die "building bench/kube-apiserver failed"
fi
docker info >/dev/null 2>&1 || bench_die "the Docker engine does not answer (scripts/ensure-docker.sh starts it): skiff run needs one for its node"

work=$(mktemp -d /tmp/skiff-bench-p8.XXXXXX)
ns=$BENCH_PREFIX
node=$BENCH_PREFIX
kubeconfig=$work/kubeconfig
requests=$work/requests.log
bench_on_exit "rm -rf '$work'"
bench_on_exit stop_operator

bench_log "load average $(cut -d' ' -f1-3 /proc/loadavg); $stacks stacks, $rate changes/s for $duration s"
load_start=$(bench_load)
# The host's default watch history (10,000 events, minutes of this run's writes) is enough for the informers, which
# resume from recent resourceVersions (and relist on a 410). The fake itself is heavy at this size (450-700 MB working
# set, gen2 pauses of 0.6-0.8 s seen with dotnet-counters, with 10,000 or 100,000 events of history): its pauses are in
# the figures, as stalls of every request.
"$apiserver" --kubeconfig "$kubeconfig" --namespace "$ns" --request-log "$requests" >"$BENCH_OUT/kube-apiserver.log" 2>&1 &
apiserver_pid=$!
bench_on_exit "kill $apiserver_pid"
for _ in $(seq 300); do grep -q '^serving' "$BENCH_OUT/kube-apiserver.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^serving' "$BENCH_OUT/kube-apiserver.log" || bench_die "bench/kube-apiserver did not start"

bench_log "creating $stacks AppDeployments"
create_s=$(python3 "$here/drive.py" create --kubeconfig "$kubeconfig" --namespace "$ns" --stacks "$stacks")

metrics_port=$(bench_free_port)
probe_port=$(bench_free_port)
start=$EPOCHREALTIME
"$skiff" run --source kubernetes --kubeconfig "$kubeconfig" --node "$node" --state-dir "$work/state" \
    --leader-election-namespace "$ns" --metrics-bind-address "127.0.0.1:$metrics_port" \
    --health-probe-bind-address "127.0.0.1:$probe_port" --log-level warning >"$BENCH_OUT/skiff.log" 2>&1 &
operator_pid=$!
python3 "$here/drive.py" sample --metrics "http://127.0.0.1:$metrics_port/metrics" --pid "$operator_pid" \
    --apiserver-pid "$apiserver_pid" --out "$BENCH_OUT" &
sampler_pid=$!
bench_on_exit "kill $sampler_pid"

bench_log "initial converge: waiting until every stack's Deployment was applied once"
read -r converge_s converge_from_first < <(python3 "$here/drive.py" converge --request-log "$requests" --namespace "$ns" \
    --stacks "$stacks" --since "$start" --timeout 1800) || bench_die "the initial converge did not finish (log in $BENCH_OUT)"
kill -0 "$operator_pid" 2>/dev/null || bench_die "skiff run exited (log in $BENCH_OUT/skiff.log)"
bench_log "converged in $converge_s s from the operator's start ($converge_from_first s from its first request); warm-up $warmup s"
sleep "$warmup"

load_changes=$(bench_load)
changes_start=$EPOCHREALTIME
python3 "$here/drive.py" change --kubeconfig "$kubeconfig" --namespace "$ns" --stacks "$stacks" --rate "$rate" \
    --duration "$duration" --out "$BENCH_OUT/changes.csv" || bench_die "the changes failed"
changes_end=$EPOCHREALTIME
load_end=$(bench_load)
bench_log "matching the changes to the operator's writes (waiting up to $grace s for the last ones)"
python3 "$here/drive.py" match --request-log "$requests" --namespace "$ns" --changes "$BENCH_OUT/changes.csv" \
    --grace "$grace" --out "$BENCH_OUT/latency.csv"
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
deployments=$(kubectl --kubeconfig "$kubeconfig" -n "$ns" get deployments -o name 2>/dev/null | wc -l)
stop_operator
kill "$apiserver_pid" 2>/dev/null || true
gzip -c "$requests" >"$BENCH_OUT/requests.log.gz"
cat >"$BENCH_OUT/phases.txt" <<EOF
stacks=$stacks
rate=$rate
duration=$duration
operator_start=$start
changes_start=$changes_start
changes_end=$changes_end
create_s=$create_s
converge_s=$converge_s
converge_from_first_s=$converge_from_first
deployments=$deployments
load_start=$load_start
load_changes=$load_changes
load_end=$load_end
EOF
python3 "$here/drive.py" report --dir "$BENCH_OUT" >"$BENCH_OUT/report.txt"
declare -A r=()
while IFS='=' read -r k v; do r[$k]=$v; done <"$BENCH_OUT/report.txt"
v() { echo "${r[$1]:--}"; }

bench_summary "### P8 $stacks AppDeployments, $rate changes per second for $duration s" "" \
    "\`runtime: kubernetes\` stacks on the test API server (\`bench/kube-apiserver\`), reconciled by \`skiff run --source kubernetes\` holding the Lease skiff-cluster (2 workers); no pods ever run, so every stack's rollout waits and is polled every 10 s. Load average $load_start at the start, $load_changes when the changes began, $(v load_min)–$(v load_max) during them." "" \
    "- initial converge (every stack's Deployment applied once): $converge_s s from the operator's start; $stacks AppDeployments created in $create_s s before it" \
    "- queue \`appdeployment-cluster\` during the changes: depth max $(v depth_max), p99 $(v depth_p99), median $(v depth_p50), final $(v depth_final) (mean $(v depth_first_third_mean) in the first third, $(v depth_last_third_mean) in the last); max $(v depth_max_converge) while converging" \
    "- reconciles $(v reconciles_per_s)/s (mean $(v reconcile_mean_ms) ms each; the 2 workers busy $(v workers_busy) of the time), queue adds $(v adds_per_s)/s; CPU: operator $(v operator_cpu_cores) cores, API server $(v apiserver_cpu_cores), machine $(v machine_busy_pct) % busy; operator RSS max $(v rss_max_mib) MiB" "" \
    "| change → operator's write | n | over 1 s | never | min ms | p50 ms | p90 ms | p99 ms | max ms |" "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in acted applied first; do
    case $c in
        acted) label="status write beginning the revision (acted on)" ;;
        applied) label="Deployment applied with the new template" ;;
        first) label="first write naming the stack (any)" ;;
    esac
    bench_summary "| $label | $(v ${c}_n) | $(v ${c}_over_1s) | $(v ${c}_missed) | $(v ${c}_min) | $(v ${c}_p50) | $(v ${c}_p90) | $(v ${c}_p99) | $(v ${c}_max) |"
done
verdict=$(awk -v a="$(v acted_over_1s)" -v m="$(v acted_missed)" 'BEGIN { print (a == "-" || m == "-") ? "not measured" : ((a + m == 0) ? "met" : "missed") }')
bench_summary "" "- **P8** (every change acted on within 1 s, queue bounded; $stacks stacks, $(v changes) changes$([[ $stacks -lt 1000 || $duration -lt 300 ]] && echo ', --quick or reduced')): $(v acted_over_1s) of $(v changes) changes acted on later than 1 s and $(v acted_missed) never (p99 $(v acted_p99) ms, max $(v acted_max) ms): **$verdict**; queue depth max $(v depth_max) of $stacks keys, final $(v depth_final)."
echo "summary: P8 acted p50 $(v acted_p50) ms p99 $(v acted_p99) ms max $(v acted_max) ms; over 1 s $(v acted_over_1s), never $(v acted_missed); depth max $(v depth_max) final $(v depth_final); converge $converge_s s"
