#!/usr/bin/env bash
# THE test command: prepares a fresh Debian 12 + .NET 10 SDK machine (as root), starts Docker,
# builds the test images, runs every test project of Operator.sln, and ends with one line:
#   N passed, N failed[, N skipped]
# Exit status: 0 when nothing failed, 1 otherwise (a build failure counts as a failure).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
results="$repo/TestResults/run"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

say() { echo "test.sh: $*"; }
# Even when the machine cannot be prepared, the last line says something failed.
setup_failed() {
    echo "test.sh: $1 failed" >&2
    echo "0 passed, 1 failed"
    exit 1
}

# 1. Host packages: Docker, and the binaries the test images are packed from.
bash scripts/install-deps.sh || setup_failed "installing packages"

# 2. A Docker engine, and the images the tests run.
bash scripts/ensure-docker.sh || setup_failed "starting Docker"
bash scripts/build-test-images.sh || setup_failed "building the test images"

# 3. Every test project in the solution, with TRX results to count.
rm -rf "$results"
mkdir -p "$results"
status=0
dotnet test Operator.sln -c Release --logger trx --results-directory "$results" \
    --blame-hang --blame-hang-timeout 5m --blame-hang-dump-type none || status=$?

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
    say "dotnet test exited with $status without a failed test: the build failed or a test host crashed"
    failed=1
fi
summary="$passed passed, $failed failed"
((skipped == 0)) || summary+=", $skipped skipped"
echo "$summary"
((failed == 0))
