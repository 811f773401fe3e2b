// Replays the spec fuzzer's seed corpus (tests/fuzz/corpus/spec/) through the fuzzer's own
// entry point, so every input the fuzzer was seeded with, and every crash it found and we fixed,
// is checked in the default run without clang or libFuzzer.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fuzz/spec_input.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

const std::filesystem::path kCorpus =
    std::filesystem::path(CAJAL_SOURCE_DIR) / "tests/fuzz/corpus/spec";

std::string Read(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::Status Check(const std::string& name) {
  const std::string text = Read(kCorpus / name);
  return fuzz::CheckSpecInput(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

TEST(SpecCorpusTest, EveryInputIsAcceptedOrRefusedAsInvalidArgument) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(kCorpus)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 30u) << "the seed corpus is missing from " << kCorpus;
  int ok = 0;
  for (const auto& file : files) {
    const absl::Status s = Check(file.filename().string());
    EXPECT_TRUE(s.ok() || s.code() == absl::StatusCode::kInvalidArgument)
        << file.filename() << ": " << s;
    ok += s.ok();
  }
  // Not everything is refused: the corpus also holds specs that must pass.
  EXPECT_GE(ok, 5);
}

TEST(SpecCorpusTest, TheExamplesAreValid) {
  for (const auto& entry : std::filesystem::directory_iterator(kCorpus)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("example_", 0) == 0) {
      EXPECT_TRUE(Check(name).ok()) << name << ": " << Check(name);
    }
  }
}

TEST(SpecCorpusTest, OverrideLinesAreApplied) {
  // #set training.epochs=5 etc. are applied; the result stays valid.
  EXPECT_TRUE(Check("xor_overrides.yaml").ok()) << Check("xor_overrides.yaml");
  EXPECT_THAT(fuzz::OverridesIn(Read(kCorpus / "xor_overrides.yaml")),
              ::testing::ElementsAre("model.layers.0.dense.units=16", "training.epochs=5",
                                     "model.layers.3.activation.kind=softmax", "labels.team=ml"));
}

TEST(SpecCorpusTest, HostileInputsNameTheirField) {
  struct Case {
    const char* file;
    const char* fragment;
  };
  for (const Case& c : std::vector<Case>{
           {"nan_lr.yaml", "optimizer.learning_rate: must be a finite number"},
           {"huge_units.yaml", "model.layers.0.dense.units: must be <= 1048576"},
           {"layers_1001.yaml", "model.layers: must be <= 1000, got 1001"},
           {"unknown_enum.yaml", "model.layers.0.activation.kind"},
           {"preset_and_layers.yaml", "set either preset or layers, not both"},
           {"dup_keys.yaml", "training.epochs: set twice"},
           {"int_overflow.yaml", "integer out of range"},
           {"deep_maps.yaml", "unknown field"},
           {"alias_expansion.yaml", "spec: expands to more than 8388608 bytes"},
       }) {
    const absl::Status s = Check(c.file);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.file << ": " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.fragment)) << c.file;
  }
}

}  // namespace
}  // namespace cajal
