// The CUDA backend against the CPU backend (label gpu; skipped, saying why, when this process
// sees no GPU or the build has no CUDA backend): every layer case of backend_parity.h (the
// convolution too), the losses, every optimizer, the whole-buffer operations, 200-step jobs
// whose loss curves must match, models trained on one backend and evaluated on the other,
// and the GPU's errors (hessian_free refused, out of memory as RESOURCE_EXHAUSTED). The same
// checks run on the CPU against the emulated device (tests/unit/device_backend_test.cc).
#include <omp.h>

#include <string>

#include "core/backend/registry.h"
#include "core/train/job.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/backend_parity.h"
#include "tests/unit/device_job_checks.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

// The first visible GPU's backend, or null with the reason in `why`.
Backend* Gpu(std::string* why) {
  if (!HasCudaBackend()) {
    *why = "this build has no CUDA backend (CAJAL_CUDA found no nvcc/cuDNN)";
    return nullptr;
  }
  if (VisibleGpuCount() == 0) {
    *why = "no CUDA device is visible to this process";
    return nullptr;
  }
  absl::StatusOr<Backend*> gpu = GetBackend({DeviceChoice::kGpu});
  if (!gpu.ok()) {
    *why = std::string(gpu.status().message());
    return nullptr;
  }
  return *gpu;
}

#define REQUIRE_GPU(var)          \
  std::string why_##var;          \
  Backend* var = Gpu(&why_##var); \
  if (var == nullptr) GTEST_SKIP() << why_##var

class GpuParityTest : public ::testing::TestWithParam<ParityCase> {};

TEST_P(GpuParityTest, MatchesTheCpuBackend) {
  REQUIRE_GPU(gpu);
  omp_set_num_threads(1);
  CheckLayerParity(GetParam(), CpuBackend(), gpu);
}

INSTANTIATE_TEST_SUITE_P(Layers, GpuParityTest, ::testing::ValuesIn(ParityCases()),
                         [](const auto& info) { return info.param.name; });

TEST(GpuBackendTest, IsChosenByAutoAndNamed) {
  REQUIRE_GPU(gpu);
  absl::StatusOr<Backend*> any = GetBackend({DeviceChoice::kAuto});
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(*any, gpu);
  EXPECT_EQ(gpu->name(), "gpu:0");
  EXPECT_EQ(gpu->kind(), DeviceKind::kGpu);
  EXPECT_FALSE(gpu->host_visible());
  absl::StatusOr<GpuInfo> info = GetGpuInfo(0);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->name.empty());
  EXPECT_GT(info->total_bytes, 0);
  EXPECT_LE(info->free_bytes, info->total_bytes);
}

TEST(GpuBackendTest, LossesMatchTheCpuBackend) {
  REQUIRE_GPU(gpu);
  for (const LossCheck& check : LossChecks()) CheckLossParity(check, CpuBackend(), gpu);
}

TEST(GpuBackendTest, OptimizerUpdatesMatchTheCpuBackend) {
  REQUIRE_GPU(gpu);
  CheckOptimizerParity(CpuBackend(), gpu);
}

TEST(GpuBackendTest, WholeBufferOperationsMatchTheCpuBackend) {
  REQUIRE_GPU(gpu);
  CheckBufferOpsParity(CpuBackend(), gpu);
}

TEST(GpuBackendTest, OutOfDeviceMemoryIsResourceExhaustedNamingTheCall) {
  REQUIRE_GPU(gpu);
  absl::StatusOr<DeviceBuffer> huge = gpu->Allocate(size_t{1} << 50);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(huge.status().message(), HasSubstr("cudaMalloc"));
  EXPECT_THAT(huge.status().message(), HasSubstr("1125899906842624 bytes"));
  // The failure is not sticky: the device still works.
  EXPECT_TRUE(gpu->Allocate(1024).ok());
}

TEST(GpuBackendTest, MlpJobFollowsTheCpuLossCurveFor200Steps) {
  REQUIRE_GPU(gpu);
  CheckJobCurves(MlpJob(/*max_steps=*/200), CpuBackend(), gpu, /*rel_tol=*/1e-3);
}

TEST(GpuBackendTest, LstmJobFollowsTheCpuLossCurveFor200Steps) {
  REQUIRE_GPU(gpu);
  CheckJobCurves(LstmJob(/*max_steps=*/200), CpuBackend(), gpu, /*rel_tol=*/1e-3);
}

TEST(GpuBackendTest, CnnJobFollowsTheCpuLossCurve) {
  REQUIRE_GPU(gpu);
  JobConfig c = MlpJob(/*max_steps=*/100);
  c.layers = {Conv2dSpec{8, 5, 1, 2}, ActivationSpec{Activation::kRelu}, Pool2dSpec{true, 2},
              FlattenSpec{}, DenseSpec{10}};
  CheckJobCurves(c, CpuBackend(), gpu, /*rel_tol=*/1e-3);
}

TEST(GpuBackendTest, ModelsMoveBetweenGpuAndCpu) {
  REQUIRE_GPU(gpu);
  CheckTrainedHereEvaluatedThere(MlpJob(/*max_steps=*/300), gpu, CpuBackend());
  CheckTrainedHereEvaluatedThere(MlpJob(/*max_steps=*/300), CpuBackend(), gpu);
}

TEST(GpuBackendTest, HessianFreeIsRefused) {
  REQUIRE_GPU(gpu);
  JobConfig c = MlpJob(/*max_steps=*/1);
  c.optimizer.kind = OptimizerKind::kHessianFree;
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(c, gpu);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("hessian_free runs on the cpu only"));
}

}  // namespace
}  // namespace cajal
