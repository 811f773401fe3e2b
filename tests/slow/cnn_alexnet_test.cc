// The alexnet preset at the paper's 227×227×3 with 1000 classes builds and runs a training
// step (forward, backward, Adam update) on a synthetic batch of 2, and a second step on the same
// batch lowers the loss.
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "core/backend/backend.h"
#include "core/loss/loss.h"
#include "core/optim/optimizer.h"
#include "core/train/job.h"
#include "core/train/network.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

TEST(AlexnetTest, TrainsAStepAt227) {
  const Shape input = {3, 227, 227};
  constexpr int64_t kBatch = 2;
  constexpr int kClasses = 1000;
  absl::StatusOr<std::vector<LayerSpec>> layers = PresetLayers(Preset::kAlexnet, input, kClasses);
  ASSERT_TRUE(layers.ok()) << layers.status();
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create(*layers, input, CpuBackend(), {/*seed=*/1});
  ASSERT_TRUE(net.ok()) << net.status();
  ASSERT_TRUE(
      InitializeParams(InitConfig{InitKind::kHeUniform}, /*seed=*/1, &(*net)->params()).ok());
  absl::StatusOr<Plan*> plan = (*net)->GetPlan(kBatch, Mode::kTrain);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  for (int64_t i = 0; i < kBatch * NumElements(input); ++i) (*plan)->input()[i] = pixel(rng);

  OptimizerConfig adam;
  adam.kind = OptimizerKind::kAdam;
  adam.learning_rate = 1e-4f;
  absl::StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(adam, &(*net)->params());
  ASSERT_TRUE(opt.ok());
  LossConfig loss;
  loss.kind = LossKind::kCrossEntropy;
  loss.accuracy = AccuracyRule::kArgmax;
  const int32_t labels[kBatch] = {3, 917};
  LossTargets targets;
  targets.labels = labels;
  const int top = static_cast<int>(layers->size());
  double losses[2];
  for (int step = 0; step < 2; ++step) {
    ASSERT_TRUE((*plan)->Forward(/*step=*/0).ok());  // the same dropout masks both times
    const LossOutput out =
        ComputeLoss(loss, (*plan)->output(), kBatch, kClasses, targets, (*plan)->diff(top));
    losses[step] = out.sum / kBatch;
    ASSERT_TRUE(std::isfinite(losses[step])) << "step " << step;
    EXPECT_TRUE((*plan)->Backward(top).ok());
    EXPECT_TRUE((*opt)->Step().ok());
  }
  // The first conv's weights got a gradient through all 23 layers.
  ParamStore& p = (*net)->params();
  const int w = p.Find("layers.0.conv2d.weight");
  ASSERT_GE(w, 0);
  double norm = 0;
  for (int64_t i = 0; i < p.count(w); ++i) norm += std::abs(p.grad(w)[i]);
  EXPECT_GT(norm, 0.0);
  EXPECT_TRUE(std::isfinite(norm));
  // Initial loss near ln(1000) = 6.9 and a step of Adam on the same batch lowers it.
  EXPECT_GT(losses[0], 4.0);
  EXPECT_LT(losses[1], losses[0]);
}

}  // namespace
}  // namespace cajal
