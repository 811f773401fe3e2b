#!/usr/bin/env bash
# Katib Experiments and KFP files against the documented fields and rules
# (tests/tools/check_kubeflow.py), then the checker's negative cases: broken variants of the
# repository's files that it must reject.
#   bash tests/integration/katib_experiments_test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
py=/usr/bin/python3
passed=0
failed=0

mapfile -t files < <(ls deploy/katib/*.yaml deploy/pipelines/*.yaml deploy/training-operator/*.yaml)
while IFS= read -r line; do
  echo "$line"
  case "$line" in
    ok*) passed=$((passed + 1)) ;;
    FAIL*) failed=$((failed + 1)) ;;
  esac
done < <("$py" tests/tools/check_kubeflow.py "${files[@]}" || true)

set +e
out=$("$py" tests/tools/check_kubeflow.py --self-test)
rc=$?
set -e
echo "$out"
summary=$(tail -n 1 <<<"$out")
if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
  passed=$((passed + BASH_REMATCH[1]))
  failed=$((failed + BASH_REMATCH[2]))
fi
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=$((failed + 1))

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
