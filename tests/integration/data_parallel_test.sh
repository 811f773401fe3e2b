#!/usr/bin/env bash
# Data-parallel training under mpirun (tests/integration/data_parallel_test.py): 2 ranks × 1
# thread against one process with the doubled batch, replicas bit-identical, synchronized batch
# norm, a killed rank ending the job, resuming a 2-rank run, refusals.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 tests/integration/data_parallel_test.py "$build" "$work"
