#!/usr/bin/env bash
# Rollout benchmark: `skiff run --once` against `docker-compose up -d` on the same images.
#
# Two scenarios, each timed from the command's start until the app answers healthy:
#   cold    from nothing (no container, network or volume) to app+PostgreSQL+Redis with a
#           migration, app healthy;
#   change  app image skiff-test/app:1 -> :2 with the migration run again, until the new image
#           serves (skiff: `--once` exits, i.e. the new revision is healthy and the old one removed;
#           compose: `up -d` then GET /healthz = 200 and GET / says version "2", polled every 100 ms).
# Each round runs both tools, alternating which goes first, and tears everything down in between.
#
# Usage:   sudo bench/compose/run.sh            (from anywhere; ROUNDS=5 by default)
#          bench/compose/run.sh --summary results/*.csv   (summary of earlier runs, pooled)
# Env:     ROUNDS            rounds (default 5)
#          SKIFF_DLL         skiff to run (default operator/bin/Release/net10.0/skiff.dll, built if missing)
#          SKIFF_BIN         a skiff executable to run instead (a self-contained or composite publish's `skiff`)
#          SKIFF_LOG_LEVEL   skiff's --log-level (default warning; `information` logs every step)
#          SKIFF_LOG_FORMAT  skiff's --log-format (default auto; `json` gives millisecond timestamps)
#          RESULTS_DIR       where the CSV and logs go (default bench/compose/results)
#          POLL_TIMEOUT      seconds to wait for the compose app to answer (default 120)
# Output:  RESULTS_DIR/<stamp>.csv (round,tool,scenario,position,seconds), RESULTS_DIR/<stamp>-logs/
#          (each command's output and the engine's events), and a summary on stdout.
# Needs:   root (or the docker group), Docker, docker-compose >= 1.29.0, the .NET 10 SDK, curl,
#          and the skiff-test images (scripts/build-test-images.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
rounds=${ROUNDS:-5}
skiff_dll=${SKIFF_DLL:-$repo/operator/bin/Release/net10.0/skiff.dll}
if [[ -n ${SKIFF_BIN:-} ]]; then skiff_cmd=("$SKIFF_BIN"); else skiff_cmd=(dotnet "$skiff_dll"); fi
log_level=${SKIFF_LOG_LEVEL:-warning}
log_format=${SKIFF_LOG_FORMAT:-auto}
results=${RESULTS_DIR:-$here/results}
poll_timeout=${POLL_TIMEOUT:-120}
image_old=skiff-test/app:1
image_new=skiff-test/app:2

die() { echo "run.sh: $*" >&2; exit 1; }

# Summary: median, min, max per tool and scenario; ratio skiff/compose of the medians; then the
# median of each phase (see phases()).
summarize() { # CSV...
    awk -F, '
        FNR == 1 { for (c = 5; c <= NF; c++) col[c] = $c; ncol = NF; next }
        { key = $2 "," $3; n[key]++; for (c = 5; c <= ncol; c++) if ($c != "") { m[key, c]++; v[key, c, m[key, c]] = $c + 0 }
          if ($7 != "") { m[key, 100]++; v[key, 100, m[key, 100]] = $5 - $7 } }
        function median(key, c,   i, j, t, k, a) {
            k = m[key, c]; if (!k) return ""
            for (i = 1; i <= k; i++) a[i] = v[key, c, i]
            for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            lo = a[1]; hi = a[k]
            return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
        }
        END {
            split("cold change", scenarios, " "); split("skiff compose", tools, " ")
            printf "%-8s %-8s %3s %8s %8s %8s %8s\n", "scenario", "tool", "n", "median", "min", "max", "spread"
            for (s = 1; s <= 2; s++) {
                for (t = 1; t <= 2; t++) {
                    key = tools[t] "," scenarios[s]
                    if (!(key in n)) continue
                    med[key] = median(key, 5)
                    printf "%-8s %-8s %3d %7.2fs %7.2fs %7.2fs %7.2fs\n", scenarios[s], tools[t], n[key], med[key], lo, hi, hi - lo
                }
                if (med["compose," scenarios[s]] > 0)
                    printf "%-8s skiff/compose (medians) = %.2fx\n", scenarios[s], med["skiff," scenarios[s]] / med["compose," scenarios[s]]
            }
            a = median("skiff,cold", 100); b = median("compose,cold", 100)
            if (a != "" && b > 0)
                printf "cold     without PostgreSQL init (seconds - db_start_to_healthy): skiff %.2fs, compose %.2fs, ratio %.2fx\n", a, b, a / b
            printf "\nmedian seconds per phase (from the engine events; see run.sh)\n%-20s", "phase"
            for (s = 1; s <= 2; s++) for (t = 1; t <= 2; t++) printf " %14s", scenarios[s] "/" tools[t]
            printf "\n"
            for (c = 6; c <= ncol; c++) {
                printf "%-20s", col[c] == "load1" ? "(load average)" : col[c]
                for (s = 1; s <= 2; s++) for (t = 1; t <= 2; t++) { x = median(tools[t] "," scenarios[s], c); printf " %14s", x == "" ? "-" : sprintf("%.2f", x) }
                printf "\n"
            }
        }' "$@"
}

if [[ ${1:-} == --summary ]]; then
    shift
    (($# > 0)) || die "usage: run.sh --summary RESULTS.csv..."
    summarize "$@"
    exit 0
fi

[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$rounds'"
for tool in docker docker-compose dotnet curl awk; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (scripts/ensure-docker.sh starts it)"
for image in skiff-test/postgres:15 skiff-test/redis:7 "$image_old" "$image_new"; do
    docker image inspect "$image" >/dev/null 2>&1 || die "image $image is missing: run scripts/build-test-images.sh"
done
compose_version=$(docker-compose version --short)
# service_completed_successfully appeared in docker-compose 1.29.0 (Compose Specification format).
if [[ $(printf '%s\n1.29.0\n' "$compose_version" | sort -V | head -1) != 1.29.0 ]]; then
    die "docker-compose $compose_version lacks depends_on condition service_completed_successfully (needs >= 1.29.0)"
fi
if [[ -z ${SKIFF_BIN:-} && ! -f $skiff_dll ]]; then
    echo "building skiff (dotnet build operator -c Release)..."
    (cd "$repo" && dotnet build operator -c Release -nologo -v quiet) >/dev/null
fi

# Unique names on a shared engine; only what carries them is ever removed.
suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
ns=bench-$suffix
project=skiffbench$suffix
work=$(mktemp -d /tmp/skiff-bench.XXXXXX)
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p "$results"
csv=$results/$stamp.csv
logs=$results/$stamp-logs
mkdir -p "$logs"
phase_columns="startup,db_start_to_healthy,data_ready,to_migrate,migration,to_app_start,to_ready"
echo "round,tool,scenario,position,seconds,$phase_columns,load1" >"$csv"

skiff_teardown() {
    local filter=label=dev.skiff.app=$ns/api ids
    ids=$( { docker ps -aq --filter "$filter"; docker ps -aq --filter "name=^skiff_${ns}_"; } | sort -u)
    [[ -z $ids ]] || docker rm -f $ids >/dev/null
    ids=$( { docker network ls -q --filter "$filter"; docker network ls -q --filter "name=^skiff_${ns}_"; } | sort -u)
    [[ -z $ids ]] || docker network rm $ids >/dev/null
    ids=$( { docker volume ls -q --filter "$filter"; docker volume ls -q --filter "name=^skiff_${ns}_"; } | sort -u)
    [[ -z $ids ]] || docker volume rm $ids >/dev/null
    rm -rf "$work/skiff"
}

compose_teardown() {
    if [[ -f $work/compose/docker-compose.yml ]]; then
        (cd "$work/compose" && docker-compose -p "$project" down -v --remove-orphans -t 10) >>"$logs/compose-down.log" 2>&1 || true
    fi
    # Belt and braces: anything still carrying the project label.
    local ids
    ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
    [[ -z $ids ]] || docker rm -f $ids >/dev/null
    ids=$(docker network ls -q --filter "label=com.docker.compose.project=$project")
    [[ -z $ids ]] || docker network rm $ids >/dev/null
    ids=$(docker volume ls -q --filter "label=com.docker.compose.project=$project")
    [[ -z $ids ]] || docker volume rm $ids >/dev/null
    rm -rf "$work/compose"
}

events_pid=
load1=
cleanup() {
    local rc=$?
    [[ -z $events_pid ]] || kill "$events_pid" 2>/dev/null || true
    skiff_teardown 2>/dev/null || true
    compose_teardown 2>/dev/null || true
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The engine's own record (container create/start/health_status/die with nanosecond times) for
# reading where the time goes afterwards: grep it for skiff_$ns or $project.
docker events --filter type=container --format '{{.TimeNano}}|{{.Action}}|{{.Actor.Attributes.name}}' >"$logs/docker-events.log" 2>&1 &
events_pid=$!

elapsed() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.3f", e - s }'; }

# Where the time went, from the engine's events between the command's start and end:
#   startup              command start -> first container created (cold) / migration container created (change)
#   db_start_to_healthy  PostgreSQL container started -> its HEALTHCHECK says healthy (initdb + start; the engine's doing)
#   data_ready           first container created -> PostgreSQL healthy
#   to_migrate           PostgreSQL healthy -> migration container created (the tool noticing)
#   migration            migration container created -> exited
#   to_app_start         migration exited -> new app container started
#   to_ready             new app container started -> end (skiff: --once exits; compose: our poll saw 200 + version)
phases() { # tool scenario start end
    local db cache migrate app
    if [[ $1 == skiff ]]; then
        db=skiff_${ns}_api_database cache=skiff_${ns}_api_cache
        migrate="^skiff_${ns}_api_migrate_r[0-9]+\$" app="^skiff_${ns}_api_app_r[0-9]+\$"
    else
        db=${project}_db_1 cache=${project}_redis_1 migrate="^${project}_migrate_1\$" app="^${project}_app_1\$"
    fi
    sleep 0.2 # let `docker events` write the last lines
    awk -F'|' -v s="$3" -v e="$4" -v scenario="$2" -v db="$db" -v cache="$cache" -v mig="$migrate" -v app="$app" '
        { t = $1 / 1e9; if (t < s || t > e) next }
        ($3 == db || $3 == cache || $3 ~ mig) && $2 == "create" && !first { first = t }
        $3 == db && $2 == "start" { dbs = t }
        $3 == db && $2 == "health_status: healthy" && !dbh { dbh = t }
        $3 ~ mig && $2 == "create" { mc = t }
        $3 ~ mig && $2 == "die" { md = t }
        $3 ~ app && $2 == "start" { as = t }
        function d(a, b) { return (a && b) ? sprintf("%.3f", b - a) : "" }
        END {
            if (scenario == "cold") print d(s, first) "," d(dbs, dbh) "," d(first, dbh) "," d(dbh, mc) "," d(mc, md) "," d(md, as) "," d(as, e)
            else print d(s, mc) ",,," "," d(mc, md) "," d(md, as) "," d(as, e)
        }' "$logs/docker-events.log"
}

record() { # round tool scenario position start end
    local seconds
    seconds=$(elapsed "$5" "$6")
    echo "$1,$2,$3,$4,$seconds,$(phases "$2" "$3" "$5" "$6"),$load1" >>"$csv"
    printf '  round %s  %-7s %-6s %7ss\n' "$1" "$2" "$3" "$seconds"
}

# Checks, outside the timing, that the app really serves the expected version.
served_version() { curl -s -m 2 "http://$1:8080/" | sed -n 's/.*"version":"\([^"]*\)".*/\1/p'; }

container_ip() {
    docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1" 2>/dev/null || true
}

skiff_render() { # image
    mkdir -p "$work/skiff/resources" "$work/skiff/state"
    sed -e "s/@NAMESPACE@/$ns/" -e "s#@APP_IMAGE@#$1#" "$here/stack.yaml.tmpl" >"$work/skiff/resources/api.yaml"
}

skiff_once() { # round scenario position expected-version
    local round=$1 scenario=$2 position=$3 want=$4 start end rc=0 ids
    load1=$(cut -d' ' -f1 /proc/loadavg)
    start=$EPOCHREALTIME
    "${skiff_cmd[@]}" run --path "$work/skiff/resources" --node local --once --state-dir "$work/skiff/state" \
        --metrics-bind-address 0 --health-probe-bind-address 0 --log-level "$log_level" --log-format "$log_format" \
        >"$logs/r$round-skiff-$scenario.log" 2>&1 || rc=$?
    end=$EPOCHREALTIME
    echo "# command start $start end $end (epoch seconds)" >>"$logs/r$round-skiff-$scenario.log"
    [[ $rc == 0 ]] || { cat "$logs/r$round-skiff-$scenario.log" >&2; die "skiff run --once exited $rc (round $round, $scenario)"; }
    ids=$(docker ps -q --filter "label=dev.skiff.app=$ns/api" --filter label=dev.skiff.component=app)
    [[ $(wc -w <<<"$ids") == 1 ]] || die "skiff: expected exactly one app container after $scenario, found: $ids"
    [[ $(served_version "$(container_ip "$ids")") == "$want" ]] || die "skiff: the app does not serve version $want after $scenario"
    record "$round" skiff "$scenario" "$position" "$start" "$end"
}

compose_render() { # image
    mkdir -p "$work/compose"
    sed -e "s#@APP_IMAGE@#$1#" "$here/compose.yaml.tmpl" >"$work/compose/docker-compose.yml"
}

compose_up() { # round scenario position expected-version
    local round=$1 scenario=$2 position=$3 want=$4 start end rc=0 id ip deadline
    load1=$(cut -d' ' -f1 /proc/loadavg)
    start=$EPOCHREALTIME
    (cd "$work/compose" && docker-compose -p "$project" up -d) >"$logs/r$round-compose-$scenario.log" 2>&1 || rc=$?
    [[ $rc == 0 ]] || { cat "$logs/r$round-compose-$scenario.log" >&2; die "docker-compose up -d exited $rc (round $round, $scenario)"; }
    deadline=$(( ${start%.*} + poll_timeout ))
    while true; do
        id=$(docker ps -q --filter "label=com.docker.compose.project=$project" --filter label=com.docker.compose.service=app | head -1)
        ip=
        [[ -z $id ]] || ip=$(container_ip "$id")
        if [[ -n $ip ]] \
            && [[ $(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://$ip:8080/healthz" || true) == 200 ]] \
            && [[ $(served_version "$ip") == "$want" ]]; then
            break
        fi
        (( ${EPOCHREALTIME%.*} < deadline )) || die "compose: the app did not answer healthy with version $want within ${poll_timeout}s (round $round, $scenario)"
        sleep 0.1
    done
    end=$EPOCHREALTIME
    echo "# command start $start end $end (epoch seconds)" >>"$logs/r$round-compose-$scenario.log"
    record "$round" compose "$scenario" "$position" "$start" "$end"
}

run_skiff() { # round position
    skiff_teardown
    skiff_render "$image_old"
    skiff_once "$1" cold "$2" 1
    skiff_render "$image_new"
    skiff_once "$1" change "$2" 2
    skiff_teardown
}

run_compose() { # round position
    compose_teardown
    compose_render "$image_old"
    compose_up "$1" cold "$2" 1
    compose_render "$image_new"
    compose_up "$1" change "$2" 2
    compose_teardown
}

echo "skiff rollout benchmark: $rounds rounds, skiff namespace $ns, compose project $project"
echo "  $(nproc) cores, Docker $(docker version --format '{{.Server.Version}}'), docker-compose $compose_version, .NET $(dotnet --version)"
bench_start=$EPOCHREALTIME
for ((round = 1; round <= rounds; round++)); do
    if ((round % 2 == 1)); then
        run_skiff "$round" first
        run_compose "$round" second
    else
        run_compose "$round" first
        run_skiff "$round" second
    fi
done
echo "total $(elapsed "$bench_start" "$EPOCHREALTIME")s; raw timings in $csv"
echo

summarize "$csv"
