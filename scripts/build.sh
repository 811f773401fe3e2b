#!/usr/bin/env bash
# Configures and builds cajal into build/ (binaries in build/bin/).
#   scripts/build.sh                 # Release
#   CAJAL_SANITIZE=ON scripts/build.sh   # ASan + UBSan, into build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build
extra=()
# CI=true: warnings are errors, also in a build directory configured before without it.
[ "${CI:-}" = "true" ] && extra+=(-DCAJAL_WERROR=ON)
if [ "${CAJAL_SANITIZE:-OFF}" = "ON" ]; then
  build_dir=build-asan
  extra+=(-DCAJAL_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
cmake -S . -B "$build_dir" -G Ninja "${extra[@]}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
