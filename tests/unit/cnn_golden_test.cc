// Conv2d, pooling, LRN and batch norm forward/backward on the CPU backend against PyTorch 1.13's
// values in tests/data/goldens/cnn.txt (written by tools/make_cnn_goldens.py, whose CASES
// tables these mirror).
//
// Every case is the network  linear -> <layer>  on the golden batch: the leading linear
// (identity) activation gives the layer an input gradient, which cajal skips for the network's
// own input, so diff(1) is d sum(y·dy)/dx.
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/layers/layers.h"
#include "core/train/network.h"
#include "gtest/gtest.h"
#include "tests/unit/golden_file.h"

namespace cajal {
namespace {

// float32 against float32 summed in another order: the conv sums up to 3·11·11 products.
constexpr double kTolerance = 2e-5;

const GoldenFile& CnnGoldens() { return GoldenFile::Get("cnn.txt"); }

const std::vector<double>& Golden(const std::string& key) { return CnnGoldens().Values(key); }

void CopyGolden(const std::string& key, float* dst, int64_t count) {
  CnnGoldens().Copy(key, dst, count);
}

void ExpectMatches(const std::string& key, const float* actual, int64_t count) {
  CnnGoldens().ExpectNear(key, actual, count, kTolerance);
}

struct Case {
  std::string name;
  Shape input;  // (N, C, H, W) or (N, F)
  LayerSpec layer;
  friend void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
};

// linear -> layer on the case's batch, with its input and parameters loaded.
struct GoldenNet {
  std::unique_ptr<Network> net;
  Plan* plan = nullptr;
  int64_t in = 0, out = 0;  // elements of the batch in and out

  float* Param(const std::string& name) {
    const int i = net->params().Find("layers.1." + LayerKindName(net->layers()[1]) + "." + name);
    EXPECT_GE(i, 0) << name;
    return i < 0 ? nullptr : net->params().value(i);
  }
  float* Grad(const std::string& name) {
    const int i = net->params().Find("layers.1." + LayerKindName(net->layers()[1]) + "." + name);
    EXPECT_GE(i, 0) << name;
    return i < 0 ? nullptr : net->params().grad(i);
  }
};

GoldenNet Build(const Case& c, Mode mode = Mode::kTrain) {
  GoldenNet g;
  const Shape example(c.input.begin() + 1, c.input.end());
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create({ActivationSpec{Activation::kLinear}, c.layer}, example, CpuBackend());
  EXPECT_TRUE(net.ok()) << net.status();
  if (!net.ok()) return g;
  g.net = *std::move(net);
  absl::StatusOr<Plan*> plan = g.net->GetPlan(c.input[0], mode);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return g;
  g.plan = *plan;
  g.in = NumElements(c.input);
  g.out = c.input[0] * NumElements(g.net->output_shape());
  CopyGolden(c.name + ".x", g.plan->input(), g.in);
  return g;
}

// Forward, then backward from dy; checks y and dx.
void RunAndCheck(const std::string& c, GoldenNet& g) {
  EXPECT_TRUE(g.plan->Forward(/*step=*/0).ok());
  ExpectMatches(c + ".y", g.plan->activation(2), g.out);
  CopyGolden(c + ".dy", g.plan->diff(2), g.out);
  EXPECT_TRUE(g.plan->Backward(2).ok());
  ExpectMatches(c + ".dx", g.plan->diff(1), g.in);
}

class ConvGoldenTest : public ::testing::TestWithParam<Case> {};

TEST_P(ConvGoldenTest, ForwardAndBackwardMatchPytorch) {
  const Case& c = GetParam();
  GoldenNet g = Build(c);
  ASSERT_NE(g.plan, nullptr);
  const auto& spec = std::get<Conv2dSpec>(c.layer);
  const int64_t w_count =
      static_cast<int64_t>(spec.filters) * (c.input[1] / spec.groups) * spec.kernel * spec.kernel;
  CopyGolden(c.name + ".w", g.Param("weight"), w_count);
  if (spec.use_bias) CopyGolden(c.name + ".b", g.Param("bias"), spec.filters);
  RunAndCheck(c.name, g);
  ExpectMatches(c.name + ".dw", g.Grad("weight"), w_count);
  if (spec.use_bias) ExpectMatches(c.name + ".db", g.Grad("bias"), spec.filters);
}

INSTANTIATE_TEST_SUITE_P(
    Conv, ConvGoldenTest,
    ::testing::Values(
        Case{"conv.basic", {2, 3, 6, 6}, Conv2dSpec{4, /*kernel=*/3}},
        Case{"conv.stride_pad", {2, 3, 7, 7}, Conv2dSpec{5, 3, /*stride=*/2, /*padding=*/1}},
        Case{"conv.groups", {2, 4, 6, 6}, Conv2dSpec{6, 3, 1, 1, 1, /*groups=*/2}},
        Case{"conv.dilation_nobias",
             {2, 2, 8, 8},
             Conv2dSpec{3, 3, 1, /*padding=*/2, /*dilation=*/2, 1, /*use_bias=*/false}},
        Case{"conv.alexnet1", {2, 3, 23, 23}, Conv2dSpec{8, /*kernel=*/11, /*stride=*/4}}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name.substr(5); });

class PoolAndLrnGoldenTest : public ::testing::TestWithParam<Case> {};

TEST_P(PoolAndLrnGoldenTest, ForwardAndBackwardMatchPytorch) {
  GoldenNet g = Build(GetParam());
  ASSERT_NE(g.plan, nullptr);
  RunAndCheck(GetParam().name, g);
}

INSTANTIATE_TEST_SUITE_P(
    PoolAndLrn, PoolAndLrnGoldenTest,
    ::testing::Values(Case{"pool.max_k2", {2, 3, 6, 6}, Pool2dSpec{true, 2, 2, 0}},
                      Case{"pool.max_overlap", {2, 2, 7, 7}, Pool2dSpec{true, 3, 2, 0}},
                      Case{"pool.max_pad", {2, 2, 5, 5}, Pool2dSpec{true, 3, 2, 1}},
                      Case{"pool.avg_k2_odd", {2, 3, 7, 7}, Pool2dSpec{false, 2, 2, 0}},
                      Case{"pool.avg_overlap_pad", {2, 2, 7, 7}, Pool2dSpec{false, 3, 2, 1}},
                      // The AlexNet paper's constants, alpha not divided by the size.
                      Case{"lrn.alexnet", {2, 7, 3, 3}, LrnSpec{5, 1e-4f, 0.75f, 2.0f}},
                      Case{"lrn.size3", {2, 4, 3, 3}, LrnSpec{3, 1e-2f, 0.5f, 1.0f}}),
    [](const ::testing::TestParamInfo<Case>& info) {
      std::string name = info.param.name;
      for (char& ch : name) ch = ch == '.' ? '_' : ch;
      return name;
    });

// LRN with AlexNet's constants must differ measurably from plain scaling by k^−β, or the
// golden could not tell whether alpha reached the kernel (and with what convention).
TEST(LrnGoldenTest, AlexnetCaseExercisesAlpha) {
  const std::vector<double>& x = Golden("lrn.alexnet.x");
  const std::vector<double>& y = Golden("lrn.alexnet.y");
  ASSERT_EQ(x.size(), y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    worst = std::max(worst, std::abs(y[i] - x[i] * std::pow(2.0, -0.75)) / std::abs(x[i]));
  }
  EXPECT_GT(worst, 0.05);
}

class BatchNormGoldenTest : public ::testing::TestWithParam<Case> {};

// One training step: the output and gradients from the batch statistics, the running
// statistics after the update; then evaluation with those running statistics.
TEST_P(BatchNormGoldenTest, TrainingAndEvaluationMatchPytorch) {
  const Case& c = GetParam();
  const int64_t channels = c.input[1];
  GoldenNet g = Build(c);
  ASSERT_NE(g.plan, nullptr);
  CopyGolden(c.name + ".scale", g.Param("scale"), channels);
  CopyGolden(c.name + ".shift", g.Param("shift"), channels);
  CopyGolden(c.name + ".running_mean0", g.Param("running_mean"), channels);
  CopyGolden(c.name + ".running_var0", g.Param("running_var"), channels);
  RunAndCheck(c.name, g);
  ExpectMatches(c.name + ".dscale", g.Grad("scale"), channels);
  ExpectMatches(c.name + ".dshift", g.Grad("shift"), channels);
  ExpectMatches(c.name + ".running_mean", g.Param("running_mean"), channels);
  ExpectMatches(c.name + ".running_var", g.Param("running_var"), channels);

  absl::StatusOr<Plan*> eval = g.net->GetPlan(c.input[0], Mode::kEval);
  ASSERT_TRUE(eval.ok()) << eval.status();
  CopyGolden(c.name + ".x", (*eval)->input(), g.in);
  EXPECT_TRUE((*eval)->Forward(/*step=*/0).ok());
  ExpectMatches(c.name + ".y_eval", (*eval)->output(), g.out);
  // Evaluation leaves the running statistics alone.
  ExpectMatches(c.name + ".running_mean", g.Param("running_mean"), channels);
  ExpectMatches(c.name + ".running_var", g.Param("running_var"), channels);
}

INSTANTIATE_TEST_SUITE_P(
    BatchNorm, BatchNormGoldenTest,
    ::testing::Values(Case{"bn.conv", {4, 3, 3, 3}, BatchNormSpec{0.9f, 1e-5f}},
                      Case{"bn.dense", {6, 5}, BatchNormSpec{0.8f, 1e-3f}}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name.substr(3); });

// A missing or truncated golden file must fail, not pass vacuously.
TEST(CnnGoldenFileTest, HasEveryCase) {
  EXPECT_EQ(CnnGoldens().size(), 92u);
  EXPECT_EQ(Golden("conv.groups.dw").size(), 6u * 2 * 3 * 3);
  EXPECT_EQ(Golden("bn.dense.y_eval").size(), 30u);
}

}  // namespace
}  // namespace cajal
