#!/usr/bin/env bash
# Builds the spec fuzzer with clang 14 (libFuzzer + AddressSanitizer) and runs it.
#
#   scripts/fuzz.sh [MINUTES]     # default 5; build dir build-fuzz (or $CAJAL_FUZZ_BUILD)
#
# The libraries are built with -fsanitize=fuzzer-no-link,address, the target with
# -fsanitize=fuzzer,address (tests/fuzz/CMakeLists.txt); it links Debian's protobuf, yaml-cpp
# and absl, which are not instrumented. The run starts from the seed corpus
# tests/fuzz/corpus/spec/ and keeps what it finds in BUILD/fuzz-corpus/spec/; crashing inputs
# land in BUILD/fuzz-artifacts/. After fixing a crash, copy its input into the seed corpus:
# tests/unit/spec_corpus_test.cc replays that corpus in every default test run.
set -euo pipefail

minutes=${1:-5}
if ! [[ $minutes =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh [MINUTES]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CAJAL_FUZZ_BUILD:-$root/build-fuzz}

flags="-fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer -g"
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCAJAL_FUZZ=ON -DCAJAL_CUDA=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >/dev/null
ninja -C "$build" spec_fuzzer

corpus=$build/fuzz-corpus/spec
artifacts=$build/fuzz-artifacts/
mkdir -p "$corpus" "$artifacts"
# detect_leaks=0: yaml-cpp and protobuf keep process-lifetime allocations that LSan reports
# at exit; leaks in our code would still show up as growing RSS (-rss_limit_mb).
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  "$build/bin/spec_fuzzer" "$corpus" "$root/tests/fuzz/corpus/spec" \
  -max_total_time=$((minutes * 60)) -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
  -artifact_prefix="$artifacts" -print_final_stats=1
echo "fuzzed for $minutes minute(s); corpus in $corpus; crashes (if any) in $artifacts"
