#!/usr/bin/env bash
# Hostile input against a running cajald (tests/integration/hostile_input_test.py): malformed
# specs and requests, each with its gRPC code and message; the server stays up throughout.
set -euo pipefail
build=${1:-build}
build=$(cd "$build" && pwd)
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$root/tests/tools/grpc_stubs.sh" "$work/stubs"
/usr/bin/python3 "$root/tests/integration/hostile_input_test.py" "$work/stubs" "$build" "$work"
