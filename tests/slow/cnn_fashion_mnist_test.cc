// The CNN of DESIGN.md, exactly as written there (examples/cnn.yaml: conv 5×5×32 p2, relu,
// maxpool 2, conv 5×5×64 p2, relu, maxpool 2, flatten, dense 1024, relu, dense 10; Adam 1e-3;
// batch 64; 5 epochs), reaches at least 91% test accuracy on Fashion-MNIST through
// `cajal train`.
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

const std::string kCajal = std::string(CAJAL_BINARY_DIR) + "/bin/cajal";
const std::string kSpec = std::string(CAJAL_SOURCE_DIR) + "/examples/cnn.yaml";
constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

TEST(CnnFashionMnistTest, DesignCnnReaches91PercentIn5Epochs) {
  if (::access(kFashionMnist, F_OK) != 0) GTEST_SKIP() << kFashionMnist << " is missing";
  ASSERT_EQ(::access(kCajal.c_str(), X_OK), 0) << kCajal << " is missing";
  std::string tmpl = ::testing::TempDir() + "/cajal_cnn_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string command = kCajal + " train --spec " + kSpec + " --out " + tmpl + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  std::cout << out;
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << out;

  const std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 6u) << "5 epoch lines and the final line expected";
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      lines[5], m, std::regex(R"(test_loss=\d+\.\d{4} test_accuracy=(\d\.\d{4}) steps=4690 .*)")))
      << lines[5];
  EXPECT_GE(std::stod(m[1]), 0.91) << lines[5];
}

}  // namespace
}  // namespace cajal
