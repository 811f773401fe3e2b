// The Fashion-MNIST accuracy targets of tests/slow/, on the GPU (labels gpu and slow; skipped,
// saying why, without a visible GPU): the real `cajal train` on the README's MLP, DESIGN.md's
// CNN and the LSTM example with training.device=gpu, 5 epochs each. The GPU run prints which
// device it trains on before the metrics lines; FinalTestAccuracy reads the last six lines.
#include <cstdlib>
#include <string>
#include <vector>

#include "core/backend/registry.h"
#include "gtest/gtest.h"
#include "tests/slow/cajal_train.h"

namespace cajal {
namespace {

// Fashion-MNIST where `cajal train` looks for it: $CAJAL_DATA_DIR, else the Debian package's.
bool HaveFashionMnist() {
  const char* dir = std::getenv("CAJAL_DATA_DIR");
  if (dir != nullptr) {
    return ::access((std::string(dir) + "/train-images-idx3-ubyte.gz").c_str(), F_OK) == 0;
  }
  return ::access(kFashionMnistTrain, F_OK) == 0;
}

#define REQUIRE_GPU_AND_DATA()                                                             \
  if (!HasCudaBackend()) GTEST_SKIP() << "this build has no CUDA backend";                 \
  if (VisibleGpuCount() == 0) GTEST_SKIP() << "no CUDA device is visible to this process"; \
  if (!HaveFashionMnist()) GTEST_SKIP() << "Fashion-MNIST is missing (set CAJAL_DATA_DIR)"

// The lines after the device line `cajal: training on gpu:0 ...`.
std::vector<std::string> MetricsLines(const std::string& example) {
  std::vector<std::string> lines = CajalTrain(example, "--set training.device=gpu");
  EXPECT_FALSE(lines.empty());
  if (!lines.empty() && lines[0].rfind("cajal: training on gpu:", 0) == 0) {
    lines.erase(lines.begin());
  } else {
    ADD_FAILURE() << "no device line first";
  }
  return lines;
}

TEST(GpuAccuracyTest, MlpReachesTheReadmeAccuracy) {
  REQUIRE_GPU_AND_DATA();
  EXPECT_GE(FinalTestAccuracy(MetricsLines("mlp.yaml")), 0.88);
}

TEST(GpuAccuracyTest, DesignCnnReaches91Percent) {
  REQUIRE_GPU_AND_DATA();
  EXPECT_GE(FinalTestAccuracy(MetricsLines("cnn.yaml")), 0.91);
}

TEST(GpuAccuracyTest, LstmReaches87Percent) {
  REQUIRE_GPU_AND_DATA();
  EXPECT_GE(FinalTestAccuracy(MetricsLines("lstm.yaml")), 0.87);
}

}  // namespace
}  // namespace cajal
