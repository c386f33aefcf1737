#!/usr/bin/env bash
# A second Docker engine on this machine, standing in for the second VPS (DESIGN §6): its own
# network namespace (skiff-vps2), socket, data root and exec root, so the two engines never share
# iptables chains, bridges or host ports. A veth pair joins the namespace to the host and nothing
# else: the host end is 10.213.0.1/30, the namespace end 10.213.0.2/30 with its default route via
# the host end; the host does not forward what arrives on its end (and sets up no NAT), so
# traffic goes only between the host and the namespace. The test images are copied from the main engine (docker save | docker load).
#
#   scripts/second-engine.sh up     start it (idempotent; refreshes images that changed)
#   scripts/second-engine.sh down   stop it and remove all of it: dockerd, namespace, veth pair,
#                                   exec root and data root (the log stays); idempotent. Leaves
#                                   it up while a test process uses it (below)
#   scripts/second-engine.sh status exit 0 when it answers
#
# A test process that uses the engine holds a shared flock on /run/lock/skiff-vps2.users for as
# long as it does (SecondEngineFixture); `down` takes that lock exclusively, so the last user takes
# the engine down and a concurrent run never loses it mid-test.
#
# The tests' fixture (tests/Skiff.IntegrationTests/TwoHosts/SecondEngineFixture.cs) runs `up`
# before the two-host tests and `down` after them, and scripts/test.sh runs `down` at the end of
# a run, also an interrupted one, unless SKIFF_TEST_KEEP_ENGINES=1 keeps it for the next run.
#
# Needs root. dockerd runs under `nsenter --net=...`, not `ip netns exec`: the latter remounts
# /sys for the namespace and dockerd then fails with "Devices cgroup isn't mounted".
#
# Env: SKIFF_VPS2_WAIT (seconds to wait for the engine, default 60)
set -euo pipefail
source "$(dirname "$0")/lib/host.sh"

ns=skiff-vps2
host_if=skiff-vps2-h
ns_if=skiff-vps2-n
host_ip=10.213.0.1
ns_ip=10.213.0.2
run=/run/skiff-vps2
sock="$run/docker.sock"
pidfile="$run/docker.pid"
data=/var/lib/skiff-vps2/docker
log=/var/log/skiff-vps2-dockerd.log
users=/run/lock/skiff-vps2.users
wait_s="${SKIFF_VPS2_WAIT:-60}"
images=(skiff-test/postgres:15 skiff-test/redis:7 skiff-test/busybox:latest
        skiff-test/app:1 skiff-test/app:2 skiff-test/app:bad-health skiff-test/app:bad-migrate)

say() { echo "second-engine: $*"; }
die() { echo "second-engine: $*" >&2; exit 1; }
vps2() { docker -H "unix://$sock" "$@"; }
answers() { vps2 info >/dev/null 2>&1; }
pid() { cat "$pidfile" 2>/dev/null; }
# The pid file may outlive dockerd (a reboot keeps /var/lib but not /run; a pid can be reused).
running() { [[ -s $pidfile && "$(cat "/proc/$(pid)/comm" 2>/dev/null)" == dockerd ]]; }
# dockerd runs in the namespace that /var/run/netns/skiff-vps2 names now (not in one deleted by hand).
in_netns() { [[ "$(stat -L -c %i "/proc/$(pid)/ns/net" 2>/dev/null)" == "$(stat -L -c %i "/var/run/netns/$ns" 2>/dev/null)" ]]; }

stop_dockerd() {
    running || return 0
    local p
    p="$(pid)"
    say "stopping dockerd ($p)"
    kill "$p"
    wait_exit "$p" 30 && return 0
    say "dockerd ($p) did not stop within 30 s; killing it"
    kill -KILL "$p" 2>/dev/null || true
    wait_exit "$p" 10 || die "dockerd ($p) survived SIGKILL"
}

netns_up() {
    [[ -e /var/run/netns/$ns ]] || ip netns add "$ns"
    if ! ip -n "$ns" link show "$ns_if" >/dev/null 2>&1; then
        # A host end without its peer in this namespace belongs to a namespace deleted by hand.
        if ip link show "$host_if" >/dev/null 2>&1; then ip link del "$host_if"; fi
        ip link add "$host_if" type veth peer name "$ns_if"
        ip link set "$ns_if" netns "$ns"
    fi
    ip addr replace "$host_ip/30" dev "$host_if"
    ip link set "$host_if" up
    # The host routes nothing that comes from the namespace: it reaches the host and no further.
    echo 0 > "/proc/sys/net/ipv4/conf/$host_if/forwarding"
    ip -n "$ns" addr replace "$ns_ip/30" dev "$ns_if"
    ip -n "$ns" link set "$ns_if" up
    ip -n "$ns" link set lo up
    ip -n "$ns" route replace default via "$host_ip"
}

# Copies each test image the second engine lacks, or holds in an older build (compared by id).
load_images() {
    local want=() image id
    for image in "${images[@]}"; do
        id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)" \
            || die "$image is missing from the main engine: build it with scripts/build-test-images.sh"
        [[ "$(vps2 image inspect -f '{{.Id}}' "$image" 2>/dev/null)" == "$id" ]] || want+=("$image")
    done
    if ((${#want[@]} == 0)); then
        say "test images present"
        return
    fi
    say "loading ${want[*]}"
    docker save "${want[@]}" | vps2 load -q >/dev/null
}

up() {
    [[ $(id -u) == 0 ]] || die "needs root (network namespaces and dockerd)"
    for tool in ip nsenter setsid dockerd docker; do
        command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs iproute2 and docker.io)"
    done
    docker info >/dev/null 2>&1 || die "the main Docker engine does not answer (scripts/ensure-docker.sh)"
    # Two callers at once (parallel test runs) must not race on the links or start two daemons on one data root.
    mkdir -p "$run" "$data" "$run/exec" "$(dirname "$log")"
    exec 9>"$run/up.lock"
    flock 9
    netns_up
    if running && ! in_netns; then
        say "dockerd runs in a namespace that is gone; restarting it"
        stop_dockerd
    fi
    if ! answers; then
        if ! running; then
            say "starting dockerd in netns $ns (log: $log)"
            # Without the test run's marker: test.sh sweeps the run's processes, and this engine
            # outlives the run when SKIFF_TEST_KEEP_ENGINES=1; `down` is what stops it.
            env -u SKIFF_TEST_RUN_ID setsid nsenter --net="/var/run/netns/$ns" \
                dockerd --host "unix://$sock" --data-root "$data" --exec-root "$run/exec" --pidfile "$pidfile" \
                >>"$log" 2>&1 </dev/null 9>&- &
        fi
        for ((i = 0; i < wait_s * 2; i++)); do
            answers && break
            sleep 0.5
        done
        answers || { tail -n 20 "$log" >&2 2>/dev/null || true; die "dockerd in $ns did not answer within ${wait_s} s (see $log)"; }
    fi
    say "engine answers at unix://$sock ($(vps2 version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    load_images
    flock -u 9
}

down() {
    [[ $(id -u) == 0 ]] || die "needs root (network namespaces and dockerd)"
    mkdir -p "$(dirname "$users")"
    exec 8>>"$users"
    if ! flock -n -x 8; then
        say "in use by another test process: left up (its last user takes it down)"
        return 0
    fi
    if [[ -d $run ]]; then
        exec 9>"$run/up.lock"
        flock 9
    fi
    stop_dockerd
    if ip link show "$host_if" >/dev/null 2>&1; then ip link del "$host_if"; fi
    if [[ -e /var/run/netns/$ns ]]; then ip netns del "$ns"; fi
    remove_tree "$run" "$(dirname "$data")"
    say "down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) answers ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
