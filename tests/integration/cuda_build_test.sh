#!/usr/bin/env bash
# A build with the CUDA backend, on a machine without a GPU or driver (CI's): `cajal` links
# CUDA's runtime but not the driver library, starts, trains on the CPU when training.device is
# auto (silently: the device line is printed for GPU jobs only), and refuses device gpu with
# the reason. Skipped (exit 77) on a build without the CUDA backend and on a machine with a GPU
# (scripts/gpu-check.sh covers that one).
#   bash tests/integration/cuda_build_test.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
cajal="$build/bin/cajal"
needed=$(readelf -d "$cajal" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
if ! grep -q '^libcudart\.so' <<<"$needed"; then
  echo "skip: $cajal is built without the CUDA backend"
  exit 77
fi
if nvidia-smi -L 2>/dev/null | grep -q GPU; then
  echo "skip: a GPU is visible here (scripts/gpu-check.sh checks the GPU path)"
  exit 77
fi
fail() {
  echo "FAIL: $*"
  exit 1
}
# The runtime API only: never libcuda.so (the driver), which machines without a GPU lack.
grep -q '^libcuda\.so' <<<"$needed" && fail "$cajal needs the driver library libcuda.so"
echo "ok   NEEDED has libcudart, not libcuda: $(tr '\n' ' ' <<<"$needed" | grep -o 'lib\(cudart\|cudnn\|nccl\)[^ ]*' | tr '\n' ' ')"

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/xor.yaml" <<'SPEC'
model: {layers: [{dense: {units: 4}}, {activation: {kind: tanh}}, {dense: {units: 2}}]}
data: {train: {builtin: xor}}
optimizer: {kind: adam, learning_rate: 0.05}
training: {epochs: 3, batch_size: 4, seed: 1, loss: cross_entropy, device: auto}
SPEC
"$cajal" train --spec "$dir/xor.yaml" --out "$dir/auto" >"$dir/out" 2>"$dir/err" ||
  fail "device auto: exit $?: $(cat "$dir/err")"
[ -s "$dir/err" ] && fail "device auto printed on stderr (a CPU job stays quiet): $(cat "$dir/err")"
grep -q '^epoch=3 loss=' "$dir/out" || fail "no epoch lines: $(cat "$dir/out")"
[ -s "$dir/auto/model.cajal" ] || fail "no model written"
echo "ok   device auto trains on the CPU: $(tail -1 "$dir/out")"

rc=0
"$cajal" train --spec "$dir/xor.yaml" --out "$dir/gpu" --set training.device=gpu \
  >"$dir/out" 2>"$dir/err" || rc=$?
[ "$rc" -eq 2 ] || fail "device gpu without a GPU: exit $rc, want 2"
grep -q 'training.device: gpu, but no CUDA device is visible' "$dir/err" ||
  fail "device gpu: unexpected message: $(cat "$dir/err")"
echo "ok   device gpu is refused: $(cat "$dir/err")"
