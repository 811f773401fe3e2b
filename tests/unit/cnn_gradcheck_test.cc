// Finite-difference gradient checks for conv2d, max/avg pooling, LRN and batch norm on the CPU
// backend, and for a small CNN through a loss.
//
// The harness is gradcheck_test.cc's: each network starts with a linear (identity) activation,
// so diff(1) is the gradient with respect to the input; the objective is L = Σ output · r for a
// fixed random r (or the mean loss); every trainable parameter element and every input element
// is compared with the central difference (L(θ + ε) − L(θ − ε)) / (θ₊ − θ₋) over the float32
// values actually stored, ε = 1e-2, tolerance |a − n| <= 5e-4 + 1e-2·max(|a|, |n|).
// Batch norm's running statistics are buffers, not trainable: they get no gradient and are
// skipped. Max pooling sees inputs whose values are at least 0.05 apart, so no perturbation of
// ε changes a window's arg max.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
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
  // input_scale multiplies the default inputs (magnitudes in [0.2, 1.5], random signs).
  GradCheck(std::vector<LayerSpec> layers, Shape input, int64_t batch,
            std::optional<LossConfig> loss = std::nullopt, double input_scale = 1.0)
      : batch_(batch), loss_(loss), rng_(1) {
    omp_set_num_threads(1);
    layers.insert(layers.begin(), ActivationSpec{Activation::kLinear});
    absl::StatusOr<std::unique_ptr<Network>> net =
        Network::Create(std::move(layers), std::move(input), CpuBackend(), /*seed=*/1);
    EXPECT_TRUE(net.ok()) << net.status();
    if (!net.ok()) return;
    net_ = *std::move(net);
    absl::StatusOr<Plan*> plan = net_->GetPlan(batch, Mode::kTrain);
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return;
    plan_ = *plan;
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    std::uniform_real_distribution<double> magnitude(0.2, 1.5);
    for (int64_t i = 0; i < inputs(); ++i) {
      plan_->input()[i] =
          static_cast<float>(input_scale * magnitude(rng_) * (uniform(rng_) < 0 ? -1.0 : 1.0));
    }
    ParamStore& p = net_->params();
    for (int k = 0; k < p.size(); ++k) {
      if (!IsTrainable(p.decl(k).role)) continue;
      for (int64_t i = 0; i < p.count(k); ++i) p.value(k)[i] = static_cast<float>(uniform(rng_));
    }
    for (int64_t i = 0; i < batch * NumElements(net_->output_shape()); ++i) {
      r_.push_back(uniform(rng_));
    }
    for (int64_t i = 0; i < batch; ++i) {
      labels_.push_back(static_cast<int32_t>(i % NumElements(net_->output_shape())));
    }
  }

  bool ok() const { return plan_ != nullptr; }
  Network& net() { return *net_; }
  Plan& plan() { return *plan_; }
  int64_t inputs() const { return batch_ * NumElements(net_->input_shape()); }

  // Replaces the input with a shuffle of {±(0.2 + 0.05·i)}: distinct values 0.05 apart.
  void UseSeparatedInput() {
    std::vector<int64_t> order(static_cast<size_t>(inputs()));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng_);
    for (int64_t i = 0; i < inputs(); ++i) {
      const double v = 0.2 + 0.05 * static_cast<double>(order[i]) / 2;
      plan_->input()[i] = static_cast<float>(order[i] % 2 == 0 ? v : -v - 0.025);
    }
  }

  double Objective() {
    plan_->Forward(/*step=*/0);
    const int64_t d = NumElements(net_->output_shape());
    if (loss_.has_value()) {
      LossTargets t;
      t.labels = labels_.data();
      return ComputeLoss(*loss_, plan_->output(), batch_, d, t, nullptr).sum / batch_;
    }
    double sum = 0;
    for (size_t i = 0; i < r_.size(); ++i) sum += plan_->output()[i] * r_[i];
    return sum;
  }

  void Backprop() {
    plan_->Forward(/*step=*/0);
    const int top = static_cast<int>(net_->layers().size());
    if (loss_.has_value()) {
      const int at = loss_->fused ? top - 1 : top;
      LossTargets t;
      t.labels = labels_.data();
      ComputeLoss(*loss_, plan_->output(), batch_, NumElements(net_->output_shape()), t,
                  plan_->diff(at));
      plan_->Backward(at);
    } else {
      for (size_t i = 0; i < r_.size(); ++i) plan_->diff(top)[i] = static_cast<float>(r_[i]);
      plan_->Backward(top);
    }
  }

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

  // Checks every trainable parameter's gradient, then the input gradient; returns how many
  // parameter tensors were checked.
  int CheckAll() {
    EXPECT_TRUE(ok());
    if (!ok()) return 0;
    Backprop();
    ParamStore& p = net_->params();
    std::vector<std::vector<double>> analytic(p.size());
    for (int k = 0; k < p.size(); ++k) analytic[k].assign(p.grad(k), p.grad(k) + p.count(k));
    const std::vector<double> analytic_input(plan_->diff(1), plan_->diff(1) + inputs());
    int checked = 0;
    for (int k = 0; k < p.size(); ++k) {
      if (!IsTrainable(p.decl(k).role)) {
        EXPECT_EQ(MaxAbs(analytic[k]), 0.0) << p.decl(k).name << " is a buffer";
        continue;
      }
      const std::vector<double> numeric = Numeric(p.value(k), p.count(k));
      EXPECT_LT(NormalizedError(analytic[k], numeric), 1.0) << p.decl(k).name;
      EXPECT_GT(MaxAbs(numeric), 1e-3) << p.decl(k).name << ": a vacuous check";
      ++checked;
    }
    const std::vector<double> numeric = Numeric(plan_->input(), inputs());
    EXPECT_LT(NormalizedError(analytic_input, numeric), 1.0) << "input";
    EXPECT_GT(MaxAbs(numeric), 1e-3) << "input: a vacuous check";
    return checked;
  }

 private:
  int64_t batch_;
  std::optional<LossConfig> loss_;
  std::mt19937_64 rng_;
  std::unique_ptr<Network> net_;
  Plan* plan_ = nullptr;
  std::vector<double> r_;
  std::vector<int32_t> labels_;
};

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
  // LRN needs inputs large enough for its alpha term to matter.
  const double scale = std::holds_alternative<LrnSpec>(c.layer) ? 5.0 : 1.0;
  GradCheck g({c.layer}, c.input, c.batch, std::nullopt, scale);
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
  LossConfig loss;
  loss.kind = LossKind::kCrossEntropy;
  loss.fused = true;
  loss.accuracy = AccuracyRule::kArgmax;
  GradCheck g({Conv2dSpec{4, 3, 1, /*padding=*/1, 1, /*groups=*/2},
               ActivationSpec{Activation::kTanh}, Pool2dSpec{false, 2, 2, 0}, BatchNormSpec{},
               Conv2dSpec{3, 2}, FlattenSpec{}, DenseSpec{3}, ActivationSpec{Activation::kSoftmax}},
              /*input=*/{2, 6, 6}, /*batch=*/3, loss);
  EXPECT_EQ(g.CheckAll(), 8);  // 2 conv × (weight, bias), bn scale/shift, dense weight/bias
}

// The harness can fail: a conv weight gradient off by 5% is reported.
TEST(CnnGradTest, DetectsAWrongConvGradient) {
  GradCheck g({Conv2dSpec{2, 3}}, /*input=*/{2, 4, 4}, /*batch=*/2);
  ASSERT_TRUE(g.ok());
  g.Backprop();
  ParamStore& p = g.net().params();
  const int w = p.Find("layers.1.conv2d.weight");
  ASSERT_GE(w, 0);
  std::vector<double> wrong(p.grad(w), p.grad(w) + p.count(w));
  for (double& v : wrong) v *= 1.05;
  EXPECT_GT(NormalizedError(wrong, g.Numeric(p.value(w), p.count(w))), 1.0);
}

}  // namespace
}  // namespace cajal
