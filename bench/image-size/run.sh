#!/usr/bin/env bash
# The operator image's size (issue 22, item 4), and where its bytes go, read from `docker export` of a created (never
# started) container: IMAGE, by default skiff-test/skiff:dev as scripts/build-test-images.sh packs it for the tests
# (the host's .NET and ASP.NET Core runtimes plus a ReadyToRun `dotnet publish operator`); bench/run-all.sh gives
# skiff-test/skiff:native, the NativeAOT executable packed as the Dockerfile packs it (build-test-images.sh --native).
# Beside it, for scale, the test app image skiff-test/app:1, packed the same way. The Dockerfile itself needs a
# registry this machine cannot reach (its base images), so it is not built here.
#
# Usage: bench/image-size/run.sh [--quick]   (--quick changes nothing: it takes a few seconds)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bench_init image-size "$@"
image=${IMAGE:-skiff-test/skiff:dev}
bench_check_images "$image"

id=$(docker create --label "dev.skiff.bench=$BENCH_PREFIX" "$image")
bench_on_exit "docker rm -f $id"
# Sizes per top folder of interest, in bytes, from the tar listing.
docker export "$id" | tar -tvf - | awk '
    { size = $3; path = $6
      if (path ~ /^usr\/share\/dotnet\/shared\/Microsoft.NETCore.App\//) k = ".NET runtime"
      else if (path ~ /^usr\/share\/dotnet\/shared\/Microsoft.AspNetCore.App\//) k = "ASP.NET Core runtime"
      else if (path ~ /^usr\/share\/dotnet\//) k = "dotnet host"
      else if (path ~ /^app\//) k = "skiff (publish output)"
      else k = "system libraries and the rest"
      s[k] += size; total += size }
    END { for (k in s) printf "%s\t%d\n", k, s[k]; printf "total\t%d\n", total }' >"$BENCH_OUT/breakdown.tsv"
size=$(docker image inspect -f '{{.Size}}' "$image")
app_size=$(docker image inspect -f '{{.Size}}' skiff-test/app:1 2>/dev/null || echo 0)
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
bench_summary "### Operator image size" "" \
    "\`$image\` ($(docker image inspect -f '{{.Id}}' "$image" | cut -c8-19), built $(docker image inspect -f '{{.Created}}' "$image" | cut -c1-16)): **$(mb "$size") MB** (Docker's size; the test app image packed the same way, \`skiff-test/app:1\`: $(mb "$app_size") MB). Where the bytes go:" "" \
    "| part | MB |" "|---|---:|"
sort -t$'\t' -k2,2nr "$BENCH_OUT/breakdown.tsv" | while IFS=$'\t' read -r part bytes; do bench_summary "| $part | $(mb "$bytes") |"; done
echo "summary: image $image $(mb "$size") MB"
