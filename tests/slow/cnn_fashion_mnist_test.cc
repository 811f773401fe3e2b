// The CNN of DESIGN.md, exactly as written there (examples/cnn.yaml: conv 5×5×32 p2, relu,
// maxpool 2, conv 5×5×64 p2, relu, maxpool 2, flatten, dense 1024, relu, dense 10; Adam 1e-3;
// batch 64; 5 epochs), reaches at least 91% test accuracy on Fashion-MNIST through
// `cajal train`.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/slow/cajal_train.h"

namespace cajal {
namespace {

TEST(CnnFashionMnistTest, DesignCnnReaches91PercentIn5Epochs) {
  if (::access(kFashionMnistTrain, F_OK) != 0) GTEST_SKIP() << kFashionMnistTrain << " is missing";
  const std::vector<std::string> lines = CajalTrain("cnn.yaml");
  ASSERT_FALSE(HasFailure());
  EXPECT_GE(FinalTestAccuracy(lines), 0.91);
}

}  // namespace
}  // namespace cajal
