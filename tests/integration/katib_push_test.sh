#!/usr/bin/env bash
# Katib push mode: `cajal train --katib-push` against a gRPC server of the test's own that
# implements api.v1.beta1.DBManager/ReportObservationLog (tests/tools/katib_db_manager.py)
# and records what it receives: trial name, metric names, values and timestamps per epoch,
# retries of UNAVAILABLE answers, and clear failures for an unreachable or refusing
# db-manager and a missing trial name (tests/tools/katib_push_check.py).
#   bash tests/integration/katib_push_test.sh BUILD_DIR
set -euo pipefail
# shellcheck source=tests/tools/python_test_env.sh
source tests/tools/python_test_env.sh
/usr/bin/python3 "$root/tests/tools/katib_push_check.py" "$build" "$work" "$work/stubs"
