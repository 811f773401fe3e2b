// Admission at submit (service/server/admission.h) without a server: the estimate of a spec, the
// capacity (kInvalidArgument: could never fit), the live budget (kResourceExhausted: cannot
// fit now, with the running jobs' reservations counted back), a GPU's memory for the device
// part (a fake GPU source: no GPU is needed), and the estimate as GetJob shows it.
#include "service/server/admission.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kGB = 1'000'000'000;
constexpr int64_t kMB = 1'000'000;

JobConfig Config(const std::string& yaml) {
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(yaml, {});
  EXPECT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<JobConfig> config = ToJobConfig(*spec);
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

constexpr char kXor[] = R"(
model: {layers: [{dense: {units: 8}}, {activation: {kind: tanh}}, {dense: {units: 2}}]}
data: {train: {builtin: xor}}
optimizer: {kind: sgd, learning_rate: 0.05}
training: {epochs: 3, batch_size: 4}
)";

// Two dense layers of 10^6 units: 4 TB of parameters in the second.
constexpr char kHugeDense[] = R"(
model: {layers: [{dense: {units: 1000000}}, {dense: {units: 1000000}}, {dense: {units: 2}}]}
data: {train: {builtin: xor}}
optimizer: {kind: sgd, learning_rate: 0.05}
training: {epochs: 1, batch_size: 4}
)";

AdmissionOptions Options(int64_t capacity, int64_t live = INT64_MAX, int gpus = 0) {
  AdmissionOptions o;
  o.capacity = FlagBudget(capacity, "--max_job_memory");
  o.live = [live] { return MemoryBudget{live, "the test's live budget"}; };
  o.gpus = gpus;
  return o;
}

// An estimate made by hand: host items, and device items when `device_bytes` > 0.
Admitted Made(int64_t host_bytes, int64_t device_bytes = 0) {
  Admitted a;
  a.estimate.items.push_back({"model.layers.0.dense", "parameters", host_bytes * 3 / 4, false});
  a.estimate.items.push_back({"plans", "activations and their gradients", host_bytes / 4, false});
  a.estimate.host_bytes = host_bytes * 3 / 4 + host_bytes / 4;
  if (device_bytes > 0) {
    a.estimate.items.push_back({"model.layers.1.conv2d", "kernel buffers", device_bytes, true});
    a.estimate.device_bytes = device_bytes;
  }
  a.demand = {a.estimate.host_bytes, device_bytes > 0};
  return a;
}

TEST(AdmissionTest, EstimatesASpecOnTheCpu) {
  Admission admission(Options(8 * kGB));
  absl::StatusOr<Admitted> a = admission.Estimate(Config(kXor));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->estimate.parameters, 2 * 8 + 8 + 8 * 2 + 2);
  EXPECT_GT(a->estimate.host_bytes, 0);
  EXPECT_EQ(a->estimate.device_bytes, 0);
  EXPECT_EQ(a->demand.host_bytes, a->estimate.host_bytes);
  EXPECT_FALSE(a->demand.gpu);
  for (const MemoryItem& item : a->estimate.items) {
    EXPECT_NE(item.where, "runtime") << "a server counts its own baseline once, not per job";
  }
  EXPECT_TRUE(admission.CheckCapacity(*a).ok());
  EXPECT_TRUE(admission.CheckNow(*a, /*reserved=*/0).ok());
}

TEST(AdmissionTest, OverTheCapacityCouldNeverRun) {
  Admission admission(Options(20 * kGB));
  absl::StatusOr<Admitted> a = admission.Estimate(Config(kHugeDense));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->estimate.Biggest().where, "model.layers.1.dense");
  const absl::Status s = admission.CheckCapacity(*a);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("too large for this server: the job needs an estimated "));
  EXPECT_THAT(s.message(), HasSubstr("the memory budget is 20.0 GB (--max_job_memory)"));
  EXPECT_THAT(s.message(),
              HasSubstr("the biggest part: model.layers.1.dense: 4.0 TB of parameters"));
}

TEST(AdmissionTest, OverWhatCouldBeGivenNowIsResourceExhausted) {
  // The process could give 1 GB now (beyond the server's baseline); the capacity is larger.
  const int64_t live = kGB + kRuntimeBaselineBytes;
  Admission admission(Options(/*capacity=*/10 * kGB, live));
  EXPECT_TRUE(admission.CheckNow(Made(kGB), /*reserved=*/0).ok()) << "exactly what is free";
  const absl::Status s = admission.CheckNow(Made(1200 * kMB), /*reserved=*/0);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("not enough memory is free on this server now"));
  EXPECT_THAT(s.message(), HasSubstr("the job needs an estimated 1.2 GB"));
  EXPECT_THAT(s.message(), HasSubstr("the memory budget is 1.0 GB"));
  EXPECT_THAT(s.message(), HasSubstr("the test's live budget"));
  EXPECT_THAT(s.message(), HasSubstr("the biggest part: model.layers.0.dense: 900.0 MB"));
  // The server's running jobs hold 500 MB: they will give it back, so the job may wait.
  EXPECT_TRUE(admission.CheckNow(Made(1200 * kMB), /*reserved=*/500 * kMB).ok());
  // Never above the capacity, whatever the running jobs hold.
  Admission small(Options(/*capacity=*/1100 * kMB, live));
  EXPECT_EQ(small.CheckNow(Made(1200 * kMB), /*reserved=*/5 * kGB).code(),
            absl::StatusCode::kResourceExhausted);
  // No limit known: only the capacity counts.
  Admission unlimited(Options(/*capacity=*/2 * kGB, /*live=*/INT64_MAX));
  EXPECT_TRUE(unlimited.CheckNow(Made(1200 * kMB), 0).ok());
}

TEST(AdmissionTest, GpuJobsAndTheGpusMemory) {
  Admission cpu_only(Options(8 * kGB, INT64_MAX, /*gpus=*/0));
  JobConfig config = Config(kXor);
  EXPECT_FALSE(cpu_only.NeedsGpu(config)) << "auto without GPUs: the CPU";
  config.device = DeviceChoice::kGpu;
  EXPECT_TRUE(cpu_only.NeedsGpu(config));
  config.device = DeviceChoice::kCpu;
  AdmissionOptions o = Options(8 * kGB, INT64_MAX, /*gpus=*/2);
  o.gpu_info = [](int gpu) -> absl::StatusOr<GpuInfo> {
    return GpuInfo{"Test GPU", gpu == 0 ? 80 * kGB : 40 * kGB, 0};
  };
  Admission gpus(o);
  EXPECT_FALSE(gpus.NeedsGpu(config)) << "device: cpu stays on the CPU";
  config.device = DeviceChoice::kAuto;
  EXPECT_TRUE(gpus.NeedsGpu(config)) << "auto with GPUs: a GPU";

  // The device part against the smallest GPU less 10% (36 GB), the host part against the
  // capacity.
  EXPECT_TRUE(gpus.CheckCapacity(Made(kGB, /*device_bytes=*/30 * kGB)).ok());
  absl::Status s = gpus.CheckCapacity(Made(kGB, /*device_bytes=*/50 * kGB));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("too large for this server's GPUs"));
  EXPECT_THAT(s.message(), HasSubstr("GPU 1 (Test GPU) has 40.0 GB, less 10%"));
  EXPECT_THAT(s.message(), HasSubstr("model.layers.1.conv2d: 50.0 GB of kernel buffers"));
  s = gpus.CheckCapacity(Made(9 * kGB, /*device_bytes=*/kGB));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              HasSubstr("too large for this server: the job needs an estimated 9.0 GB"));
  // The host part alone counts toward what the server could give now.
  Admission live(Options(100 * kGB, 2 * kGB + kRuntimeBaselineBytes, 2));
  EXPECT_TRUE(live.CheckNow(Made(kGB, /*device_bytes=*/50 * kGB), 0).ok());
}

TEST(AdmissionTest, EstimateAsGetJobShowsIt) {
  Admitted a = Made(kGB, /*device_bytes=*/2 * kGB);
  a.estimate.parameters = 1234;
  const v1::MemoryEstimate p = ToProto(a.estimate);
  EXPECT_EQ(p.total_bytes(), 3 * kGB);
  EXPECT_EQ(p.host_bytes(), kGB);
  EXPECT_EQ(p.device_bytes(), 2 * kGB);
  EXPECT_EQ(p.parameters(), 1234);
  EXPECT_EQ(p.biggest().where(), "model.layers.1.conv2d");
  EXPECT_EQ(p.biggest().what(), "kernel buffers");
  EXPECT_EQ(p.biggest().bytes(), 2 * kGB);
  EXPECT_TRUE(p.biggest().device());
}

TEST(AdmissionTest, DefaultCapacityIsTheProcessBudgetLessTheServersBaseline) {
  const MemoryBudget budget = DefaultJobMemory();
  EXPECT_GT(budget.bytes, 0);
  EXPECT_LT(budget.bytes, ProcessMemoryBudget().bytes + kGB);  // both read now; allow drift
  EXPECT_THAT(budget.source, HasSubstr("when cajald started, less its own baseline"));
}

}  // namespace
}  // namespace cajal
