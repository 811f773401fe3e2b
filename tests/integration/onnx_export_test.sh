#!/usr/bin/env bash
# ONNX export checked by independent runtimes (issue 21). For each model of tests/data/onnx/
# (MLP, the CNN of DESIGN.md, LeNet with LRN and batch norm, a peephole LSTM, a bidirectional
# GRU, and models covering every other layer kind and option), trained briefly on a
# Fashion-MNIST subset with the real `cajal train`:
#   - `cajal export --format onnx` writes the model (exit 0);
#   - Debian's python3-onnx: onnx.checker.check_model(full_check=True) and opset 17;
#   - ONNX Runtime (npm onnxruntime-node, tests/tools/onnxruntime) on the 1,000 test images
#     against `cajal evaluate --limit 1000 --logits_out`: max |difference| <= 1e-4, argmax equal
#     on every image, and the accuracy from ONNX Runtime's argmax equal to the one evaluate
#     prints.
# Also: an even-sized LRN is refused (exit 2, the layer named), a bad --format is exit 2.
#   bash tests/integration/onnx_export_test.sh [BUILD_DIR]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
root=$(pwd)
py=/usr/bin/python3  # Debian's python3 with python3-onnx (scripts/setup.sh)
ort="$root/tests/tools/onnxruntime"
data=${CAJAL_DATA_DIR:-/usr/share/datasets/fashion-mnist}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

if [ ! -d "$ort/node_modules/onnxruntime-node" ]; then
  fail "tests/tools/onnxruntime/node_modules is missing: run scripts/setup.sh"
  finish
fi
if ! "$py" -c 'import onnx' 2>/dev/null; then
  fail "python3-onnx is missing: run scripts/setup.sh"
  finish
fi

# The first 3,000 training and 1,000 test examples as IDX files of their own, so a model
# trains and evaluates in seconds; the test images are what both runtimes see.
"$py" - "$data" "$work" <<'EOF'
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for split, n in (("train", 3000), ("t10k", 1000)):
    with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        pixels = f.read(n * rows * cols)
    with gzip.open(f"{dst}/{split}-images.gz", "wb") as f:
        f.write(struct.pack(">IIII", magic, n, rows, cols) + pixels)
    with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz") as f:
        magic, count = struct.unpack(">II", f.read(8))
        labels = f.read(n)
    with gzip.open(f"{dst}/{split}-labels.gz", "wb") as f:
        f.write(struct.pack(">II", magic, n) + labels)
EOF
data_flags=(--set "data.train.idx.images=$work/train-images.gz"
  --set "data.train.idx.labels=$work/train-labels.gz"
  --set "data.test.idx.images=$work/t10k-images.gz"
  --set "data.test.idx.labels=$work/t10k-labels.gz")

onnx_files=()
for spec in "$root"/tests/data/onnx/*.yaml; do
  name=$(basename "$spec" .yaml)
  [ "$name" = lrn_even ] && continue
  out="$work/$name"
  if ! "$build/bin/cajal" train --spec "$spec" --out "$out" "${data_flags[@]}" >"$out.train.log" 2>&1; then
    fail "$name: cajal train: $(tail -n 3 "$out.train.log")"
    continue
  fi
  if ! "$build/bin/cajal" export --model "$out/model.cajal" --format onnx -o "$out/model.onnx" \
    >"$out.export.log" 2>&1; then
    fail "$name: cajal export: $(cat "$out.export.log")"
    continue
  fi
  ok "$name: exported ($(cat "$out.export.log"))"
  onnx_files+=("$out/model.onnx")
  if ! eval_line=$("$build/bin/cajal" evaluate --model "$out/model.cajal" --limit 1000 \
    --logits_out "$out/logits.json" 2>&1); then
    fail "$name: cajal evaluate: $eval_line"
    continue
  fi
  if node "$ort/compare.mjs" "$out/model.onnx" "$out/logits.json" "$work/t10k-images.gz" \
    >"$out.compare.log" 2>&1; then
    ok "$name: ONNX Runtime matches cajal evaluate: $(tail -n 1 "$out.compare.log")"
  else
    fail "$name: ONNX Runtime vs cajal: $(grep -v '^ok' "$out.compare.log" | tr '\n' ' ')"
    continue
  fi
  # The accuracy evaluate prints (4 decimals; exact for 1,000 images) against ONNX Runtime's.
  # Threshold units are scored by exact match, not argmax: their outputs were compared above.
  if [ "$name" != threshold ]; then
    cajal_acc=$(sed -n 's/.*accuracy=\([0-9.]*\).*/\1/p' <<<"$eval_line")
    onnx_acc=$(tail -n 1 "$out.compare.log" | sed -n 's/.*"accuracy":\([0-9.e-]*\).*/\1/p')
    if [ -n "$cajal_acc" ] && [ "$(printf '%.4f' "$onnx_acc")" = "$cajal_acc" ]; then
      ok "$name: test accuracy $cajal_acc from cajal evaluate == ONNX Runtime's"
    else
      fail "$name: cajal evaluate printed '$eval_line', ONNX Runtime's accuracy is '$onnx_acc'"
    fi
  fi
done

# Debian's ONNX checker, full check (shape inference included), and the declared opset.
if out=$("$py" - "${onnx_files[@]}" <<'EOF' 2>&1
import sys
import onnx
for path in sys.argv[1:]:
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    opsets = {o.domain: o.version for o in m.opset_import}
    assert opsets == {"": 17}, f"{path}: opsets {opsets}"
    names = [o.name for o in m.graph.output]
    assert names in (["logits", "probabilities"], ["outputs"]), f"{path}: outputs {names}"
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N", path
    print(f"{path.split('/')[-2]}: checker ok, opset 17, outputs {names}")
EOF
); then
  ok "onnx.checker.check_model(full_check=True) on ${#onnx_files[@]} models: $(tr '\n' ';' <<<"$out")"
else
  fail "onnx checker: $out"
fi
if [ "${#onnx_files[@]}" -eq 9 ]; then
  ok "9 models exported"
else
  fail "${#onnx_files[@]} of 9 models exported"
fi

# A layer ONNX cannot express faithfully is refused, naming it.
"$build/bin/cajal" train --spec "$root/tests/data/onnx/lrn_even.yaml" --out "$work/lrn_even" \
  "${data_flags[@]}" >/dev/null 2>&1 || fail "lrn_even: cajal train failed"
set +e
msg=$("$build/bin/cajal" export --model "$work/lrn_even/model.cajal" -o "$work/lrn.onnx" 2>&1)
rc=$?
set -e
if [ "$rc" -eq 2 ] && grep -q "model.layers.1 (lrn): size 4 cannot be exported faithfully" <<<"$msg" &&
  [ ! -e "$work/lrn.onnx" ]; then
  ok "even-sized LRN refused with exit 2: $msg"
else
  fail "even-sized LRN: exit $rc, '$msg'"
fi
set +e
msg=$("$build/bin/cajal" export --model "$work/mlp/model.cajal" --format tflite -o "$work/x" 2>&1)
rc=$?
set -e
if [ "$rc" -eq 2 ] && grep -q "tflite" <<<"$msg"; then
  ok "--format tflite is exit 2"
else
  fail "--format tflite: exit $rc, '$msg'"
fi
finish
