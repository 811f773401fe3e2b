// Finite-difference gradient checks for every layer, activation and loss of the CPU backend,
// with the harness of gradcheck.h: each case's network is linear -> the layers listed, so the
// first listed layer is layers.1. Kinked activations (relu, leaky_relu, prelu) see inputs at
// least 0.2 away from 0, so no perturbation crosses the kink.
#include "tests/unit/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

#include "core/layers/layers.h"
#include "core/loss/loss.h"
#include "core/train/network.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

TEST(GradCheckTest, DenseWithBias) {
  GradCheck g({DenseSpec{4}}, /*input=*/{5}, /*batch=*/3);
  g.CheckAll();
}

TEST(GradCheckTest, DenseWithoutBias) {
  GradCheck g({DenseSpec{4, /*use_bias=*/false}}, /*input=*/{5}, /*batch=*/3);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g.net().params().size(), 1);  // the weight only
  g.CheckAll();
}

struct ActivationCase {
  std::string name;
  ActivationSpec spec;
  friend void PrintTo(const ActivationCase& c, std::ostream* os) { *os << c.name; }
};

class ActivationGradTest : public ::testing::TestWithParam<ActivationCase> {};

// input -> activation -> dense(3): the activation's input gradient (and prelu's slope
// gradient) through a dense layer that mixes its outputs.
TEST_P(ActivationGradTest, MatchesFiniteDifferences) {
  GradCheck g({GetParam().spec, DenseSpec{3}}, /*input=*/{4}, /*batch=*/3);
  ASSERT_TRUE(g.ok());
  if (GetParam().spec.kind == Activation::kPrelu) {
    // Slopes of both signs and the degenerate 0: the check covers dslope for each.
    ParamStore& p = g.net().params();
    const int slope = p.Find("layers.1.activation.slope");
    ASSERT_GE(slope, 0);
    const float slopes[] = {0.25f, -0.3f, 0.0f, 1.5f};
    std::copy(std::begin(slopes), std::end(slopes), p.value(slope));
  }
  g.CheckAll();
}

INSTANTIATE_TEST_SUITE_P(
    Activations, ActivationGradTest,
    ::testing::Values(ActivationCase{"linear", {Activation::kLinear}},
                      ActivationCase{"sigmoid", {Activation::kSigmoid}},
                      ActivationCase{"tanh", {Activation::kTanh}},
                      ActivationCase{"relu", {Activation::kRelu}},
                      ActivationCase{"leaky_relu", {Activation::kLeakyRelu, 0.1f}},
                      ActivationCase{"leaky_relu_negative", {Activation::kLeakyRelu, -0.3f}},
                      ActivationCase{"prelu", {Activation::kPrelu}},
                      ActivationCase{"softmax", {Activation::kSoftmax}}),
    [](const ::testing::TestParamInfo<ActivationCase>& info) { return info.param.name; });

// Dense weights through smooth activations, several layers deep.
TEST(GradCheckTest, DeepSmoothNetwork) {
  GradCheck g(
      {DenseSpec{5}, ActivationSpec{Activation::kTanh}, DenseSpec{4},
       ActivationSpec{Activation::kSigmoid}, DenseSpec{3}, ActivationSpec{Activation::kSoftmax}},
      /*input=*/{4}, /*batch=*/2);
  g.CheckAll();
}

// Dense weights through relu: the pre-activations must stay clear of the kink under every
// perturbation, which this data does (asserted, so a change of data cannot hide a kink).
TEST(GradCheckTest, DenseReluDense) {
  GradCheck g({DenseSpec{4}, ActivationSpec{Activation::kRelu}, DenseSpec{2}},
              /*input=*/{3}, /*batch=*/2);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g.plan().Forward(kGradCheckStep).ok());
  for (int64_t i = 0; i < 2 * 4; ++i) {
    // A perturbation of ε in a weight or bias moves a pre-activation by at most 1.5·ε.
    ASSERT_GT(std::abs(g.plan().activation(2)[i]), 2 * kGradCheckEps) << "pre-activation " << i;
  }
  g.CheckAll();
}

// Dropout at a fixed step: the mask is fixed, so the layer is linear and its gradient is the
// same mask; dropped inputs must have exactly zero gradient.
TEST(GradCheckTest, DropoutAtFixedStep) {
  GradCheck g({DropoutSpec{0.5f}, DenseSpec{3}}, /*input=*/{8}, /*batch=*/3);
  ASSERT_TRUE(g.ok());
  g.Backprop();
  int dropped = 0, kept = 0;
  for (int64_t i = 0; i < 3 * 8; ++i) {
    const float out = g.plan().activation(2)[i];
    const float in = g.plan().activation(1)[i];
    if (out == 0.0f) {
      ++dropped;
      EXPECT_EQ(g.plan().diff(1)[i], 0.0f) << i;
    } else {
      ++kept;
      EXPECT_FLOAT_EQ(out, 2.0f * in) << i;  // inverted dropout scales by 1/(1 − rate)
    }
  }
  EXPECT_GT(dropped, 0);
  EXPECT_GT(kept, 0);
  g.CheckAll();
}

TEST(GradCheckTest, Flatten) {
  GradCheck g({FlattenSpec{}, DenseSpec{3}}, /*input=*/{2, 2, 3}, /*batch=*/2);
  g.CheckAll();
}

// A threshold unit has no gradient by design: backward hands diff_dst to diff_src unchanged.
TEST(GradCheckTest, ThresholdPassesGradientStraightThrough) {
  GradCheck g({DenseSpec{3}, ThresholdSpec{}}, /*input=*/{2}, /*batch=*/4);
  ASSERT_TRUE(g.ok());
  g.Backprop();
  bool any_one = false, any_zero = false;
  for (int64_t i = 0; i < 4 * 3; ++i) {
    const float z = g.plan().activation(2)[i];
    const float y = g.plan().activation(3)[i];
    EXPECT_EQ(y, z > 0.0f ? 1.0f : 0.0f) << i;
    any_one |= y == 1.0f;
    any_zero |= y == 0.0f;
    EXPECT_EQ(g.plan().diff(2)[i], g.plan().diff(3)[i]) << i;
    EXPECT_NE(g.plan().diff(3)[i], 0.0f) << i;
  }
  EXPECT_TRUE(any_one);
  EXPECT_TRUE(any_zero);
}

struct LossCase {
  std::string name;
  LossKind kind;
  bool fused;
  friend void PrintTo(const LossCase& c, std::ostream* os) { *os << c.name; }
};

class LossGradTest : public ::testing::TestWithParam<LossCase> {};

// input -> dense(4) [-> softmax | sigmoid when fused] -> loss: the gradient of the mean loss
// with respect to the dense parameters and the input.
TEST_P(LossGradTest, MatchesFiniteDifferences) {
  const LossCase& c = GetParam();
  std::vector<LayerSpec> layers = {DenseSpec{4}};
  if (c.fused) {
    layers.push_back(ActivationSpec{c.kind == LossKind::kCrossEntropy ? Activation::kSoftmax
                                                                      : Activation::kSigmoid});
  }
  GradCheckOptions options;
  LossConfig& loss = options.loss.emplace();
  loss.kind = c.kind;
  loss.fused = c.fused;
  loss.accuracy = c.kind == LossKind::kCrossEntropy ? AccuracyRule::kArgmax : AccuracyRule::kNone;
  GradCheck g(layers, /*input=*/{3}, /*batch=*/3, options);
  ASSERT_TRUE(g.ok());
  g.set_labels({1, 3, 0});
  if (c.kind == LossKind::kBinaryCrossEntropy) {
    // Hard and soft targets.
    g.set_targets({1, 0, 0.3f, 1, 0, 0, 1, 0.8f, 1, 1, 0, 0.5f});
  }
  g.CheckAll();
}

INSTANTIATE_TEST_SUITE_P(
    Losses, LossGradTest,
    ::testing::Values(LossCase{"cross_entropy", LossKind::kCrossEntropy, false},
                      LossCase{"cross_entropy_fused_softmax", LossKind::kCrossEntropy, true},
                      LossCase{"mse", LossKind::kMse, false},
                      LossCase{"binary_cross_entropy", LossKind::kBinaryCrossEntropy, false},
                      LossCase{"binary_cross_entropy_fused_sigmoid", LossKind::kBinaryCrossEntropy,
                               true}),
    [](const ::testing::TestParamInfo<LossCase>& info) { return info.param.name; });

// The harness itself can fail: a gradient off by 5% is reported.
TEST(GradCheckTest, DetectsAWrongGradient) {
  GradCheck g({DenseSpec{3}, ActivationSpec{Activation::kSigmoid}}, /*input=*/{4},
              /*batch=*/2);
  ASSERT_TRUE(g.ok());
  g.Backprop();
  EXPECT_GT(g.ScaledGradientError("layers.1.dense.weight", 1.05), 1.0);
}

}  // namespace
}  // namespace cajal
