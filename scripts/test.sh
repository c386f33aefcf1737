#!/usr/bin/env bash
# THE test command: prepares a fresh Debian 12 + .NET 10 SDK machine (as root), starts Docker,
# builds the test images, runs every test project of Operator.sln, and ends with one line:
#   N passed, N failed[, N skipped]
# Exit status: 0 when nothing failed, 1 otherwise (a build failure counts as a failure); 130/143
# when interrupted (SIGINT/SIGTERM), after the same clean-up and a last line that says it failed.
#
# It leaves the machine as it found it, also when a test fails or the run is interrupted: at the
# end it stops every process the tests started (they all carry SKIFF_TEST_RUN_ID=<this run> in
# their environment: test hosts, skiff, docker-registry, throwaway dockerds), removes the
# throwaway engines' namespaces and data roots (skiff-it-*), takes the second engine down
# (scripts/second-engine.sh down: dockerd, namespace skiff-vps2, veth 10.213.0.1/30, data root),
# removes the Docker objects labelled with this run on the main engine, and stops the main
# dockerd if this run started it (a dockerd that was already running is left alone). The test
# images stay in the main engine, as a build cache (scripts/build-test-images.sh).
#
# Env: SKIFF_TEST_KEEP_ENGINES=1 keeps the engines for the next run (a developer's opt-in for
# speed): the second engine, the throwaway engines' namespaces and data roots, and a main dockerd
# this run started. Without it, engines kept by an earlier run are taken down too, unless another
# test process is using them (they hold flocks: scripts/second-engine.sh, ThrowawayEngine.cs).
# SKIFF_TEST_FILTER=EXPR runs only the tests `dotnet test --filter EXPR` selects (CI runs all).
# SKIFF_TEST_SKIFF=PATH runs the tests that start skiff as a process against another build of it: a skiff.dll, or
# an executable of its own (a NativeAOT publish's skiff); by default the ReadyToRun publish in .build/skiff.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
source scripts/lib/host.sh
results="$repo/TestResults/run"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
keep=""
[[ "${SKIFF_TEST_KEEP_ENGINES:-}" != 1 ]] || keep=1
# Given to `dotnet test` alone (not exported here), so it marks exactly the processes of the tests.
run_id="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
run_label=dev.skiff.test.run
notes="$(mktemp -d /tmp/skiff-test-sh.XXXXXX)" # what this run started, for the clean-up

say() { echo "test.sh: $*"; }

# --- Clean-up -------------------------------------------------------------------------------

# Pids of the processes this run's tests started (and their children): the environment marks them.
run_pids() {
    grep -l -z -x -F "SKIFF_TEST_RUN_ID=$run_id" /proc/[0-9]*/environ 2>/dev/null | sed 's#^/proc/\([0-9]*\)/environ$#\1#' || true
}

stop_run_processes() {
    local pids p
    mapfile -t pids < <(run_pids)
    ((${#pids[@]} > 0)) || return 0
    say "stopping ${#pids[@]} processes of this run"
    # SIGTERM to all but containerd and its shims, which their dockerd stops with its containers.
    for p in "${pids[@]}"; do
        case "$(cat "/proc/$p/comm" 2>/dev/null)" in
            containerd*|runc|"") ;;
            *) kill -TERM "$p" 2>/dev/null || true ;;
        esac
    done
    for ((i = 0; i < 90; i++)); do
        [[ -n "$(run_pids)" ]] || return 0
        sleep 0.5
    done
    mapfile -t pids < <(run_pids)
    ((${#pids[@]} > 0)) || return 0
    say "killing what did not stop within 45 s: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 1
}

# The throwaway engines (tests/Skiff.IntegrationTests/DockerTarget/ThrowawayEngine.cs):
# skiff-it-NAME-<run id> of this run, and, without SKIFF_TEST_KEEP_ENGINES=1, the skiff-it-NAME
# an earlier run kept: those have /run/skiff-it-NAME/engine.lock, which a test process holds
# (flock) for as long as it uses the engine, so one in use by another run is left alone.
remove_throwaway_engines() {
    local name names=() lock
    mapfile -t names < <({ ip netns list 2>/dev/null | awk '{ print $1 }'; ls /run /var/lib; } | grep -E '^skiff-it-' | sort -u)
    for name in "${names[@]}"; do
        lock=""
        if [[ $name != *-"$run_id" ]]; then
            [[ -z $keep && $name =~ ^skiff-it-[a-z0-9]+$ && -e /run/$name/engine.lock ]] || continue
            exec {lock}<"/run/$name/engine.lock"
            flock -n "$lock" || { exec {lock}<&-; continue; }
        fi
        say "removing the throwaway engine $name"
        if [[ -e /var/run/netns/$name ]]; then ip netns del "$name" || true; fi
        remove_tree "/run/$name" "/var/lib/$name"
        if [[ -n $lock ]]; then exec {lock}<&-; fi
    done
}

# Containers, networks, volumes and images on the main engine labelled with this run
# (tests/Skiff.IntegrationTests/Infrastructure/DockerFixture.cs: dev.skiff.test.run=<run id>-…).
remove_run_docker_objects() {
    docker info >/dev/null 2>&1 || return 0
    local mine=(awk -v p="$run_id-" 'index($2, p) == 1 { print $1 }') ids
    ids="$(docker ps -a --filter "label=$run_label" --format "{{.ID}} {{.Label \"$run_label\"}}" | "${mine[@]}")"
    if [[ -n $ids ]]; then say "removing containers of this run: $(echo $ids)"; docker rm -f -v $ids >/dev/null || true; fi
    ids="$(docker network ls --filter "label=$run_label" --format "{{.ID}} {{.Label \"$run_label\"}}" | "${mine[@]}")"
    if [[ -n $ids ]]; then say "removing networks of this run"; docker network rm $ids >/dev/null || true; fi
    ids="$(docker volume ls --filter "label=$run_label" --format "{{.Name}} {{.Label \"$run_label\"}}" | "${mine[@]}")"
    if [[ -n $ids ]]; then say "removing volumes of this run"; docker volume rm -f $ids >/dev/null || true; fi
    ids="$(docker image ls -q --filter "label=$run_label" | sort -u)"
    if [[ -n $ids ]]; then
        ids="$(docker image inspect -f "{{.Id}} {{index .Config.Labels \"$run_label\"}}" $ids | "${mine[@]}")"
        if [[ -n $ids ]]; then say "removing images of this run"; docker rmi -f $ids >/dev/null || true; fi
    fi
}

# The main dockerd, only if scripts/ensure-docker.sh started it for this run.
stop_started_dockerd() {
    [[ -s $notes/dockerd.pid ]] || return 0
    local p
    p="$(cat "$notes/dockerd.pid")"
    [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == dockerd ]] || return 0
    if [[ -n $keep ]]; then
        say "leaving the dockerd this run started running ($p; SKIFF_TEST_KEEP_ENGINES=1)"
        return 0
    fi
    say "stopping the dockerd this run started ($p)"
    kill -TERM "$p" 2>/dev/null || true
    wait_exit "$p" 60 || { say "dockerd ($p) did not stop within 60 s; killing it"; kill -KILL "$p" 2>/dev/null || true; wait_exit "$p" 10 || true; }
    # Its bridge, unless it was there before the run.
    if [[ ! -e $notes/docker0-existed ]] && ip link show docker0 >/dev/null 2>&1; then ip link del docker0 || true; fi
}

cleaned=""
clean_up() {
    [[ -z $cleaned ]] || return 0
    cleaned=1
    trap '' INT TERM # a second Ctrl-C must not leave the clean-up half done
    stop_run_processes
    remove_run_docker_objects
    remove_throwaway_engines
    if [[ -z $keep ]]; then
        bash scripts/second-engine.sh down | sed 's/^/test.sh: /' || say "taking the second engine down failed"
    else
        say "keeping the engines (SKIFF_TEST_KEEP_ENGINES=1)"
    fi
    stop_started_dockerd
    rm -rf "$notes"
}

# Ends the run: clean up first, so that the summary is the last line.
finish() {
    clean_up
    echo "$1"
    exit "$2"
}

trap 'say "interrupted (SIGINT): taking down what this run started"; finish "0 passed, 1 failed" 130' INT
trap 'say "interrupted (SIGTERM): taking down what this run started"; finish "0 passed, 1 failed" 143' TERM
trap clean_up EXIT

# Even when the machine cannot be prepared, the last line says something failed.
setup_failed() {
    echo "test.sh: $1 failed" >&2
    finish "0 passed, 1 failed" 1
}

# --- The run --------------------------------------------------------------------------------

# 1. Host packages: Docker, the binaries the test images are packed from, helm.
bash scripts/install-deps.sh || setup_failed "installing packages"

# 2. A Docker engine (noting whether this run started it), and the images the tests run.
if ip link show docker0 >/dev/null 2>&1; then touch "$notes/docker0-existed"; fi
bash scripts/ensure-docker.sh --started-pidfile "$notes/dockerd.pid" || setup_failed "starting Docker"
bash scripts/build-test-images.sh || setup_failed "building the test images"

# 3. Build, then every test project in the solution, with TRX results to count. The tests run in
# the background so that a signal reaches the trap at once, not when dotnet test is done.
dotnet build Operator.sln -c Release || setup_failed "building the solution"
rm -rf "$results"
mkdir -p "$results"
filter=()
[[ -z "${SKIFF_TEST_FILTER:-}" ]] || filter=(--filter "$SKIFF_TEST_FILTER")
say "test run $run_id"
env SKIFF_TEST_RUN_ID="$run_id" SKIFF_TEST_SKIFF_DLL="${SKIFF_TEST_SKIFF:-$repo/.build/skiff/skiff.dll}" dotnet test Operator.sln -c Release --no-build --logger trx --results-directory "$results" \
    --blame-hang --blame-hang-timeout 5m --blame-hang-dump-type none "${filter[@]}" &
status=0
wait $! || status=$?

# 4. Sum the counters of every TRX file (grep/sed/awk only: CI may have no python).
passed=0 failed=0 skipped=0
while IFS= read -r -d '' trx; do
    counters="$(grep -o '<Counters [^>]*>' "$trx" | head -1 || true)"
    [[ -n "$counters" ]] || continue
    get() { local v; v="$(printf '%s' "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p")"; echo "${v:-0}"; }
    passed=$((passed + $(get passed)))
    failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
    # xunit's skipped tests are results with outcome NotExecuted, yet the counters leave
    # notExecuted at 0 and count them only in total (not executed): take the larger.
    not_run=$(($(get total) - $(get executed)))
    ((not_run >= $(get notExecuted))) || not_run=$(get notExecuted)
    skipped=$((skipped + not_run))
done < <(find "$results" -name '*.trx' -print0)

if ((status != 0 && failed == 0)); then
    say "dotnet test exited with $status without a failed test: a test host crashed"
    failed=1
fi
summary="$passed passed, $failed failed"
((skipped == 0)) || summary+=", $skipped skipped"
((failed == 0)) && finish "$summary" 0
finish "$summary" 1
