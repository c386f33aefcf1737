#!/usr/bin/env bash
# Installs what a fresh Debian 12 + .NET 10 SDK machine lacks to build the test images and run
# Skiff's tests: Docker, docker-compose, the host binaries the images are packed from, and a
# registry with basic auth (docker-registry, htpasswd) for the private-registry pull tests.
# Runs apt-get update only when something is missing. Idempotent; installing needs root.
set -euo pipefail

packages=(docker.io docker-compose postgresql-15 redis-server busybox-static iproute2 docker-registry apache2-utils)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "install-deps: nothing to install"
    exit 0
fi
if [[ $(id -u) != 0 ]]; then
    echo "install-deps: missing packages ${missing[*]}; run as root (sudo) to install them" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep package scripts from starting host services (PostgreSQL, Redis, dockerd): only the
# binaries are needed, and ensure-docker.sh starts dockerd itself.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
