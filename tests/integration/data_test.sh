#!/usr/bin/env bash
# Data on the server (tests/integration/data_test.py): confinement to the data roots, errors that
# quote no file content, bounded loader memory under a lying header, and uploads, against real
# cajald processes and the real `cajal` CLI.
set -euo pipefail
# shellcheck source=tests/tools/python_test_env.sh
source tests/tools/python_test_env.sh
/usr/bin/python3 "$root/tests/integration/data_test.py" "$work/stubs" "$build" "$work"
