#!/usr/bin/env bash
# The README's test command: installs every dependency, builds, and runs the default test
# suite (ctest labels `unit` and `integration`). Heavy checks: `ctest --test-dir build -L slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts/setup.sh
echo "setup: $((SECONDS - start)) s"
scripts/build.sh
echo "build: $((SECONDS - start)) s"
ctest --test-dir build -L 'unit|integration' --output-on-failure -j 2 --timeout 1500
echo "total: $((SECONDS - start)) s"
