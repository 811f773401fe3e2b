// The finite-difference gradient check shared by gradcheck_test.cc (layers, activations,
// losses), cnn_gradcheck_test.cc and rnn_gradcheck_test.cc.
//
//   GradCheck g({DenseSpec{4}}, /*input=*/{5}, /*batch=*/3);
//   g.CheckAll();
//
// GradCheck puts a linear (identity) activation in front of the layers under test, so diff(1)
// is the gradient with respect to the input (cajal computes no gradient for the network's own
// input); the first layer under test is therefore layers.1. The objective is either
//   L = Σ output · r     for a fixed random r, backpropagated from diff(top) = r, or
//   L = mean loss        from ComputeLoss, which writes d(mean loss)/d(activation loss_at),
//                        loss_at skipping a fused softmax/sigmoid as TrainingJob does.
// Every trainable parameter element and every input element is compared with the central
// difference
//   (L(θ + ε) − L(θ − ε)) / (θ₊ − θ₋),
// where θ± are the float32 values actually stored, so rounding of θ ± ε costs nothing. The
// forward runs in float32; ε = 1e-2 keeps its rounding (~1e-7·|L| / 2ε) and the truncation
// error (ε²·L'''/6) near 1e-5, far inside the tolerance |a − n| <= 5e-4 + 1e-2·max(|a|, |n|).
// Buffers (batch norm's running statistics) are not trainable: they must get no gradient and
// are not perturbed.
#ifndef CAJAL_TESTS_UNIT_GRADCHECK_H_
#define CAJAL_TESTS_UNIT_GRADCHECK_H_

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/backend/backend.h"
#include "core/layers/layers.h"
#include "core/loss/loss.h"
#include "core/tensor/tensor.h"
#include "core/train/network.h"
#include "gtest/gtest.h"

namespace cajal {

inline constexpr double kGradCheckEps = 1e-2;
inline constexpr double kGradCheckAbsTol = 5e-4;
inline constexpr double kGradCheckRelTol = 1e-2;
// Fixed, so dropout draws the same mask in every forward.
inline constexpr int64_t kGradCheckStep = 7;

// max over elements of |a − n| / (kGradCheckAbsTol + kGradCheckRelTol·max(|a|, |n|)): below 1
// passes.
inline double NormalizedError(const std::vector<double>& analytic,
                              const std::vector<double>& numeric) {
  double worst = 0;
  for (size_t i = 0; i < analytic.size(); ++i) {
    const double a = analytic[i], n = numeric[i];
    worst =
        std::max(worst, std::abs(a - n) / (kGradCheckAbsTol +
                                           kGradCheckRelTol * std::max(std::abs(a), std::abs(n))));
  }
  return worst;
}

inline double MaxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

struct GradCheckOptions {
  std::optional<LossConfig> loss;  // none: L = Σ output · r
  // Inputs are input_scale·m·(±1), m uniform in [0.2, 1.5] with a random sign: at least
  // 0.2·input_scale away from the kinks of relu, leaky_relu and prelu, so no perturbation
  // crosses one. With uniform_input, input_scale·uniform(−1, 1) instead.
  bool uniform_input = false;
  double input_scale = 1.0;
  // Trainable parameters are param_scale·uniform(−1, 1).
  double param_scale = 1.0;
  uint64_t seed = 1;  // the network's and the data's
};

class GradCheck {
 public:
  // Builds linear -> `layers` and fills the input, every trainable parameter and r from a
  // generator seeded with options.seed; labels are i mod outputs, regression targets (mse,
  // binary cross-entropy) uniform(0, 1).
  GradCheck(std::vector<LayerSpec> layers, Shape input, int64_t batch,
            GradCheckOptions options = {})
      : batch_(batch), loss_(options.loss), rng_(options.seed) {
    // Thousands of tiny forwards: one thread, so OpenMP fork/join and spin-waits on a busy
    // machine do not dominate.
    omp_set_num_threads(1);
    layers.insert(layers.begin(), ActivationSpec{Activation::kLinear});
    absl::StatusOr<std::unique_ptr<Network>> net =
        Network::Create(std::move(layers), std::move(input), CpuBackend(), {options.seed});
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
      double x;
      if (options.uniform_input) {
        x = uniform(rng_);
      } else {
        const double m = magnitude(rng_);
        x = m * (uniform(rng_) < 0 ? -1.0 : 1.0);
      }
      plan_->input()[i] = static_cast<float>(options.input_scale * x);
    }
    ParamStore& p = net_->params();
    for (int k = 0; k < p.size(); ++k) {
      if (!IsTrainable(p.decl(k).role)) continue;
      for (int64_t i = 0; i < p.count(k); ++i) {
        p.value(k)[i] = static_cast<float>(options.param_scale * uniform(rng_));
      }
    }
    const int64_t d = NumElements(net_->output_shape());
    for (int64_t i = 0; i < batch * d; ++i) r_.push_back(uniform(rng_));
    top_ = static_cast<int>(net_->layers().size());
    loss_at_ = top_;
    if (loss_.has_value() && loss_->fused) --loss_at_;
    for (int64_t i = 0; i < batch; ++i) labels_.push_back(static_cast<int32_t>(i % d));
    // Drawn last and only when read, so the generator's later draws (UseSeparatedInput) do not
    // depend on the loss.
    if (loss_.has_value() && loss_->kind != LossKind::kCrossEntropy) {
      std::uniform_real_distribution<double> unit(0.0, 1.0);
      for (int64_t i = 0; i < batch * d; ++i) targets_.push_back(static_cast<float>(unit(rng_)));
    }
  }

  bool ok() const { return plan_ != nullptr; }
  Network& net() { return *net_; }
  Plan& plan() { return *plan_; }
  // Input elements in the batch.
  int64_t inputs() const { return batch_ * NumElements(net_->input_shape()); }
  void set_labels(std::vector<int32_t> labels) { labels_ = std::move(labels); }
  void set_targets(std::vector<float> targets) { targets_ = std::move(targets); }
  // A trainable parameter whose gradient must be exactly zero: CheckAll asserts that instead of
  // rejecting its numeric gradient as vacuous.
  void set_zero_grad(std::string name) { zero_grad_ = std::move(name); }

  // Replaces the input with a shuffle of {±(0.2 + 0.05·i)}: distinct values 0.05 apart, so no
  // perturbation of ε changes a max pooling window's arg max.
  void UseSeparatedInput() {
    std::vector<int64_t> order(static_cast<size_t>(inputs()));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng_);
    for (int64_t i = 0; i < inputs(); ++i) {
      const double v = 0.2 + 0.05 * static_cast<double>(order[i]) / 2;
      plan_->input()[i] = static_cast<float>(order[i] % 2 == 0 ? v : -v - 0.025);
    }
  }

  // The objective at the current parameters and input, in double.
  double Objective() {
    EXPECT_TRUE(plan_->Forward(kGradCheckStep).ok());
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
    EXPECT_TRUE(plan_->Forward(kGradCheckStep).ok());
    const int64_t d = NumElements(net_->output_shape());
    if (loss_.has_value()) {
      ComputeLoss(*loss_, plan_->output(), batch_, d, Targets(), plan_->diff(loss_at_));
      EXPECT_TRUE(plan_->Backward(loss_at_).ok());
    } else {
      for (size_t i = 0; i < r_.size(); ++i) plan_->diff(top_)[i] = static_cast<float>(r_[i]);
      EXPECT_TRUE(plan_->Backward(top_).ok());
    }
  }

  // The central difference of the objective in each of `count` floats at `x`.
  std::vector<double> Numeric(float* x, int64_t count) {
    std::vector<double> numeric;
    for (int64_t i = 0; i < count; ++i) {
      const float saved = x[i];
      const float plus = static_cast<float>(saved + kGradCheckEps);
      const float minus = static_cast<float>(saved - kGradCheckEps);
      x[i] = plus;
      const double up = Objective();
      x[i] = minus;
      const double down = Objective();
      x[i] = saved;
      numeric.push_back((up - down) / (static_cast<double>(plus) - minus));
    }
    return numeric;
  }

  // NormalizedError of `factor` times the gradient of parameter `name` in the store (from the
  // last Backprop or CheckAll) against its central differences: shows the harness can fail.
  double ScaledGradientError(const std::string& name, double factor) {
    ParamStore& p = net_->params();
    const int k = p.Find(name);
    EXPECT_GE(k, 0) << name;
    if (k < 0) return 0;
    std::vector<double> scaled(p.grad(k), p.grad(k) + p.count(k));
    for (double& v : scaled) v *= factor;
    return NormalizedError(scaled, Numeric(p.value(k), p.count(k)));
  }

  // Checks every trainable parameter's gradient, then the input gradient (diff(1)); returns how
  // many parameter tensors were checked.
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
      const std::string& name = p.decl(k).name;
      if (!IsTrainable(p.decl(k).role)) {
        EXPECT_EQ(MaxAbs(analytic[k]), 0.0) << name << " is a buffer";
        continue;
      }
      const std::vector<double> numeric = Numeric(p.value(k), p.count(k));
      EXPECT_LT(NormalizedError(analytic[k], numeric), 1.0) << name;
      if (name == zero_grad_) {
        EXPECT_EQ(MaxAbs(analytic[k]), 0.0) << name;
        EXPECT_LT(MaxAbs(numeric), 1e-4) << name;
      } else {
        EXPECT_GT(MaxAbs(numeric), 1e-3) << name << ": a vacuous check";
      }
      ++checked;
    }
    const std::vector<double> numeric = Numeric(plan_->input(), inputs());
    EXPECT_LT(NormalizedError(analytic_input, numeric), 1.0) << "input";
    EXPECT_GT(MaxAbs(numeric), 1e-3) << "input: a vacuous check";
    return checked;
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
  std::string zero_grad_;
  int top_ = 0;
  int loss_at_ = 0;
};

}  // namespace cajal

#endif  // CAJAL_TESTS_UNIT_GRADCHECK_H_
