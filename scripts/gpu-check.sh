#!/usr/bin/env bash
# The CUDA backend's one prepared check, for a machine with an NVIDIA GPU (docs/gpu.md):
#   build     CAJAL_CUDA=ON, Release, into build-gpu/ (only the targets below), or --prebuilt
#   parity    the gpu tests: every layer, loss and optimizer against the CPU backend, 200-step
#             loss curves, models moved between GPU and CPU, GPU errors (tests/gpu/)
#   accuracy  Fashion-MNIST MLP, CNN and LSTM on the GPU, 5 epochs each, against the CPU targets
#   bench     bench/gpu_bench.py: samples/s of the three networks at batch 64 and 256 on the GPU,
#             the CPU backend and PyTorch CUDA (when `import torch` finds CUDA), and the cuBLAS
#             SGEMM peak of the same run
# then a summary, one line per stage. The stages share an 8-minute budget (CAJAL_GPU_BUDGET_S,
# default 470 s); each gets at most its own cap and what is left, and is cut off (FAILED,
# "timeout") past it.
#
#   scripts/gpu-check.sh                   # build here: scripts/setup.sh's packages, CUDA 13
#                                          # with cuDNN 9 at /usr/local/cuda, Fashion-MNIST
#   scripts/gpu-check.sh --pack DIR        # on a build machine (after a CUDA build in build/):
#                                          # DIR/gpu-pack.tar.gz = the binaries, the shared
#                                          # libraries they need beyond glibc, libstdc++ and
#                                          # CUDA's, and the Fashion-MNIST files
#   scripts/gpu-check.sh --prebuilt DIR    # on the GPU machine: unpack DIR/gpu-pack.tar.gz and
#                                          # run its binaries (CUDA's libraries from the machine,
#                                          # or from the nvidia-* Python packages of its torch)
#   scripts/gpu-check.sh --dry-run         # without a GPU: the build and the tests, which skip
#                                          # saying why; no bench
# CAJAL_BUILD_DIR (default build-gpu) is where it builds; CAJAL_DATA_DIR where Fashion-MNIST
# is when /usr/share/datasets/fashion-mnist is not.
#
# Exit: 0 when every stage passed, 1 when one failed, 3 when no GPU is visible (not --dry-run).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 2
budget=${CAJAL_GPU_BUDGET_S:-470}
start=$(date +%s)
mode=build
pack_dir=""
dry_run=0
case "${1:-}" in
  --pack) mode=pack; pack_dir="${2:?--pack DIR}" ;;
  --prebuilt) mode=prebuilt; pack_dir="${2:?--prebuilt DIR}" ;;
  --dry-run) dry_run=1 ;;
  "") ;;
  *) echo "usage: scripts/gpu-check.sh [--pack DIR | --prebuilt DIR | --dry-run]" >&2; exit 2 ;;
esac
targets=(cajal gpu_parity_test gpu_accuracy_test cublas_sgemm_peak)

if [ "$mode" = pack ]; then
  build="${CAJAL_BUILD_DIR:-build}"
  for t in "${targets[@]}"; do
    [ -x "$build/bin/$t" ] || { echo "gpu-check: $build/bin/$t missing (build with CUDA first)" >&2; exit 2; }
  done
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib" "$stage/data" "$pack_dir"
  for t in "${targets[@]}"; do cp "$build/bin/$t" "$stage/bin/"; done
  # Every library the binaries load but glibc's, libstdc++/libgcc's and CUDA's own.
  for t in "${targets[@]}"; do ldd "$build/bin/$t"; done | awk '/=>/ {print $3}' | sort -u |
    grep -vE '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so|ld-linux|cuda|cublas|cudnn|nccl' |
    while read -r lib; do cp -L "$lib" "$stage/lib/"; done
  data="${CAJAL_DATA_DIR:-/usr/share/datasets/fashion-mnist}"
  cp "$data"/*-ubyte.gz "$stage/data/"
  tar -czf "$pack_dir/gpu-pack.tar.gz" -C "$stage" .
  rm -rf "$stage"
  echo "gpu-check: $(du -h "$pack_dir/gpu-pack.tar.gz" | cut -f1) in $pack_dir/gpu-pack.tar.gz"
  exit 0
fi

results=()
failed=0
logs=$(mktemp -d)
remaining() { echo $((budget - ($(date +%s) - start))); }
# run_stage NAME CAP COMMAND...: runs COMMAND with at most min(CAP, what is left) seconds.
run_stage() {
  local name=$1 cap=$2
  shift 2
  local left
  left=$(remaining)
  [ "$left" -lt "$cap" ] && cap=$left
  if [ "$cap" -le 5 ]; then
    results+=("$name: FAILED (no time left in the ${budget} s budget)")
    failed=1
    return
  fi
  local t0 rc log="$logs/$name.log"
  t0=$(date +%s)
  echo "=== $name (at most ${cap} s)"
  timeout "$cap" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local took=$(($(date +%s) - t0))
  if [ "$rc" -eq 0 ] && grep -q '^\[  PASSED  \] 0 tests' "$log"; then
    results+=("$name: skipped ($(grep -o '^\[  SKIPPED \] [0-9]* tests' "$log" | tail -1 |
      grep -o '[0-9]* tests'); the first reason: $(grep -m1 -A1 'Skipped$' "$log" | tail -1))")
  elif [ "$rc" -eq 0 ]; then
    results+=("$name: ok (${took} s)")
  elif [ "$rc" -eq 124 ]; then
    results+=("$name: FAILED (timeout after ${took} s)")
    failed=1
  else
    results+=("$name: FAILED (exit $rc after ${took} s)")
    failed=1
  fi
}

echo "=== GPU"
if nvidia-smi -L 2>/dev/null | grep -q GPU; then
  nvidia-smi -L
elif [ $dry_run -eq 1 ]; then
  echo "no GPU is visible (nvidia-smi -L lists none): a dry run, the tests will skip"
else
  echo "gpu-check: no GPU is visible (nvidia-smi -L lists none); nothing to check" >&2
  exit 3
fi

if [ "$mode" = prebuilt ]; then
  build="$pack_dir/unpacked"
  mkdir -p "$build"
  tar -xzf "$pack_dir/gpu-pack.tar.gz" -C "$build" || exit 1
  libs="$build/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib"
  # cuDNN, cuBLAS and NCCL also come with PyTorch's nvidia-* wheels.
  nv=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]) + "/nvidia")' 2>/dev/null)
  if [ -n "$nv" ]; then
    for d in "$nv"/*/lib; do libs="$libs:$d"; done
  fi
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CAJAL_DATA_DIR="$build/data"
  results+=("build: prebuilt ($pack_dir/gpu-pack.tar.gz)")
else
  build="${CAJAL_BUILD_DIR:-$root/build-gpu}"
  run_stage build 300 bash -c "cmake -S . -B '$build' -G Ninja -DCAJAL_CUDA=ON -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build '$build' -j \"\$(nproc)\" --target ${targets[*]}"
fi
# The tests find `cajal` and the examples through these when the build's own paths differ.
export CAJAL_BINARY_DIR="$build" CAJAL_SOURCE_DIR="$root"

if [ -x "$build/bin/gpu_parity_test" ]; then
  run_stage parity 120 "$build/bin/gpu_parity_test" --gtest_brief=1
  run_stage accuracy 200 "$build/bin/gpu_accuracy_test" --gtest_brief=1
  if [ $dry_run -eq 1 ]; then
    results+=("bench: not run (dry run)")
  else
    run_stage bench 150 python3 bench/gpu_bench.py --build "$build"
  fi
else
  results+=("parity, accuracy, bench: not run (no build)")
  failed=1
fi

echo
echo "=== gpu-check summary ($(($(date +%s) - start)) s of ${budget} s)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null ||
  echo "  (no GPU)"
for r in "${results[@]}"; do echo "  $r"; done
exit $failed
