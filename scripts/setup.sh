#!/usr/bin/env bash
# Installs every Debian package cajal needs to build, test, benchmark and package itself.
# Non-interactive and idempotent: a second run finds everything present and changes nothing.
#
#   scripts/setup.sh            # build + test dependencies (what the README commands need)
#
# Runs apt-get through sudo when not root.
set -euo pipefail

packages=(
  # Toolchain.
  build-essential cmake ninja-build pkg-config git ca-certificates
  clang-14 libclang-rt-14-dev clang-format
  # Libraries (DESIGN.md, Dependencies).
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libdnnl-dev ocl-icd-opencl-dev
  prometheus-cpp-dev libcivetweb-dev libabsl-dev libgtest-dev libgmock-dev
  libsqlite3-dev sqlite3 libcli11-dev libyaml-cpp-dev
  libssl-dev  # libcrypto: SHA-256 of uploaded data sets
  libopenmpi-dev openmpi-bin
  libonnx-dev
  dataset-fashion-mnist
  # Peers and second clients used by tests and benchmarks.
  python3 python3-torch libopenblas0-openmp python3-numpy
  python3-grpcio python3-protobuf python3-crc32c python3-yaml
  python3-onnx python3-jsonschema
  prometheus
  # Checkers.
  shellcheck yamllint openssl curl procps
)
# The manifest checks (tests/tools; absent from the container build context): Node.js for the
# schema packages, kubectl for `kubectl kustomize`, Debian's only where the machine has none.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$root/tests/tools/package.json" ]; then
  command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
  command -v kubectl >/dev/null || packages+=(kubernetes-client)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
else
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages of the manifest schema checks, as locked in tests/tools/package-lock.json;
# reinstalled only when the lock file is newer than the installed tree.
tools="$root/tests/tools"
if [ -f "$tools/package-lock.json" ]; then
  if [ ! -f "$tools/node_modules/.package-lock.json" ] ||
    [ "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]; then
    echo "setup: npm ci in tests/tools"
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
  else
    echo "setup: tests/tools/node_modules up to date"
  fi
fi
# ONNX Runtime for the export checks (tests/tools/onnxruntime): onnxruntime-node carries its
# Linux CPU binaries; --ignore-scripts skips its install script, which downloads extras and
# fails offline.
ort="$root/tests/tools/onnxruntime"
if [ -f "$ort/package-lock.json" ]; then
  if [ ! -f "$ort/node_modules/.package-lock.json" ] ||
    [ "$ort/package-lock.json" -nt "$ort/node_modules/.package-lock.json" ]; then
    echo "setup: npm ci --ignore-scripts in tests/tools/onnxruntime"
    (cd "$ort" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  else
    echo "setup: tests/tools/onnxruntime/node_modules up to date"
  fi
fi
