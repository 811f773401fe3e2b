// Finite-difference gradient checks for conv2d, max/avg pooling, LRN and batch norm on the CPU
// backend, and for a small CNN through a loss, with the harness of gradcheck.h (each network is
// linear -> the layers listed, so the first listed layer is layers.1). Batch norm's running
// statistics are buffers, not trainable: they get no gradient and are skipped. Max pooling sees
// inputs whose values are at least 0.05 apart, so no perturbation of ε changes a window's arg
// max.
#include <cstdint>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "core/layers/layers.h"
#include "core/loss/loss.h"
#include "core/train/network.h"
#include "gtest/gtest.h"
#include "tests/unit/gradcheck.h"

namespace cajal {
namespace {

struct Case {
  std::string name;
  LayerSpec layer;
  Shape input;  // one example
  int64_t batch;
  int params;  // trainable parameter tensors the check must cover
  friend void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
};

class LayerGradTest : public ::testing::TestWithParam<Case> {};

TEST_P(LayerGradTest, MatchesFiniteDifferences) {
  const Case& c = GetParam();
  GradCheckOptions options;
  // LRN needs inputs large enough for its alpha term to matter.
  options.input_scale = std::holds_alternative<LrnSpec>(c.layer) ? 5.0 : 1.0;
  GradCheck g({c.layer}, c.input, c.batch, options);
  ASSERT_TRUE(g.ok());
  if (const auto* p = std::get_if<Pool2dSpec>(&c.layer); p != nullptr && p->max) {
    g.UseSeparatedInput();
  }
  EXPECT_EQ(g.CheckAll(), c.params);
}

INSTANTIATE_TEST_SUITE_P(
    Cnn, LayerGradTest,
    ::testing::Values(
        Case{"conv", Conv2dSpec{3, /*kernel=*/3}, {2, 5, 5}, 2, 2},
        Case{"conv_stride2_pad1", Conv2dSpec{3, 3, /*stride=*/2, /*padding=*/1}, {2, 6, 6}, 2, 2},
        Case{"conv_groups2", Conv2dSpec{4, 3, 1, /*padding=*/1, 1, /*groups=*/2}, {4, 4, 4}, 2, 2},
        Case{"conv_dilation2_nobias",
             Conv2dSpec{2, 3, 1, /*padding=*/1, /*dilation=*/2, 1, /*use_bias=*/false},
             {2, 6, 6},
             2,
             1},
        // 16 channels: oneDNN picks blocked layouts, so the reorder steps are checked too.
        Case{"conv_16_channels_blocked", Conv2dSpec{16, 3, 1, /*padding=*/1}, {16, 4, 4}, 2, 2},
        Case{"conv_groups4_blocked", Conv2dSpec{32, 3, 1, 1, 1, /*groups=*/4}, {32, 3, 3}, 2, 2},
        Case{"max_pool2", Pool2dSpec{true, 2, 2, 0}, {2, 4, 4}, 2, 0},
        Case{"max_pool3_stride2_overlapping", Pool2dSpec{true, 3, 2, 0}, {2, 7, 7}, 2, 0},
        Case{"max_pool3_stride2_pad1", Pool2dSpec{true, 3, 2, 1}, {2, 5, 5}, 2, 0},
        Case{"avg_pool2_odd_input", Pool2dSpec{false, 2, 2, 0}, {2, 5, 5}, 2, 0},
        Case{"avg_pool3_stride2_pad1", Pool2dSpec{false, 3, 2, 1}, {2, 7, 7}, 2, 0},
        Case{"lrn_size5", LrnSpec{5, 1e-2f, 0.75f, 2.0f}, {7, 2, 2}, 2, 0},
        Case{"lrn_size3", LrnSpec{3, 2e-2f, 0.5f, 1.0f}, {4, 2, 3}, 2, 0},
        Case{"batch_norm_conv", BatchNormSpec{}, {3, 3, 3}, 3, 2},
        Case{"batch_norm_dense", BatchNormSpec{0.9f, 1e-3f}, {4}, 5, 2}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// A small CNN through softmax cross-entropy: conv (groups) -> tanh -> avg pool -> conv ->
// flatten -> dense -> softmax, so gradients cross layer boundaries and reorders.
TEST(CnnGradTest, SmallNetworkThroughTheLoss) {
  GradCheckOptions options;
  LossConfig& loss = options.loss.emplace();
  loss.kind = LossKind::kCrossEntropy;
  loss.fused = true;
  loss.accuracy = AccuracyRule::kArgmax;
  GradCheck g({Conv2dSpec{4, 3, 1, /*padding=*/1, 1, /*groups=*/2},
               ActivationSpec{Activation::kTanh}, Pool2dSpec{false, 2, 2, 0}, BatchNormSpec{},
               Conv2dSpec{3, 2}, FlattenSpec{}, DenseSpec{3}, ActivationSpec{Activation::kSoftmax}},
              /*input=*/{2, 6, 6}, /*batch=*/3, options);
  EXPECT_EQ(g.CheckAll(), 8);  // 2 conv × (weight, bias), bn scale/shift, dense weight/bias
}

// The harness can fail: a conv weight gradient off by 5% is reported.
TEST(CnnGradTest, DetectsAWrongConvGradient) {
  GradCheck g({Conv2dSpec{2, 3}}, /*input=*/{2, 4, 4}, /*batch=*/2);
  ASSERT_TRUE(g.ok());
  g.Backprop();
  EXPECT_GT(g.ScaledGradientError("layers.1.conv2d.weight", 1.05), 1.0);
}

}  // namespace
}  // namespace cajal
