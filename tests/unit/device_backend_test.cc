// The CUDA backend's layer algorithms, run on the CPU: the device backend on HostOps (the
// emulated device, core/backend/cuda/host_ops.h) against the oneDNN backend — every layer case
// of backend_parity.h but the convolution (cuDNN's), the losses, every optimizer, the
// whole-buffer operations, and training jobs (loss curves, a model trained on the device
// evaluated on the CPU, the batch uploads of a device whose memory the host cannot touch).
// tests/gpu/ runs the same cases against the real CUDA backend when a GPU is visible.
#include "core/backend/cuda/device_backend.h"

#include <omp.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/backend/registry.h"
#include "core/collective/collective.h"
#include "core/io/model_file.h"
#include "core/loss/loss.h"
#include "core/train/job.h"
#if CAJAL_HAVE_NCCL
#include "core/collective/nccl/nccl_collective.h"
#endif
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/backend_parity.h"
#include "tests/unit/device_job_checks.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

Backend* Emulated() {
  static Backend* backend = MakeEmulatedDeviceBackend().release();
  return backend;
}

class EmulatedParityTest : public ::testing::TestWithParam<ParityCase> {};

TEST_P(EmulatedParityTest, MatchesTheCpuBackend) {
  omp_set_num_threads(1);
  if (GetParam().needs_conv) {
    GTEST_SKIP() << "the emulated device has no convolution (cuDNN's; tests/gpu runs it)";
  }
  CheckLayerParity(GetParam(), CpuBackend(), Emulated());
}

INSTANTIATE_TEST_SUITE_P(Layers, EmulatedParityTest, ::testing::ValuesIn(ParityCases()),
                         [](const auto& info) { return info.param.name; });

TEST(EmulatedDeviceTest, IsAGpuKindBackendWhoseMemoryTheHostDoesNotTouch) {
  EXPECT_EQ(Emulated()->kind(), DeviceKind::kGpu);
  EXPECT_FALSE(Emulated()->host_visible());
  absl::StatusOr<std::unique_ptr<Kernel>> conv =
      Emulated()->MakeKernel(Conv2dSpec{2, 3}, KernelArgs{});
  EXPECT_EQ(conv.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(conv.status().message(), HasSubstr("cuDNN"));
}

TEST(EmulatedDeviceTest, LossesMatchTheCpuBackend) {
  for (const LossCheck& check : LossChecks()) CheckLossParity(check, CpuBackend(), Emulated());
}

TEST(EmulatedDeviceTest, OptimizerUpdatesMatchTheCpuBackend) {
  CheckOptimizerParity(CpuBackend(), Emulated());
}

TEST(EmulatedDeviceTest, WholeBufferOperationsMatchTheCpuBackend) {
  CheckBufferOpsParity(CpuBackend(), Emulated());
}

TEST(EmulatedDeviceTest, BatchNormWithSyncedStatisticsIsRefused) {
  KernelArgs args;
  args.batch = 2;
  args.input = args.output = {3};
  std::vector<float> v(3);
  args.params = {{"scale", v.data(), v.data()},
                 {"shift", v.data(), v.data()},
                 {"running_mean", v.data(), v.data()},
                 {"running_var", v.data(), v.data()}};
  args.sync_batch_norm = reinterpret_cast<Collective*>(&v);  // any non-null collective
  absl::StatusOr<std::unique_ptr<Kernel>> k = Emulated()->MakeKernel(BatchNormSpec{}, args);
  EXPECT_EQ(k.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(k.status().message(), HasSubstr("sync_batch_norm"));
}

TEST(EmulatedDeviceTest, MlpJobFollowsTheCpuLossCurveFor200Steps) {
  CheckJobCurves(MlpJob(/*max_steps=*/200), CpuBackend(), Emulated(), /*rel_tol=*/1e-3);
}

TEST(EmulatedDeviceTest, LstmJobFollowsTheCpuLossCurve) {
  CheckJobCurves(LstmJob(/*max_steps=*/40), CpuBackend(), Emulated(), /*rel_tol=*/1e-3);
}

TEST(EmulatedDeviceTest, ModelTrainedOnTheDeviceEvaluatesTheSameOnTheCpu) {
  CheckTrainedHereEvaluatedThere(MlpJob(/*max_steps=*/50), Emulated(), CpuBackend());
  CheckTrainedHereEvaluatedThere(MlpJob(/*max_steps=*/50), CpuBackend(), Emulated());
}

TEST(EmulatedDeviceTest, HessianFreeIsRefusedOnAGpuKindBackend) {
  JobConfig c = MlpJob(/*max_steps=*/1);
  c.optimizer.kind = OptimizerKind::kHessianFree;
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(c, Emulated());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("hessian_free runs on the cpu only"));
  EXPECT_THAT(job.status().message(), HasSubstr("emulated-gpu"));
}

TEST(RegistryGpuTest, GpuInfoAndTheDefaultGpuWithoutAGpu) {
  if (VisibleGpuCount() > 0) GTEST_SKIP() << "a GPU is visible (tests/gpu checks GetGpuInfo)";
  absl::StatusOr<GpuInfo> info = GetGpuInfo(0);
  if (HasCudaBackend()) {
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(info.status().message(), HasSubstr("gpu 0 does not exist: 0 visible"));
  } else {
    EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(info.status().message(), HasSubstr("no CUDA backend"));
  }
  EXPECT_EQ(DefaultGpu(), 0);
  SetDefaultGpu(3);
  EXPECT_EQ(DefaultGpu(), 3);
  // Without a GPU the default changes nothing: auto is the CPU, gpu a clear error.
  absl::StatusOr<Backend*> any = GetBackend({DeviceChoice::kAuto});
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(*any, CpuBackend());
  EXPECT_EQ(GetBackend({DeviceChoice::kGpu}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  SetDefaultGpu(0);
}

#if CAJAL_HAVE_NCCL
TEST(NcclCollectiveTest, WithoutAGpuTheHostCollectiveIsKept) {
  if (VisibleGpuCount() > 0) GTEST_SKIP() << "a GPU is visible";
  std::unique_ptr<Collective> host = SingleProcessCollective();
  Collective* before = host.get();
  std::unique_ptr<Collective> c = WrapForGpus(std::move(host));
  EXPECT_EQ(c.get(), before);
  EXPECT_EQ(DefaultGpu(), 0);
}
#endif

}  // namespace
}  // namespace cajal
