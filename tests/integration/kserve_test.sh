#!/usr/bin/env bash
# deploy/kserve/ against a real export: trains examples/mlp.yaml for a few steps, exports it
# with `cajal export --format onnx`, and runs tests/tools/check_kserve.py on it (the
# InferenceServices, against KServe's CRD schema when a copy is given; the Triton config and
# the v2 request example against the model; the request answered by ONNX Runtime).
#   bash tests/integration/kserve_test.sh [BUILD_DIR]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ ! -d tests/tools/onnxruntime/node_modules/onnxruntime-node ] ||
  ! /usr/bin/python3 -c 'import onnx, jsonschema' 2>/dev/null; then
  echo "FAIL onnxruntime-node, python3-onnx or python3-jsonschema missing: run scripts/setup.sh"
  echo "0 passed, 1 failed"
  exit 1
fi
if ! "$build/bin/cajal" train --spec examples/mlp.yaml --out "$work" \
  --set training.max_steps=5 --set training.threads=1 >"$work/train.log" 2>&1 ||
  ! "$build/bin/cajal" export --model "$work/model.cajal" --format onnx -o "$work/model.onnx"; then
  cat "$work/train.log"
  echo "FAIL training or exporting examples/mlp.yaml"
  echo "0 passed, 1 failed"
  exit 1
fi
/usr/bin/python3 tests/tools/check_kserve.py "$work/model.onnx"
