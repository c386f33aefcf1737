#!/usr/bin/env bash
# Image GC versus `docker image prune -a -f` on identical sets of unused images, in one run.
#
# SAFETY: `docker image prune -a -f` deletes EVERY unused image of the engine it talks to, and the
# shared engine holds the skiff-test/* images other tests need. So both sides run against a
# throwaway dockerd started here (own network namespace, --data-root, --exec-root, socket and
# containerd namespace, no bridge, no iptables),
# never against $DOCKER_HOST or /var/run/docker.sock. Needs root (dockerd).
#
# Each round: create N tagged images (distinct ids: each imports a tarball with its own file),
# then remove all of them with one side; the side order rotates, the images are recreated in between.
# Sides: `skiff gc` from `dotnet build` (JIT), `skiff gc` published ReadyToRun (as the operator image
# ships it), and `docker image prune -a -f`. For skiff, the pass's own time (list, plan, remove,
# measure: what a running `skiff run` spends on a pass, without process start-up) comes from its
# JSON output (`seconds`).
#
# Usage: bench/gc-vs-prune/run.sh [IMAGES=200] [ROUNDS=5]
# Prints per-round times, then median, spread (min..max) and the ratios of medians to prune.
set -euo pipefail

images="${1:-200}"
rounds="${2:-5}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/skiff-gcbench.XXXXXX)"
sock="$work/docker.sock"
export DOCKER_HOST="unix://$sock"

cleanup() {
  local pid
  pid="$(cat "$work/dockerd.pid" 2>/dev/null || true)"
  if [[ -n "$pid" ]]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  umount -R "$work/data" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Its own network namespace: with --bridge=none dockerd deletes the interface docker0 of the
# namespace it runs in, which in the host's namespace is the shared engine's default bridge.
unshare --net dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
  --host "$DOCKER_HOST" --bridge=none --iptables=false --ip6tables=false \
  --containerd-namespace skiff-gcbench --containerd-plugins-namespace skiff-gcbench-plugins \
  >"$work/dockerd.log" 2>&1 &
for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
docker info >/dev/null || { cat "$work/dockerd.log"; exit 2; }
[[ "$(docker info --format '{{.DockerRootDir}}')" == "$work/data" ]] || { echo "not the throwaway engine" >&2; exit 2; }

dotnet build "$repo/operator" -c Release -v quiet -nologo >/dev/null
dotnet publish "$repo/operator" -c Release -r linux-x64 --self-contained false -p:UseAppHost=false \
  -p:PublishReadyToRun=true -o "$work/r2r" -v quiet -nologo >/dev/null
skiff_jit=(dotnet "$repo/operator/bin/Release/net10.0/skiff.dll")
skiff_r2r=(dotnet "$work/r2r/skiff.dll")

# A policy that removes every unused image without pressure: nothing kept per repository, no grace period.
cat >"$work/policy.yaml" <<'YAML'
apiVersion: skiff.dev/v1alpha1
kind: ImageGCPolicy
metadata: { name: bench }
spec:
  retainPerRepository: 0
  minimumAge: 0s
YAML

make_images() {
  mkdir -p "$work/tars"
  seq "$images" | xargs -P 4 -I{} sh -c '
    d=$(mktemp -d); echo "image {} $RANDOM$RANDOM" >"$d/file-{}"
    tar -C "$d" -cf - . | docker import --change "LABEL bench=gc" - "bench/img-{}:latest" >/dev/null
    rm -rf "$d"'
  local n; n=$(docker images -q --filter label=bench=gc | wc -l)
  [[ "$n" -eq "$images" ]] || { echo "expected $images images, have $n" >&2; exit 2; }
}

now() { date +%s.%N; }
declare -A times=()
sides=(gc gc-r2r prune)
for round in $(seq "$rounds"); do
  # Rotate which side goes first, so none always meets a warm or cold engine.
  for k in 0 1 2; do
    side=${sides[$(( (round + k) % 3 ))]}
    make_images
    sync
    start=$(now)
    case $side in
      gc|gc-r2r)
        if [[ $side == gc ]]; then cmd=("${skiff_jit[@]}"); else cmd=("${skiff_r2r[@]}"); fi
        "${cmd[@]}" gc --node bench --state-dir "$work/state" --policy "$work/policy.yaml" -o json >"$work/gc.json" 2>"$work/gc.err" \
          || { cat "$work/gc.err"; exit 1; } ;;
      prune)
        docker image prune -a -f >/dev/null ;;
    esac
    t=$(echo "$(now) - $start" | bc -l)
    left=$(docker images -q --filter label=bench=gc | wc -l)
    [[ "$left" -eq 0 ]] || { echo "$side left $left images" >&2; exit 1; }
    if [[ $side == prune ]]; then
      printf 'round %d %-7s %6.3f s\n' "$round" "$side" "$t"
    else
      pass=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$work/gc.json")
      printf 'round %d %-7s %6.3f s (pass %.3f s)\n' "$round" "$side" "$t" "$pass"
      times[pass-$side]+="$pass "
    fi
    times[$side]+="$t "
  done
done

stats() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f %.3f %.3f", m, a[1], a[NR]}'; }
echo "images: $images, rounds: $rounds (dockerd $(docker version --format '{{.Server.Version}}'), $(nproc) cores)"
read -r pm pmin pmax <<<"$(stats ${times[prune]})"
printf '%-44s median %.3f s (min %.3f, max %.3f)\n' "docker image prune -a -f" "$pm" "$pmin" "$pmax"
for key in gc gc-r2r pass-gc pass-gc-r2r; do
  case $key in
    gc) label="skiff gc (JIT), whole command" ;;
    gc-r2r) label="skiff gc (ReadyToRun), whole command" ;;
    pass-gc) label="  its pass alone (JIT)" ;;
    pass-gc-r2r) label="  its pass alone (ReadyToRun)" ;;
  esac
  read -r m mn mx <<<"$(stats ${times[$key]})"
  printf '%-44s median %.3f s (min %.3f, max %.3f)  %.2fx prune\n' "$label" "$m" "$mn" "$mx" "$(echo "$m / $pm" | bc -l)"
done
