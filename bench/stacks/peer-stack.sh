#!/usr/bin/env bash
# The docker CLI peer of bench/stacks: creates one stack's containers as Skiff does (a bridge network with its own
# /27, the cache first and healthy, then the app, health-checked over the network like Skiff's probe).
#   peer-stack.sh PREFIX INDEX WITH_CACHE     (names PREFIX-sNNN, label dev.skiff.bench=PREFIX)
set -euo pipefail
prefix=$1 i=$2 cache=$3
name=$(printf '%s-s%03d' "$prefix" "$i")
label=dev.skiff.bench=$prefix
subnet="10.241.$((i * 32 / 256)).$((i * 32 % 256))/27"
common=(--label "$label" --network "$name" --init --restart unless-stopped --security-opt no-new-privileges
    --log-opt max-size=10m --log-opt max-file=3)
docker network create --label "$label" --subnet "$subnet" "$name" >/dev/null
if [[ $cache == 1 ]]; then
    docker run -d --name "$name-cache" --network-alias cache "${common[@]}" --memory 48m \
        --health-cmd 'redis-cli ping' --health-interval 1s --health-timeout 5s --health-retries 5 --health-start-period 30s \
        skiff-test/redis:7 redis-server --protected-mode no --maxmemory 16777216 >/dev/null
    until [[ $(docker inspect -f '{{.State.Health.Status}}' "$name-cache") == healthy ]]; do sleep 0.1; done
fi
docker run -d --name "$name-app" "${common[@]}" --memory 32m --cpus 0.25 \
    skiff-test/busybox:latest busybox httpd -f -p 8080 -h /etc >/dev/null
ip=$(docker inspect -f "{{ (index .NetworkSettings.Networks \"$name\").IPAddress }}" "$name-app")
until [[ $(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://$ip:8080/hostname" || true) == 200 ]]; do sleep 0.1; done
