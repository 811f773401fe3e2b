// Finite-difference gradient checks for every layer, activation and loss of the CPU backend.
//
// Each case is a small network built with Network::Create whose first layer is a linear
// (identity) activation, so diff(1) is the gradient with respect to the input (cajal computes
// no gradient for the network's own input). The objective is either
//   L = Σ output · r     for a fixed random r (layers), backpropagated from diff(top) = r, or
//   L = mean loss        from ComputeLoss, which writes d(mean loss)/d(activation loss_at),
//                        loss_at skipping a fused softmax/sigmoid as TrainingJob does.
// Every parameter element and input element is compared with the central difference
//   (L(θ + ε) − L(θ − ε)) / (θ₊ − θ₋),
// where θ± are the float32 values actually stored, so rounding of θ ± ε costs nothing. The
// forward runs in float32; ε = 1e-2 keeps its rounding (~1e-7·|L| / 2ε) and the truncation
// error (ε²·L'''/6) near 1e-5, far inside the tolerance |a − n| <= 5e-4 + 1e-2·max(|a|, |n|).
// Kinked activations (relu, leaky_relu, prelu) see inputs at least 0.2 away from 0, so no
// perturbation crosses the kink.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/layers/layers.h"
#include "core/loss/loss.h"
#include "core/train/network.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

constexpr double kEps = 1e-2;
constexpr double kAbsTol = 5e-4;
constexpr double kRelTol = 1e-2;
constexpr int64_t kStep = 7;  // fixed, so dropout draws the same mask in every forward

// max over elements of |a − n| / (kAbsTol + kRelTol·max(|a|, |n|)): below 1 passes.
double NormalizedError(const std::vector<double>& analytic, const std::vector<double>& numeric) {
  double worst = 0;
  for (size_t i = 0; i < analytic.size(); ++i) {
    const double a = analytic[i], n = numeric[i];
    worst =
        std::max(worst, std::abs(a - n) / (kAbsTol + kRelTol * std::max(std::abs(a), std::abs(n))));
  }
  return worst;
}

double MaxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

class GradCheck {
 public:
  // Builds the network and fills the input and every parameter from a seeded uniform(−1, 1);
  // input magnitudes are drawn from [0.2, 1.5] with a random sign (away from kinks).
  GradCheck(std::vector<LayerSpec> layers, Shape input, int64_t batch,
            std::optional<LossConfig> loss = std::nullopt, uint64_t seed = 1)
      : batch_(batch), loss_(loss), rng_(seed) {
    // Thousands of tiny forwards: one thread, so OpenMP fork/join and spin-waits on a busy
    // machine do not dominate.
    omp_set_num_threads(1);
    absl::StatusOr<std::unique_ptr<Network>> net =
        Network::Create(std::move(layers), std::move(input), CpuBackend(), /*seed=*/seed);
    EXPECT_TRUE(net.ok()) << net.status();
    if (!net.ok()) return;
    net_ = *std::move(net);
    absl::StatusOr<Plan*> plan = net_->GetPlan(batch, Mode::kTrain);
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return;
    plan_ = *plan;
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    std::uniform_real_distribution<double> magnitude(0.2, 1.5);
    for (int64_t i = 0; i < batch * NumElements(net_->input_shape()); ++i) {
      plan_->input()[i] = static_cast<float>(magnitude(rng_) * (uniform(rng_) < 0 ? -1.0 : 1.0));
    }
    ParamStore& p = net_->params();
    for (int k = 0; k < p.size(); ++k) {
      for (int64_t i = 0; i < p.count(k); ++i) p.value(k)[i] = static_cast<float>(uniform(rng_));
    }
    const int64_t out = batch * NumElements(net_->output_shape());
    for (int64_t i = 0; i < out; ++i) r_.push_back(uniform(rng_));
    top_ = static_cast<int>(net_->layers().size());
    loss_at_ = top_;
    if (loss_.has_value() && loss_->fused) --loss_at_;
    const int64_t d = NumElements(net_->output_shape());
    for (int64_t i = 0; i < batch; ++i) labels_.push_back(static_cast<int32_t>(i % d));
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (int64_t i = 0; i < out; ++i) targets_.push_back(static_cast<float>(unit(rng_)));
  }

  bool ok() const { return plan_ != nullptr; }
  Network& net() { return *net_; }
  Plan& plan() { return *plan_; }
  void set_labels(std::vector<int32_t> labels) { labels_ = std::move(labels); }
  void set_targets(std::vector<float> targets) { targets_ = std::move(targets); }

  // The objective at the current parameters and input, in double.
  double Objective() {
    plan_->Forward(kStep);
    const int64_t d = NumElements(net_->output_shape());
    if (loss_.has_value()) {
      return ComputeLoss(*loss_, plan_->output(), batch_, d, Targets(), nullptr).sum / batch_;
    }
    double sum = 0;
    for (size_t i = 0; i < r_.size(); ++i) sum += plan_->output()[i] * r_[i];
    return sum;
  }

  // Runs forward and backward; the gradients land in the store and in diff(1..).
  void Backprop() {
    plan_->Forward(kStep);
    const int64_t d = NumElements(net_->output_shape());
    if (loss_.has_value()) {
      ComputeLoss(*loss_, plan_->output(), batch_, d, Targets(), plan_->diff(loss_at_));
      plan_->Backward(loss_at_);
    } else {
      for (size_t i = 0; i < r_.size(); ++i) plan_->diff(top_)[i] = static_cast<float>(r_[i]);
      plan_->Backward(top_);
    }
  }

  // The central difference of the objective in each of `count` floats at `x`.
  std::vector<double> Numeric(float* x, int64_t count) {
    std::vector<double> numeric;
    for (int64_t i = 0; i < count; ++i) {
      const float saved = x[i];
      const float plus = static_cast<float>(saved + kEps);
      const float minus = static_cast<float>(saved - kEps);
      x[i] = plus;
      const double up = Objective();
      x[i] = minus;
      const double down = Objective();
      x[i] = saved;
      numeric.push_back((up - down) / (static_cast<double>(plus) - minus));
    }
    return numeric;
  }

  // Checks every parameter's gradient, then the input gradient (diff(1)).
  void CheckAll() {
    ASSERT_TRUE(ok());
    Backprop();
    ParamStore& p = net_->params();
    std::vector<std::vector<double>> analytic(p.size());
    for (int k = 0; k < p.size(); ++k) {
      analytic[k].assign(p.grad(k), p.grad(k) + p.count(k));
    }
    const int64_t in = batch_ * NumElements(net_->input_shape());
    const std::vector<double> analytic_input(plan_->diff(1), plan_->diff(1) + in);
    for (int k = 0; k < p.size(); ++k) {
      const std::vector<double> numeric = Numeric(p.value(k), p.count(k));
      EXPECT_LT(NormalizedError(analytic[k], numeric), 1.0) << p.decl(k).name;
      EXPECT_GT(MaxAbs(numeric), 1e-3) << p.decl(k).name << ": a vacuous check";
    }
    const std::vector<double> numeric = Numeric(plan_->input(), in);
    EXPECT_LT(NormalizedError(analytic_input, numeric), 1.0) << "input";
    EXPECT_GT(MaxAbs(numeric), 1e-3) << "input: a vacuous check";
  }

 private:
  LossTargets Targets() const {
    LossTargets t;
    if (loss_->kind == LossKind::kCrossEntropy) {
      t.labels = labels_.data();
    } else {
      t.values = targets_.data();
    }
    return t;
  }

  int64_t batch_;
  std::optional<LossConfig> loss_;
  std::mt19937_64 rng_;
  std::unique_ptr<Network> net_;
  Plan* plan_ = nullptr;
  std::vector<double> r_;
  std::vector<int32_t> labels_;
  std::vector<float> targets_;
  int top_ = 0;
  int loss_at_ = 0;
};

const ActivationSpec kLinear{Activation::kLinear};

TEST(GradCheckTest, DenseWithBias) {
  GradCheck g({kLinear, DenseSpec{4}}, /*input=*/{5}, /*batch=*/3);
  g.CheckAll();
}

TEST(GradCheckTest, DenseWithoutBias) {
  GradCheck g({kLinear, DenseSpec{4, /*use_bias=*/false}}, /*input=*/{5}, /*batch=*/3);
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
  GradCheck g({kLinear, GetParam().spec, DenseSpec{3}}, /*input=*/{4}, /*batch=*/3);
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
      {kLinear, DenseSpec{5}, ActivationSpec{Activation::kTanh}, DenseSpec{4},
       ActivationSpec{Activation::kSigmoid}, DenseSpec{3}, ActivationSpec{Activation::kSoftmax}},
      /*input=*/{4}, /*batch=*/2);
  g.CheckAll();
}

// Dense weights through relu: the pre-activations must stay clear of the kink under every
// perturbation, which this data does (asserted, so a change of data cannot hide a kink).
TEST(GradCheckTest, DenseReluDense) {
  GradCheck g({kLinear, DenseSpec{4}, ActivationSpec{Activation::kRelu}, DenseSpec{2}},
              /*input=*/{3}, /*batch=*/2);
  ASSERT_TRUE(g.ok());
  g.plan().Forward(kStep);
  for (int64_t i = 0; i < 2 * 4; ++i) {
    // A perturbation of ε in a weight or bias moves a pre-activation by at most 1.5·ε.
    ASSERT_GT(std::abs(g.plan().activation(2)[i]), 2 * kEps) << "pre-activation " << i;
  }
  g.CheckAll();
}

// Dropout at a fixed step: the mask is fixed, so the layer is linear and its gradient is the
// same mask; dropped inputs must have exactly zero gradient.
TEST(GradCheckTest, DropoutAtFixedStep) {
  GradCheck g({kLinear, DropoutSpec{0.5f}, DenseSpec{3}}, /*input=*/{8}, /*batch=*/3);
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
  GradCheck g({kLinear, FlattenSpec{}, DenseSpec{3}}, /*input=*/{2, 2, 3}, /*batch=*/2);
  g.CheckAll();
}

// A threshold unit has no gradient by design: backward hands diff_dst to diff_src unchanged.
TEST(GradCheckTest, ThresholdPassesGradientStraightThrough) {
  GradCheck g({kLinear, DenseSpec{3}, ThresholdSpec{}}, /*input=*/{2}, /*batch=*/4);
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
  std::vector<LayerSpec> layers = {kLinear, DenseSpec{4}};
  if (c.fused) {
    layers.push_back(ActivationSpec{c.kind == LossKind::kCrossEntropy ? Activation::kSoftmax
                                                                      : Activation::kSigmoid});
  }
  LossConfig loss;
  loss.kind = c.kind;
  loss.fused = c.fused;
  loss.accuracy = c.kind == LossKind::kCrossEntropy ? AccuracyRule::kArgmax : AccuracyRule::kNone;
  GradCheck g(layers, /*input=*/{3}, /*batch=*/3, loss);
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
  GradCheck g({kLinear, DenseSpec{3}, ActivationSpec{Activation::kSigmoid}}, /*input=*/{4},
              /*batch=*/2);
  ASSERT_TRUE(g.ok());
  g.Backprop();
  ParamStore& p = g.net().params();
  const int w = p.Find("layers.1.dense.weight");
  std::vector<double> wrong(p.grad(w), p.grad(w) + p.count(w));
  for (double& v : wrong) v *= 1.05;
  const std::vector<double> numeric = g.Numeric(p.value(w), p.count(w));
  EXPECT_GT(NormalizedError(wrong, numeric), 1.0);
}

}  // namespace
}  // namespace cajal
