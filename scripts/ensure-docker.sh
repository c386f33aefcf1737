#!/usr/bin/env bash
# Makes sure a Docker engine answers on this host: installs Debian's docker.io when dockerd is
# missing, starts dockerd in the background when `docker info` fails (there may be no systemd,
# e.g. in a container or a CI sandbox), and waits until it answers. Idempotent; needs root to
# install or start anything.
#
#   scripts/ensure-docker.sh [--started-pidfile FILE]
#
# --started-pidfile FILE: when this call starts dockerd, write its pid to FILE (and leave FILE
# alone otherwise), so that the caller can stop what it started and only that (scripts/test.sh).
#
# Env: SKIFF_DOCKERD_LOG (default /var/log/skiff-dockerd.log), SKIFF_DOCKER_WAIT (seconds, default 60)
set -euo pipefail

log="${SKIFF_DOCKERD_LOG:-/var/log/skiff-dockerd.log}"
wait_s="${SKIFF_DOCKER_WAIT:-60}"
started_pidfile=""
while (($# > 0)); do
    case "$1" in
        --started-pidfile) started_pidfile="${2:?--started-pidfile needs a file}"; shift 2 ;;
        *) echo "usage: $0 [--started-pidfile FILE]" >&2; exit 2 ;;
    esac
done

say() { echo "ensure-docker: $*"; }
die() { echo "ensure-docker: $*" >&2; exit 1; }

if docker info >/dev/null 2>&1; then
    say "Docker engine answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
fi

if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    [[ $(id -u) == 0 ]] || die "Docker is not installed; run as root (sudo) to install docker.io"
    say "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

# Someone (systemd, a previous run) may be starting it already: only start one when none runs.
# (dockerd writes its pid file early; pgrep is not on a minimal Debian.)
pidfile=/var/run/docker.pid
started=""
if ! { [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
    [[ $(id -u) == 0 ]] || die "the Docker engine is not running; run as root (sudo) to start dockerd"
    say "starting dockerd (log: $log)"
    mkdir -p "$(dirname "$log")"
    setsid dockerd >>"$log" 2>&1 </dev/null &
    started=$!
fi

for ((i = 0; i < wait_s * 2; i++)); do
    if docker info >/dev/null 2>&1; then
        say "Docker engine answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
        # dockerd's own pid file names the daemon (setsid may have forked once more).
        if [[ -n $started && -n $started_pidfile ]]; then cat "$pidfile" > "$started_pidfile"; fi
        exit 0
    fi
    sleep 0.5
done
tail -n 20 "$log" >&2 2>/dev/null || true
die "the Docker engine did not answer within ${wait_s} s (see $log)"
