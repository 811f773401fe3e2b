#!/usr/bin/env bash
# Simulates one Katib trial of every Experiment under deploy/katib/ with the local build:
# the trial template's exact command, run through `sh -c '<cmd> 1>metrics.log 2>&1 && echo
# completed > pid'` as Katib's collector does, metrics parsed with Katib's default regex (or
# from the TensorBoard event files), plus a failing trial (tests/tools/katib_simulate.py).
#   bash tests/integration/katib_trials_test.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
exec /usr/bin/python3 tests/tools/katib_simulate.py "$build"
