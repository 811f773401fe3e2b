// The README's example: `cajal train --spec examples/mlp.yaml` (5 epochs of an MLP on
// Fashion-MNIST) reaches at least 88% test accuracy.
#include <regex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/slow/cajal_train.h"

namespace cajal {
namespace {

TEST(FashionMnistMlpTest, ReachesTheReadmeAccuracy) {
  if (::access(kFashionMnistTrain, F_OK) != 0) GTEST_SKIP() << kFashionMnistTrain << " is missing";
  const std::vector<std::string> lines = CajalTrain("mlp.yaml");
  ASSERT_FALSE(HasFailure());
  const std::regex epoch(
      R"(epoch=\d loss=\d+\.\d{4} accuracy=\d\.\d{4} val_loss=\d+\.\d{4} val_accuracy=\d\.\d{4})");
  for (int i = 0; i < 5 && i < static_cast<int>(lines.size()); ++i) {
    EXPECT_TRUE(std::regex_match(lines[i], epoch)) << lines[i];
  }
  EXPECT_GE(FinalTestAccuracy(lines), 0.88);
}

}  // namespace
}  // namespace cajal
