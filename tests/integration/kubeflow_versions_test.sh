#!/usr/bin/env bash
# One version matrix (docs/kubeflow.md, "Versions": Kubeflow, Katib, KFP, the KFP SDK, the MPI
# Operator, Kubernetes) and every file of the repository agreeing with it: install URLs, image
# tags, the IR files' sdkVersion, the Terraform default, prose naming a version
# (tests/tools/check_versions.py); then its negative cases, files edited to name another
# version, which it must catch.
#   bash tests/integration/kubeflow_versions_test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
py=/usr/bin/python3
passed=0
failed=0
for mode in "" --self-test; do
  set +e
  out=$("$py" tests/tools/check_versions.py $mode)
  rc=$?
  set -e
  echo "$out"
  summary=$(tail -n 1 <<<"$out")
  if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
  fi
  [ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=$((failed + 1))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
