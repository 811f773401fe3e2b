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
  prometheus-cpp-dev libabsl-dev libgtest-dev libgmock-dev
  libsqlite3-dev sqlite3 libcli11-dev libyaml-cpp-dev
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist
  # Peers and second clients used by tests and benchmarks.
  python3 python3-torch libopenblas0-openmp python3-numpy
  python3-grpcio python3-protobuf python3-crc32c python3-yaml
  prometheus
  # Checkers.
  shellcheck yamllint openssl curl procps
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
