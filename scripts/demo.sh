#!/usr/bin/env bash
# The embedded default in one command: Skiff's directory source with the local Docker engine,
# reconciling the stack in examples/local (test app + PostgreSQL + Redis, built locally) once.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

bash scripts/install-deps.sh
bash scripts/ensure-docker.sh
bash scripts/build-test-images.sh

echo "demo: skiff run --path examples/local --node local --once --state-dir .skiff-state"
status=0
dotnet run --project operator -c Release -- \
    run --path examples/local --node local --once --state-dir .skiff-state || status=$?
if ((status == 0)); then
    echo "demo: both stacks are Ready: curl http://127.0.0.1:8088/  (skiff status --state-dir .skiff-state)"
else
    echo "demo: skiff exited with $status; the table above says which stack is not Ready and why." >&2
fi
exit "$status"
