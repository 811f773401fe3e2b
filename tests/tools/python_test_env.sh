# Sourced by the integration scripts that drive cajald from Python (bash tests/integration/X.sh
# BUILD_DIR, run from the repository root): sets `build` (absolute), `root` and `work` (a
# temporary directory removed on exit), and generates the Python gRPC stubs in $work/stubs.
# shellcheck shell=bash
build=${1:-build}
build=$(cd "$build" && pwd)
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$root/tests/tools/grpc_stubs.sh" "$work/stubs"
