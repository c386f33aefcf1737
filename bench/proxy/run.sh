#!/usr/bin/env bash
# Proxy benchmark: latency and throughput of the test app through `skiff proxy` against the app
# directly and against a peer proxy, in the production topology: the app in a container on a user-defined
# bridge network, the proxy on the host network (a host process here, as `docker run --network host` would
# run it, with the environment the operator gives the proxy container) forwarding 127.0.0.1:PORT to the
# container's IP. "direct" is the container's IP from the host, no hop; "nginx" is Debian's nginx doing the
# same job as skiff proxy (keep-alive upstream connections, X-Forwarded-For/-Proto/-Host/-Port, no buffering,
# no access log, one worker per core): what any reverse proxy costs on this machine.
#
# Two measurements per target, each after a warm-up, taking the targets in turn for ROUNDS rounds:
#   paced   about RATE requests/s (CONNECTIONS connections, each waiting CONNECTIONS*1000/RATE ms before
#           every request: bench/proxy/pace.lua), p50/p90/p99 latency and the rate reached;
#   max     as fast as it goes (MAX_CONNECTIONS connections), requests/s and p50/p99.
# The machine is shared by wrk, the proxy and the app: on a small VPS the max figures are what the three
# manage together, not the proxy alone.
#
# Usage:   sudo bench/proxy/run.sh
# Env:     DURATION         seconds per measurement (default 10)
#          RATE             target requests/s of the paced run (default 1000)
#          CONNECTIONS      connections of the paced run (default 20)
#          MAX_CONNECTIONS  connections of the max run (default 32)
#          ROUNDS           rounds (default 6; the summary takes medians over rounds: the tail moves between runs)
#          SKIFF_DLL        skiff to run (default operator/bin/Release/net10.0/skiff.dll, built if missing), or an
#                           executable of its own (a NativeAOT publish's skiff, as the Dockerfile's image ships it)
#          RESULTS_DIR      where the report goes (default bench/proxy/results)
#          CLIENT_CPUS      pin wrk to these CPUs (taskset list, e.g. 0), and
#          SERVER_CPUS      the app container and the proxy to these (e.g. 1): the load generator then stands
#                           in for clients on other machines instead of taking the server's cores (default: unpinned)
# Output:  a table and its summary (summary.py) on stdout and in RESULTS_DIR/<stamp>.txt, with the raw wrk
#          output beside it.
# Needs:   root (or the docker group), Docker, the skiff-test/app:1 image (scripts/build-test-images.sh),
#          the .NET 10 SDK, curl, python3, wrk and nginx (both installed from Debian when missing and run as root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
duration=${DURATION:-10}
rate=${RATE:-1000}
connections=${CONNECTIONS:-20}
max_connections=${MAX_CONNECTIONS:-32}
rounds=${ROUNDS:-6}
skiff_dll=${SKIFF_DLL:-$repo/operator/bin/Release/net10.0/skiff.dll}
results=${RESULTS_DIR:-$here/results}
image=skiff-test/app:1

die() { echo "run.sh: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is missing (scripts/ensure-docker.sh)"
command -v curl >/dev/null || die "curl is missing: apt-get install curl"
need_package() { # COMMAND PACKAGE
    command -v "$1" >/dev/null || [[ -x /usr/sbin/$1 ]] && return 0
    [[ $(id -u) == 0 ]] || die "$1 is missing: apt-get install $2"
    apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$2" >/dev/null; } || die "cannot install $2"
}
need_package wrk wrk
need_package nginx nginx-light
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
docker image inspect "$image" >/dev/null 2>&1 || die "$image is missing: scripts/build-test-images.sh"
if [[ ! -f "$skiff_dll" ]]; then
    dotnet build "$repo/operator/Skiff.csproj" -c Release --nologo -v quiet >/dev/null || die "building skiff failed"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$results"
raw="$results/$stamp-wrk.txt"
report="$results/$stamp.txt"
name="skiff-bench-proxy-$$"
work=$(mktemp -d)
proxy_pid=""
cleanup() {
    [[ -n "$proxy_pid" ]] && kill -TERM "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null || true
    [[ -f "$work/nginx.pid" ]] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker network rm "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

docker network create "$name" >/dev/null
client_cpus=${CLIENT_CPUS:-}
server_cpus=${SERVER_CPUS:-}
client=(); server=(); app_cpus=()
[[ -z "$client_cpus" ]] || client=(taskset -c "$client_cpus")
[[ -z "$server_cpus" ]] || { server=(taskset -c "$server_cpus"); app_cpus=(--cpuset-cpus "$server_cpus"); }
docker run -d --name "$name" --network "$name" --init "${app_cpus[@]}" "$image" >/dev/null
ip=$(docker inspect -f "{{ (index .NetworkSettings.Networks \"$name\").IPAddress }}" "$name")
direct="http://$ip:8080/"
port=$(free_port)
proxied="http://127.0.0.1:$port/"
printf '{"version": 1, "listeners": [{"address": "127.0.0.1:%s", "protocol": "http", "stack": "bench/app", "port": "http", "revision": 1, "upstream": "%s:8080"}]}\n' \
    "$port" "$ip" > "$work/routes.json"
# The environment NodeProxy.Spec gives the proxy container: tiered compilation and dynamic PGO back on (Skiff's
# runtimeconfig turns PGO off for its short-lived commands).
skiff_cmd=(dotnet "$skiff_dll")
[[ $skiff_dll == *.dll ]] || skiff_cmd=("$skiff_dll")
DOTNET_TieredCompilation=1 DOTNET_TieredPGO=1 "${server[@]}" "${skiff_cmd[@]}" proxy --routes "$work/routes.json" --metrics-bind-address 127.0.0.1:0 --log-level warning 2>"$results/$stamp-proxy.log" &
proxy_pid=$!
nginx_port=$(free_port)
peer="http://127.0.0.1:$nginx_port/"
cat > "$work/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx.pid;
error_log $results/$stamp-nginx.log;
events { worker_connections 1024; }
http {
    access_log off;
    upstream app { server $ip:8080; keepalive 64; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Forwarded-Port \$server_port;
            proxy_buffering off;
        }
    }
}
EOF
"${server[@]}" "$nginx_bin" -c "$work/nginx.conf"

wait_ok() {
    for _ in $(seq 1 300); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" == 200 ]] && return 0
        sleep 0.1
    done
    die "$1 does not answer 200"
}
wait_ok "$direct"
wait_ok "$proxied"
wait_ok "$peer"

# wrk's latency figures ("812.00us", "1.23ms", "2.01s") in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# measure LABEL URL CONNECTIONS DELAY_MS: one wrk run; prints "p50 p90 p99 rps errors". The paced run uses one
# wrk thread (plenty for 1,000 requests/s; a second would only take CPU from the app and the proxy), the max run two.
measure() {
    local label="$1" url="$2" conns="$3" delay="$4" out threads=2
    [[ $delay == 0 ]] || threads=1
    out=$(WRK_DELAY_MS="$delay" "${client[@]}" wrk -t"$threads" -c"$conns" -d"${duration}s" --latency -s "$here/pace.lua" "$url")
    { echo "== $label ($url, $conns connections, ${delay} ms pacing)"; echo "$out"; } >> "$raw"
    local p50 p90 p99 rps errors
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p90=$(to_ms "$(awk '$1 == "90%" { print $2 }' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ { e = e $0 "; " } END { print (e == "" ? "none" : e) }' <<<"$out")
    echo "$p50 $p90 $p99 $rps $errors"
}

delay=$((connections * 1000 / rate))
targets=(direct proxied peer)
label() { [[ $1 == peer ]] && echo nginx || echo "$1"; }
for target in "${targets[@]}"; do   # warm-up: connection pools, and the JIT's tiers (about 15 s of load on 2 cores)
    WRK_DELAY_MS=0 "${client[@]}" wrk -t2 -c"$connections" -d15s "${!target}" >/dev/null
done

{
    echo "skiff proxy benchmark $stamp on $(nproc) cores, $(uname -r); ${duration} s per run, $rounds rounds"
    echo "app: $image in a container on a bridge; proxy: skiff proxy on the host network (127.0.0.1:$port -> $ip:8080); peer: $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //'), $(nproc) workers (127.0.0.1:$nginx_port)"
    echo "cpus: wrk ${client_cpus:-any}, app and proxy ${server_cpus:-any}"
    printf '%-7s %-8s %-6s %9s %9s %9s %9s  %s\n' round target run p50_ms p90_ms p99_ms req_s errors
} | tee "$report"
for round in $(seq 1 "$rounds"); do
    for target in "${targets[@]}"; do
        read -r p50 p90 p99 rps errors < <(measure "round $round $(label "$target") paced" "${!target}" "$connections" "$delay")
        printf '%-7s %-8s %-6s %9s %9s %9s %9s  %s\n' "$round" "$(label "$target")" paced "$p50" "$p90" "$p99" "$rps" "$errors" | tee -a "$report"
    done
done
for round in $(seq 1 "$rounds"); do   # the max runs after all the paced ones
    for target in "${targets[@]}"; do
        read -r p50 p90 p99 rps errors < <(measure "round $round $(label "$target") max" "${!target}" "$max_connections" 0)
        printf '%-7s %-8s %-6s %9s %9s %9s %9s  %s\n' "$round" "$(label "$target")" max "$p50" "$p90" "$p99" "$rps" "$errors" | tee -a "$report"
    done
done
python3 "$here/summary.py" < "$report" > "$work/summary.txt"
tee -a "$report" < "$work/summary.txt"
echo "raw wrk output: $raw" | tee -a "$report"
