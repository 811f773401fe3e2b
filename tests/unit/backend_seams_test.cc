// The core's seams: the device registry, backend-owned memory, the element-wise math shared
// with the CUDA backend (optimizer updates, the counter-based dropout generator), named
// parameter binding, and the gradient reducer's buckets over a recording collective.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/backend/registry.h"
#include "core/collective/collective.h"
#include "core/optim/update.h"
#include "core/train/data_parallel.h"
#include "core/train/job.h"
#include "core/train/network.h"
#include "core/util/counter_rng.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

TEST(RegistryTest, CpuIsAlwaysThereAndAutoFallsBackToIt) {
  absl::StatusOr<Backend*> cpu = GetBackend({DeviceChoice::kCpu});
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(*cpu, CpuBackend());
  EXPECT_EQ((*cpu)->name(), "cpu");
  if (VisibleGpuCount() > 0) GTEST_SKIP() << "a GPU is visible; auto picks it";
  absl::StatusOr<Backend*> any = GetBackend({DeviceChoice::kAuto});
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(*any, CpuBackend());
}

TEST(RegistryTest, GpuWithoutADeviceIsAClearError) {
  if (VisibleGpuCount() > 0) GTEST_SKIP() << "a GPU is visible";
  absl::StatusOr<Backend*> gpu = GetBackend({DeviceChoice::kGpu});
  EXPECT_EQ(gpu.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(gpu.status().message(), HasSubstr("training.device: gpu, but"));

  JobConfig c;
  c.layers = {DenseSpec{2}};
  c.train.kind = DataSourceConfig::Kind::kBuiltin;
  c.train.builtin = "xor";
  c.device = DeviceChoice::kGpu;
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(c);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(job.status().message(), HasSubstr("training.device: gpu"));
}

TEST(CpuBackendTest, AllocationsAreZeroedAlignedAndRefusedWhenTooLarge) {
  Backend* cpu = CpuBackend();
  for (size_t bytes : {size_t{100}, size_t{3} << 20}) {
    absl::StatusOr<DeviceBuffer> b = cpu->Allocate(bytes);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->get()) % 64, 0u);
    const auto* p = static_cast<const unsigned char*>(b->get());
    EXPECT_EQ(std::count(p, p + bytes, 0), static_cast<long>(bytes));
  }
  // A petabyte: refused with a status, not a crash.
  absl::StatusOr<DeviceBuffer> huge = cpu->Allocate(size_t{1} << 50);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(huge.status().message(), HasSubstr("cannot allocate 1125899906842624 bytes"));
}

TEST(CpuBackendTest, ParametersThatCannotFitAreResourceExhaustedNamingThem) {
  // 10^6 × 10^6 weights: 4 TB.
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create({DenseSpec{1000000}, DenseSpec{1000000}}, {784}, CpuBackend());
  EXPECT_EQ(net.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(net.status().message(), HasSubstr("the network's parameters"));
}

// The CPU backend's update loop and the element-wise function the CUDA kernels call agree for
// every optimizer: to an ulp or two, not bit for bit, since the loop's AVX2/AVX-512 clones
// contract a·b + c into one fused multiply-add where this test's scalar code does not.
TEST(UpdateMathTest, CpuBackendRunsTheSharedElementFunctions) {
  constexpr int64_t kN = 1000;
  for (OptimizerKind kind :
       {OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kNesterov,
        OptimizerKind::kRmsprop, OptimizerKind::kAdagrad, OptimizerKind::kAdam,
        OptimizerKind::kAdadelta, OptimizerKind::kPerceptronRule}) {
    UpdateParams u;
    u.kind = kind;
    u.lr = 0.01f;
    u.weight_decay = 0.001f;
    u.grad_scale = 0.5f;
    AdamCoefficients(3, &u);
    std::vector<float> p(kN), g(kN), s0(kN), s1(kN);
    for (int64_t i = 0; i < kN; ++i) {
      p[i] = std::sin(0.1f * i);
      g[i] = std::cos(0.3f * i);
      s0[i] = 0.01f * (i % 7);
      s1[i] = 0.02f * (i % 5);
    }
    std::vector<float> p2 = p, s02 = s0, s12 = s1;
    ASSERT_TRUE(CpuBackend()->ApplyUpdate(u, p.data(), g.data(), s0.data(), s1.data(), kN).ok());
    for (int64_t i = 0; i < kN; ++i) UpdateOne(u, p2[i], g[i], s02[i], s12[i]);
    auto near = [](float a, float b) {
      return std::abs(a - b) <= 1e-6f * std::max(1.0f, std::abs(a));
    };
    for (int64_t i = 0; i < kN; ++i) {
      ASSERT_TRUE(near(p[i], p2[i]))
          << static_cast<int>(kind) << " at " << i << ": " << p[i] << " vs " << p2[i];
      ASSERT_TRUE(near(s0[i], s02[i])) << static_cast<int>(kind) << " at " << i;
      ASSERT_TRUE(near(s1[i], s12[i])) << static_cast<int>(kind) << " at " << i;
    }
    // And the update did something: not a no-op that trivially agrees.
    EXPECT_NE(p[0], std::sin(0.0f)) << static_cast<int>(kind);
  }
}

TEST(UpdateMathTest, AdamMatchesItsDefinition) {
  UpdateParams u;
  u.kind = OptimizerKind::kAdam;
  u.lr = 0.1f;
  AdamCoefficients(1, &u);
  float p = 1.0f, m = 0.0f, v = 0.0f;
  UpdateOne(u, p, /*g=*/2.0f, m, v);
  // Step 1: m̂ = g, v̂ = g², so θ −= lr·g/(|g| + ε) ≈ lr.
  EXPECT_NEAR(p, 1.0f - 0.1f, 1e-6);
  EXPECT_FLOAT_EQ(m, (1 - 0.9f) * 2.0f);
  EXPECT_FLOAT_EQ(v, (1 - 0.999f) * 4.0f);
}

TEST(CounterRngTest, MasksAreAPureFunctionOfSeedLayerStepAndIndex) {
  const uint64_t key = StreamKey(/*seed=*/7, /*layer=*/2, /*step=*/11);
  EXPECT_EQ(key, StreamKey(7, 2, 11));
  EXPECT_NE(key, StreamKey(7, 2, 12));
  EXPECT_NE(key, StreamKey(7, 3, 11));
  EXPECT_NE(key, StreamKey(8, 2, 11));
  // Uniform: the drop rate and the mean are what they should be over 10^6 draws.
  constexpr int kDraws = 1000000;
  int dropped = 0;
  double sum = 0;
  for (int i = 0; i < kDraws; ++i) {
    const float u = UniformAt(key, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    if (DropoutScale(key, static_cast<uint64_t>(i), 0.3f) == 0.0f) ++dropped;
  }
  EXPECT_NEAR(static_cast<double>(dropped) / kDraws, 0.3, 0.002);
  EXPECT_NEAR(sum / kDraws, 0.5, 0.002);
  EXPECT_FLOAT_EQ(DropoutScale(key, 0, 0.0f), 1.0f);
}

// The CPU dropout kernel draws its mask from the shared generator: a forward at (seed, layer,
// step) keeps exactly the elements the generator keeps.
TEST(CounterRngTest, CpuDropoutKernelDrawsTheSharedMask) {
  constexpr int64_t kBatch = 4, kFeatures = 64;
  constexpr uint64_t kSeed = 9;
  absl::StatusOr<std::unique_ptr<Network>> net = Network::Create(
      {ActivationSpec{Activation::kLinear}, DropoutSpec{0.5f}}, {kFeatures}, CpuBackend(), {kSeed});
  ASSERT_TRUE(net.ok()) << net.status();
  absl::StatusOr<Plan*> plan = (*net)->GetPlan(kBatch, Mode::kTrain);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::fill((*plan)->input(), (*plan)->input() + kBatch * kFeatures, 1.0f);
  ASSERT_TRUE((*plan)->Forward(/*step=*/5).ok());
  const uint64_t key = StreamKey(kSeed, /*layer=*/1, /*step=*/5);
  for (int64_t i = 0; i < kBatch * kFeatures; ++i) {
    ASSERT_EQ((*plan)->output()[i], DropoutScale(key, static_cast<uint64_t>(i), 0.5f)) << i;
  }
}

// Records the reductions it is asked for; sums nothing (one rank).
class RecordingCollective : public Collective {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_size() const override { return 2; }
  std::string name() const override { return "recording"; }
  absl::Status AllReduceSum(float*, int64_t) override { return absl::OkStatus(); }
  absl::Status AllReduceSum(double*, int64_t) override { return absl::OkStatus(); }
  absl::StatusOr<Request> StartAllReduce(float* data, int64_t n) override {
    started.push_back({data, n});
    return static_cast<Request>(started.size() - 1);
  }
  absl::Status Wait(Request r) override {
    waited.push_back(r);
    return absl::OkStatus();
  }
  void Poll() override {}
  absl::Status Broadcast(float*, int64_t, int) override { return absl::OkStatus(); }
  absl::Status Broadcast(std::string*, int) override { return absl::OkStatus(); }
  absl::Status Barrier() override { return absl::OkStatus(); }
  void Abort(const std::string&, int) override {}

  std::vector<std::pair<float*, int64_t>> started;
  std::vector<Request> waited;
};

// The buckets cover every trainable gradient exactly once, start from the top layer down during
// the backward pass (each as soon as its lowest layer is done), and Finish waits for all.
TEST(GradientReducerTest, BucketsCoverTheGradientsAndStartDuringBackward) {
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create({DenseSpec{300}, ActivationSpec{Activation::kRelu}, DenseSpec{200},
                       BatchNormSpec{}, DenseSpec{10}},
                      {100}, CpuBackend());
  ASSERT_TRUE(net.ok()) << net.status();
  RecordingCollective rec;
  // Buckets of at least 2,000 floats: dense 4 (2,010) alone, batch norm + dense 2 (60,600),
  // dense 0 (30,300).
  std::unique_ptr<GradientReducer> r = GradientReducer::Create(net->get(), &rec, 2000);
  const ParamStore& store = (*net)->params();
  int64_t covered = 0, expected_end = store.trainable_total();
  for (const GradientReducer::Bucket& b : r->buckets()) {
    EXPECT_EQ(b.end, expected_end);  // contiguous, from the top down
    covered += b.end - b.begin;
    expected_end = b.begin;
  }
  EXPECT_EQ(expected_end, 0);
  EXPECT_EQ(covered, store.trainable_total());
  ASSERT_EQ(r->buckets().size(), 3u);
  EXPECT_EQ(r->buckets()[0].first_layer, 4);

  absl::StatusOr<Plan*> plan = (*net)->GetPlan(8, Mode::kTrain);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE((*plan)->Forward(1).ok());
  // Recorded after each layer: how many buckets had started.
  struct Probe : BackwardListener {
    GradientReducer* r;
    RecordingCollective* rec;
    std::map<int, size_t> started_after;
    absl::Status OnLayerBackward(int layer) override {
      absl::Status s = r->OnLayerBackward(layer);
      started_after[layer] = rec->started.size();
      return s;
    }
  } probe;
  probe.r = r.get();
  probe.rec = &rec;
  ASSERT_TRUE((*plan)->Backward(5, &probe).ok());
  EXPECT_EQ(probe.started_after[4], 1u);  // dense 4's bucket, before the layers below ran
  EXPECT_EQ(probe.started_after[3], 1u);
  EXPECT_EQ(probe.started_after[2], 2u);
  EXPECT_EQ(probe.started_after[0], 3u);
  ASSERT_TRUE(r->Finish().ok());
  EXPECT_EQ(rec.waited.size(), 3u);
  for (size_t i = 0; i < rec.started.size(); ++i) {
    EXPECT_EQ(rec.started[i].first, (*net)->params().grads() + r->buckets()[i].begin);
    EXPECT_EQ(rec.started[i].second, r->buckets()[i].end - r->buckets()[i].begin);
  }
}

// Synchronized batch norm over one process is batch norm: the loops of sync_batch_norm.cc
// against oneDNN's primitive, forward, input gradient, scale and shift gradients and the
// running statistics, on an image batch.
TEST(SyncBatchNormTest, OverOneRankItEqualsOneDnnsBatchNorm) {
  constexpr int64_t kBatch = 6;
  const Shape shape = {3, 5, 4};
  const int64_t count = kBatch * NumElements(shape);
  std::unique_ptr<Collective> one = SingleProcessCollective();
  struct Bound {
    std::vector<float> src, dst, diff_dst, diff_src, scale, shift, mean, var, dscale, dshift;
    KernelArgs args;
  };
  auto bind = [&](Collective* sync) {
    auto b = std::make_unique<Bound>();
    b->src.resize(count);
    b->diff_dst.resize(count);
    for (int64_t i = 0; i < count; ++i) {
      b->src[i] = std::sin(0.37f * i) * 2 + 0.1f * (i % 3);
      b->diff_dst[i] = std::cos(0.11f * i);
    }
    b->dst.assign(count, 0);
    b->diff_src.assign(count, 0);
    b->scale = {1.5f, 0.5f, -1.0f};
    b->shift = {0.1f, -0.2f, 0.3f};
    b->mean.assign(3, 0);
    b->var.assign(3, 1);
    b->dscale.assign(3, 0);
    b->dshift.assign(3, 0);
    KernelArgs& a = b->args;
    a.batch = kBatch;
    a.input = a.output = shape;
    a.src = b->src.data();
    a.dst = b->dst.data();
    a.diff_dst = b->diff_dst.data();
    a.diff_src = b->diff_src.data();
    a.params = {{"scale", b->scale.data(), b->dscale.data()},
                {"shift", b->shift.data(), b->dshift.data()},
                {"running_mean", b->mean.data(), nullptr},
                {"running_var", b->var.data(), nullptr}};
    a.sync_batch_norm = sync;
    return b;
  };
  std::unique_ptr<Bound> ref = bind(nullptr), sync = bind(one.get());
  for (Bound* b : {ref.get(), sync.get()}) {
    absl::StatusOr<std::unique_ptr<Kernel>> k =
        CpuBackend()->MakeKernel(BatchNormSpec{0.9f, 1e-5f}, b->args);
    ASSERT_TRUE(k.ok()) << k.status();
    ASSERT_TRUE((*k)->Forward(1).ok());
    ASSERT_TRUE((*k)->Backward().ok());
  }
  auto expect_near = [](const std::vector<float>& a, const std::vector<float>& b,
                        const char* what) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_NEAR(a[i], b[i], 1e-4 * std::max(1.0f, std::abs(a[i]))) << what << " " << i;
    }
  };
  expect_near(ref->dst, sync->dst, "dst");
  expect_near(ref->diff_src, sync->diff_src, "diff_src");
  expect_near(ref->dscale, sync->dscale, "dscale");
  expect_near(ref->dshift, sync->dshift, "dshift");
  expect_near(ref->mean, sync->mean, "running_mean");
  expect_near(ref->var, sync->var, "running_var");
  EXPECT_NE(sync->mean[0], 0.0f);  // the running statistics moved
}

// Kernels get their parameters by name: a batch norm's running statistics bind to the store's
// running_mean/running_var views whatever their position.
TEST(NamedParamsTest, KernelArgsFindParametersByName) {
  KernelArgs args;
  float a[1], b[1], ga[1];
  args.params = {{"scale", a, ga}, {"running_var", b, nullptr}};
  EXPECT_EQ(args.value("running_var"), b);
  EXPECT_EQ(args.value("scale"), a);
  EXPECT_EQ(args.grad("scale"), ga);
  EXPECT_EQ(args.value("bias"), nullptr);
}

}  // namespace
}  // namespace cajal
