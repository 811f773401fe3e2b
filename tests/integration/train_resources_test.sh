#!/usr/bin/env bash
# `cajal train` and memory (tests/integration/train_resources_test.py): the estimate against
# measured peak RSS, specs too big for the budget refused before training, --dry-run and
# --max_memory, and --checkpoint_dir resuming bit-identically after SIGKILL and SIGTERM.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 tests/integration/train_resources_test.py "$build" "$work"
