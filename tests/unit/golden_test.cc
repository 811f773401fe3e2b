// Dense, activation and loss forward/backward on the CPU backend against PyTorch 1.13's values
// in tests/data/goldens/layers.txt (written by tools/make_goldens.py; see its header for the
// format and how to regenerate).
//
// Every case is the network  linear -> dense(4 -> 5) -> [activation]  on a batch of 3. The
// leading linear (identity) activation gives the dense layer an input gradient, which cajal
// skips for the network's own input, so diff(1) is d/dx.
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/layers/layers.h"
#include "core/loss/loss.h"
#include "core/train/network.h"
#include "gtest/gtest.h"
#include "tests/unit/golden_file.h"

namespace cajal {
namespace {

constexpr int64_t kBatch = 3;
constexpr int64_t kInputs = 4;
constexpr int kUnits = 5;
// float32 against float32 computed in another order: a few ulps of the largest term.
constexpr double kTolerance = 1e-5;

const std::vector<double>& Golden(const std::string& key) {
  return GoldenFile::Get("layers.txt").Values(key);
}

void CopyGolden(const std::string& key, float* dst, int64_t count) {
  GoldenFile::Get("layers.txt").Copy(key, dst, count);
}

void ExpectMatches(const std::string& key, const float* actual, int64_t count) {
  GoldenFile::Get("layers.txt").ExpectNear(key, actual, count, kTolerance);
}

// Builds linear -> dense -> [last], loads the case's input and parameters.
struct GoldenNet {
  std::unique_ptr<Network> net;
  Plan* plan = nullptr;
};

GoldenNet BuildNet(const std::string& c, bool bias, std::optional<ActivationSpec> last) {
  std::vector<LayerSpec> layers = {ActivationSpec{Activation::kLinear}, DenseSpec{kUnits, bias}};
  if (last.has_value()) layers.push_back(*last);
  GoldenNet g;
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create(layers, /*input=*/{kInputs}, CpuBackend());
  EXPECT_TRUE(net.ok()) << net.status();
  if (!net.ok()) return g;
  g.net = *std::move(net);
  absl::StatusOr<Plan*> plan = g.net->GetPlan(kBatch, Mode::kTrain);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return g;
  g.plan = *plan;
  ParamStore& p = g.net->params();
  CopyGolden(c + ".x", g.plan->input(), kBatch * kInputs);
  CopyGolden(c + ".w", p.value(p.Find("layers.1.dense.weight")), kUnits * kInputs);
  if (bias) CopyGolden(c + ".b", p.value(p.Find("layers.1.dense.bias")), kUnits);
  if (last.has_value() && last->kind == Activation::kPrelu) {
    CopyGolden(c + ".slope", p.value(p.Find("layers.2.activation.slope")), kUnits);
  }
  return g;
}

void ExpectParamGrads(const std::string& c, bool bias, GoldenNet& g) {
  ParamStore& p = g.net->params();
  ExpectMatches(c + ".dx", g.plan->diff(1), kBatch * kInputs);
  ExpectMatches(c + ".dw", p.grad(p.Find("layers.1.dense.weight")), kUnits * kInputs);
  if (bias) ExpectMatches(c + ".db", p.grad(p.Find("layers.1.dense.bias")), kUnits);
}

struct ActivationCase {
  std::string name;
  bool bias = true;
  std::optional<ActivationSpec> last;  // none: the dense layer alone
  friend void PrintTo(const ActivationCase& c, std::ostream* os) { *os << c.name; }
};

class ActivationGoldenTest : public ::testing::TestWithParam<ActivationCase> {};

TEST_P(ActivationGoldenTest, ForwardAndBackwardMatchPytorch) {
  const ActivationCase& a = GetParam();
  const std::string c = "act." + a.name;
  GoldenNet g = BuildNet(c, a.bias, a.last);
  ASSERT_NE(g.plan, nullptr);
  const int top = a.last.has_value() ? 3 : 2;
  EXPECT_TRUE(g.plan->Forward(/*step=*/0).ok());
  ExpectMatches(c + ".y", g.plan->activation(top), kBatch * kUnits);

  CopyGolden(c + ".dy", g.plan->diff(top), kBatch * kUnits);
  EXPECT_TRUE(g.plan->Backward(top).ok());
  ExpectParamGrads(c, a.bias, g);
  if (a.last.has_value() && a.last->kind == Activation::kPrelu) {
    ParamStore& p = g.net->params();
    ExpectMatches(c + ".dslope", p.grad(p.Find("layers.2.activation.slope")), kUnits);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layers, ActivationGoldenTest,
    ::testing::Values(
        ActivationCase{"dense", true, std::nullopt},
        ActivationCase{"dense_nobias", false, std::nullopt},
        ActivationCase{"linear", true, ActivationSpec{Activation::kLinear}},
        ActivationCase{"sigmoid", true, ActivationSpec{Activation::kSigmoid}},
        ActivationCase{"tanh", true, ActivationSpec{Activation::kTanh}},
        ActivationCase{"relu", true, ActivationSpec{Activation::kRelu}},
        ActivationCase{"leaky_relu", true, ActivationSpec{Activation::kLeakyRelu, 0.1f}},
        ActivationCase{"leaky_relu_neg", true, ActivationSpec{Activation::kLeakyRelu, -0.2f}},
        ActivationCase{"prelu", true, ActivationSpec{Activation::kPrelu}},
        ActivationCase{"softmax", true, ActivationSpec{Activation::kSoftmax}}),
    [](const ::testing::TestParamInfo<ActivationCase>& info) { return info.param.name; });

struct LossCase {
  std::string name;
  LossKind kind;
  std::optional<ActivationSpec> last;  // the fused output function
  bool labels;                         // class labels, else real targets
  friend void PrintTo(const LossCase& c, std::ostream* os) { *os << c.name; }
};

class LossGoldenTest : public ::testing::TestWithParam<LossCase> {};

// The loss reads the network output and writes d(mean loss)/d(activation loss_at), where
// loss_at skips a fused output function, exactly as TrainingJob::TrainStep does.
TEST_P(LossGoldenTest, LossAndGradientsMatchPytorch) {
  const LossCase& l = GetParam();
  const std::string c = "loss." + l.name;
  GoldenNet g = BuildNet(c, /*bias=*/true, l.last);
  ASSERT_NE(g.plan, nullptr);
  EXPECT_TRUE(g.plan->Forward(/*step=*/0).ok());
  ExpectMatches(c + ".y", g.plan->output(), kBatch * kUnits);

  LossConfig config;
  config.kind = l.kind;
  config.fused = l.last.has_value();
  config.accuracy = l.labels ? AccuracyRule::kArgmax : AccuracyRule::kNone;
  std::vector<int32_t> labels;
  std::vector<float> targets;
  LossTargets t;
  if (l.labels) {
    for (double v : Golden(c + ".labels")) labels.push_back(static_cast<int32_t>(v));
    ASSERT_EQ(labels.size(), static_cast<size_t>(kBatch));
    t.labels = labels.data();
  } else {
    targets.resize(kBatch * kUnits);
    CopyGolden(c + ".targets", targets.data(), kBatch * kUnits);
    t.values = targets.data();
  }
  const int loss_at = 2;  // the dense output, fused or not
  const LossOutput out =
      ComputeLoss(config, g.plan->output(), kBatch, kUnits, t, g.plan->diff(loss_at));
  const double loss = out.sum / kBatch;
  ASSERT_EQ(Golden(c + ".loss").size(), 1u);
  EXPECT_NEAR(loss, Golden(c + ".loss")[0], kTolerance * (1 + std::abs(Golden(c + ".loss")[0])));
  EXPECT_TRUE(g.plan->Backward(loss_at).ok());
  ExpectParamGrads(c, /*bias=*/true, g);
}

INSTANTIATE_TEST_SUITE_P(
    Losses, LossGoldenTest,
    ::testing::Values(LossCase{"cross_entropy", LossKind::kCrossEntropy, std::nullopt, true},
                      LossCase{"cross_entropy_fused", LossKind::kCrossEntropy,
                               ActivationSpec{Activation::kSoftmax}, true},
                      LossCase{"mse", LossKind::kMse, std::nullopt, false},
                      LossCase{"bce", LossKind::kBinaryCrossEntropy, std::nullopt, false},
                      LossCase{"bce_fused", LossKind::kBinaryCrossEntropy,
                               ActivationSpec{Activation::kSigmoid}, false}),
    [](const ::testing::TestParamInfo<LossCase>& info) { return info.param.name; });

// The goldens themselves: a missing or truncated file must fail, not pass vacuously.
TEST(GoldenFileTest, HasEveryCase) {
  EXPECT_GE(GoldenFile::Get("layers.txt").size(), 100u);
  EXPECT_EQ(Golden("act.prelu.dslope").size(), static_cast<size_t>(kUnits));
  EXPECT_EQ(Golden("loss.bce_fused.dx").size(), static_cast<size_t>(kBatch * kInputs));
}

}  // namespace
}  // namespace cajal
