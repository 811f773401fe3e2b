// The fuzzed path of the spec loader and validator, shared by the libFuzzer target
// (spec_fuzzer.cc) and the corpus replay test (tests/unit/spec_corpus_test.cc).
//
//   absl::Status s = cajal::fuzz::CheckSpecInput(data, size);   // OK or kInvalidArgument
//
// The input is spec text (YAML or JSON). Lines that start with `#set ` are YAML comments to the
// parser and, up to kMaxOverrides of them, are also applied as `--set` overrides
// (`#set model.layers.0.dense.units=7`), so the fuzzer mutates overrides too.
//
// Returns OK or the first kInvalidArgument error. Anything else is a broken invariant, returned
// as kInternal (the fuzzer aborts on it, the corpus test fails on it):
//   - every error of the loader and validator is kInvalidArgument (their contract);
//   - ToJobConfig fails exactly when ValidateSpec does;
//   - a spec that validates survives the trip through SpecToJson and ParseSpec unchanged,
//     since that JSON is what the store, model files and `cajal` read back.
// Header-only: the unit test is a plain gtest and cannot add sources to its target.
#ifndef CAJAL_TESTS_FUZZ_SPEC_INPUT_H_
#define CAJAL_TESTS_FUZZ_SPEC_INPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/message_differencer.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"

namespace cajal::fuzz {

inline constexpr int kMaxOverrides = 4;

inline absl::Status Violation(const std::string& what, const absl::Status& s) {
  return absl::InternalError(
      absl::StrCat("spec fuzz invariant violated: ", what, ": ", s.ToString()));
}

inline bool IsOkOrInvalidArgument(const absl::Status& s) {
  return s.ok() || s.code() == absl::StatusCode::kInvalidArgument;
}

// The `#set path=value` lines of `text`, in order, at most kMaxOverrides.
inline std::vector<std::string> OverridesIn(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (out.size() == kMaxOverrides) break;
    if (absl::ConsumePrefix(&line, "#set ")) out.emplace_back(line);
  }
  return out;
}

// Runs text → ParseSpec (with overrides) → ValidateSpec → ToJobConfig → SpecToJson → ParseSpec.
inline absl::Status CheckSpecInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(text, OverridesIn(text));
  if (!IsOkOrInvalidArgument(spec.status())) return Violation("ParseSpec", spec.status());
  if (!spec.ok()) return spec.status();
  const absl::Status valid = ValidateSpec(*spec);
  if (!IsOkOrInvalidArgument(valid)) return Violation("ValidateSpec", valid);
  absl::StatusOr<JobConfig> config = ToJobConfig(*spec);
  if (config.status() != valid) {
    return Violation("ToJobConfig disagrees with ValidateSpec", config.status());
  }
  if (!valid.ok()) return valid;
  const std::string json = SpecToJson(*spec);
  absl::StatusOr<v1::JobSpec> again = ParseSpec(json);
  if (!again.ok())
    return Violation(absl::StrCat("SpecToJson output ", json, " does not parse"), again.status());
  if (!google::protobuf::util::MessageDifferencer::Equals(*spec, *again)) {
    return Violation("SpecToJson/ParseSpec round trip changed the spec",
                     absl::InternalError(json + " became " + SpecToJson(*again)));
  }
  return absl::OkStatus();
}

}  // namespace cajal::fuzz

#endif  // CAJAL_TESTS_FUZZ_SPEC_INPUT_H_
