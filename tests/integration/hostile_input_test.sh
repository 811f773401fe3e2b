#!/usr/bin/env bash
# Hostile input against a running cajald (tests/integration/hostile_input_test.py): malformed
# specs and requests, each with its gRPC code and message; the server stays up throughout.
set -euo pipefail
# shellcheck source=tests/tools/python_test_env.sh
source tests/tools/python_test_env.sh
/usr/bin/python3 "$root/tests/integration/hostile_input_test.py" "$work/stubs" "$build" "$work"
