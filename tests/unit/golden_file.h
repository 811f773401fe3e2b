// Golden values made by PyTorch (tools/make_goldens.py, make_cnn_goldens.py,
// make_rnn_goldens.py): text files of `<key> <count> <values...>` records under
// tests/data/goldens/, '#' lines being comments.
//
//   const GoldenFile& goldens = GoldenFile::Get("layers.txt");
//   goldens.Copy("dense.input", plan->input(), n);
//   goldens.ExpectNear("dense.output", plan->output(), n, /*tolerance=*/1e-5);
#ifndef CAJAL_TESTS_UNIT_GOLDEN_FILE_H_
#define CAJAL_TESTS_UNIT_GOLDEN_FILE_H_

#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cajal {

class GoldenFile {
 public:
  // The parsed file tests/data/goldens/<name>, read once per process.
  static const GoldenFile& Get(const std::string& name) {
    static auto* files = new std::map<std::string, std::unique_ptr<GoldenFile>>();
    std::unique_ptr<GoldenFile>& f = (*files)[name];
    if (!f) f.reset(new GoldenFile(std::string(CAJAL_SOURCE_DIR) + "/tests/data/goldens/" + name));
    return *f;
  }

  // The values of `key`; an empty vector and a test failure when it is missing.
  const std::vector<double>& Values(const std::string& key) const {
    static const std::vector<double> kEmpty;
    auto it = values_.find(key);
    if (it == values_.end()) {
      ADD_FAILURE() << "no golden " << key << " in " << path_;
      return kEmpty;
    }
    return it->second;
  }

  bool Has(const std::string& key) const { return values_.count(key) > 0; }
  size_t size() const { return values_.size(); }

  // Copies exactly `count` values of `key` into `dst` as floats.
  void Copy(const std::string& key, float* dst, int64_t count) const {
    const std::vector<double>& v = Values(key);
    ASSERT_EQ(static_cast<int64_t>(v.size()), count) << key;
    for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(v[i]);
  }

  // |actual − expected| <= tolerance·(1 + |expected|), elementwise.
  void ExpectNear(const std::string& key, const float* actual, int64_t count,
                  double tolerance) const {
    const std::vector<double>& expected = Values(key);
    ASSERT_EQ(static_cast<int64_t>(expected.size()), count) << key;
    for (int64_t i = 0; i < count; ++i) {
      EXPECT_NEAR(actual[i], expected[i], tolerance * (1 + std::abs(expected[i])))
          << key << "[" << i << "]";
    }
  }

 private:
  explicit GoldenFile(const std::string& path) : path_(path) {
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << "cannot open " << path;
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      std::string key;
      size_t count = 0;
      fields >> key >> count;
      std::vector<double>& values = values_[key];
      values.resize(count);
      for (double& v : values) fields >> v;
      EXPECT_FALSE(fields.fail()) << path << ": bad record " << key;
    }
  }

  std::string path_;
  std::map<std::string, std::vector<double>> values_;
};

}  // namespace cajal

#endif  // CAJAL_TESTS_UNIT_GOLDEN_FILE_H_
