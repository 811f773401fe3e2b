// libFuzzer target over the spec loader and validator: spec text (YAML or JSON, plus `#set`
// override lines) → ParseSpec → ValidateSpec / ToJobConfig → SpecToJson round trip.
// Build and run with scripts/fuzz.sh; the seed corpus is tests/fuzz/corpus/spec/ and replays as
// tests/unit/spec_corpus_test.cc in the default build.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/spec_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Status s = cajal::fuzz::CheckSpecInput(data, size);
  if (s.code() == absl::StatusCode::kInternal) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    std::abort();
  }
  return 0;
}
