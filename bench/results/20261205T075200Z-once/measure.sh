#!/usr/bin/env bash
cd /tmp/jitm
declare -A cmd=(
  [1-before]="/tmp/skiff-composite-before/skiff"
  [2-docker-client]="/tmp/skiff-composite-dde/skiff"
  [3-plus-stj]="/tmp/skiff-composite-stj/skiff"
  [4-before-plain]="dotnet /tmp/wt-before/operator/bin/Release/net10.0/skiff.dll"
  [5-docker-client-plain]="dotnet /work/main/operator/bin/Release/net10.0/skiff.dll"
  [6-plus-stj-plain]="dotnet /tmp/wt-dde/operator/bin/Release/net10.0/skiff.dll"
)
order=(1-before 2-docker-client 3-plus-stj 4-before-plain 5-docker-client-plain 6-plus-stj-plain)
for round in $(seq 1 ${ROUNDS:-10}); do
  for label in "${order[@]}"; do
    /usr/bin/time -f "$label %e %U %S" -o /tmp/jitm/t.txt ${cmd[$label]} run --path res --node local --once --state-dir state \
      --metrics-bind-address 0 --health-probe-bind-address 0 --log-level warning >/dev/null 2>&1 || echo "$label failed"
    echo "$round $(cat /tmp/jitm/t.txt) $(cut -d' ' -f1 /proc/loadavg)"
  done
  order=("${order[@]:1}" "${order[0]}")
done
