#!/usr/bin/env bash
# Runs shellcheck on every shell script and yamllint (strict, config .yamllint) on every YAML file
# of the repository, tracked or new, except what .gitignore ignores (build dirs, node_modules).
#   bash tests/integration/lint_test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
passed=0
failed=0

mapfile -t shell_files < <(git ls-files -co --exclude-standard -- '*.sh' .ci/run | sort -u)
for f in "${shell_files[@]}"; do
  [ -f "$f" ] || continue
  if out=$(shellcheck -x "$f" 2>&1); then
    echo "ok   shellcheck $f"
    passed=$((passed + 1))
  else
    echo "FAIL shellcheck $f"
    echo "$out"
    failed=$((failed + 1))
  fi
done

# Fuzzer inputs are malformed on purpose (also ignored in .yamllint).
mapfile -t yaml_files < <(git ls-files -co --exclude-standard -- '*.yaml' '*.yml' .yamllint \
  ':!:tests/fuzz/corpus/**' | sort -u)
existing=()
for f in "${yaml_files[@]}"; do [ -f "$f" ] && existing+=("$f"); done
# One yamllint run for all files (it starts slowly); its parsable output names each file.
report=$(yamllint --strict -c .yamllint -f parsable "${existing[@]}" 2>&1) || true
for f in "${existing[@]}"; do
  problems=$(grep -F -- "$f:" <<<"$report" || true)
  if [ -z "$problems" ]; then
    echo "ok   yamllint $f"
    passed=$((passed + 1))
  else
    echo "FAIL yamllint $f"
    echo "$problems"
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
