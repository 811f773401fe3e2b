#!/usr/bin/env bash
# Simulates one Katib trial of every Experiment under deploy/katib/ with the local build:
# the trial template's exact command (a Job's container, an MPIJob's launcher), init containers
# first, run through `sh -c '<cmd> 1>metrics.log 2>&1 && echo completed > pid'` as Katib's
# collector does (or, for the Push collector, as it is, against a recording DBManager server),
# metrics parsed with Katib's default regex (or from the TensorBoard event files, or as
# pushed), plus a failing trial (tests/tools/katib_simulate.py).
#   bash tests/integration/katib_trials_test.sh BUILD_DIR
set -euo pipefail
# shellcheck source=tests/tools/python_test_env.sh
source tests/tools/python_test_env.sh
/usr/bin/python3 "$root/tests/tools/katib_simulate.py" "$build" "$work/stubs"
