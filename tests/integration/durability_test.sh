#!/usr/bin/env bash
# Crash safety and graceful shutdown of cajald (tests/integration/durability_test.py): a kill -9
# crash loop over one data dir, then SIGTERM with a running job, a second SIGTERM, and the grace
# running out. CAJAL_TEST_SEED fixes the random kill moments; CAJAL_CRASH_ROUNDS the rounds.
set -euo pipefail
# shellcheck source=tests/tools/python_test_env.sh
source tests/tools/python_test_env.sh
/usr/bin/python3 "$root/tests/integration/durability_test.py" "$work/stubs" "$build" "$work" \
  "${CAJAL_CRASH_ROUNDS:-7}"
