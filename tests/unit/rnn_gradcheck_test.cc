// Finite-difference gradient checks for the recurrent layers: every cell (rnn tanh and relu,
// lstm, peephole lstm, gru), stacked, bidirectional, all steps or the last, sequence and image
// inputs. The peephole lstm has no PyTorch counterpart, so this is its only independent check.
//
// Each case is the network  linear -> recurrent [-> dense]  (the linear activation gives the
// recurrent layer an input gradient) with the objective L = Σ output · r for a fixed random r.
// Every parameter and input element is compared with the central difference
//   (L(θ + ε) − L(θ − ε)) / (θ₊ − θ₋)
// over the float32 values actually stored, in the tolerance of tests/unit/gradcheck_test.cc:
// |a − n| <= 5e-4 + 1e-2·max(|a|, |n|), ε = 1e-2 (rounding and truncation errors ~1e-5).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/layers/layers.h"
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

class RnnGradCheck {
 public:
  RnnGradCheck(std::vector<LayerSpec> layers, Shape input, int64_t batch, uint64_t seed = 1)
      : rng_(seed) {
    omp_set_num_threads(1);
    absl::StatusOr<std::unique_ptr<Network>> net =
        Network::Create(std::move(layers), std::move(input), CpuBackend(), seed);
    EXPECT_TRUE(net.ok()) << net.status();
    if (!net.ok()) return;
    net_ = *std::move(net);
    absl::StatusOr<Plan*> plan = net_->GetPlan(batch, Mode::kTrain);
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return;
    plan_ = *plan;
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    in_ = batch * NumElements(net_->input_shape());
    for (int64_t i = 0; i < in_; ++i) plan_->input()[i] = static_cast<float>(uniform(rng_));
    ParamStore& p = net_->params();
    for (int k = 0; k < p.size(); ++k) {
      for (int64_t i = 0; i < p.count(k); ++i) {
        p.value(k)[i] = static_cast<float>(0.8 * uniform(rng_));
      }
    }
    for (int64_t i = 0; i < batch * NumElements(net_->output_shape()); ++i) {
      r_.push_back(uniform(rng_));
    }
    top_ = static_cast<int>(net_->layers().size());
  }

  bool ok() const { return plan_ != nullptr; }
  Network& net() { return *net_; }
  // A parameter whose gradient must be exactly zero.
  void set_zero_grad(std::string name) { zero_grad_ = std::move(name); }

  double Objective() {
    plan_->Forward(0);
    double sum = 0;
    for (size_t i = 0; i < r_.size(); ++i) sum += plan_->output()[i] * r_[i];
    return sum;
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

  // Checks every parameter's gradient, then the input gradient (diff(1)).
  void CheckAll() {
    ASSERT_TRUE(ok());
    plan_->Forward(0);
    for (size_t i = 0; i < r_.size(); ++i) plan_->diff(top_)[i] = static_cast<float>(r_[i]);
    plan_->Backward(top_);
    ParamStore& p = net_->params();
    std::vector<std::vector<double>> analytic(p.size());
    for (int k = 0; k < p.size(); ++k) analytic[k].assign(p.grad(k), p.grad(k) + p.count(k));
    const std::vector<double> analytic_input(plan_->diff(1), plan_->diff(1) + in_);
    for (int k = 0; k < p.size(); ++k) {
      const std::vector<double> numeric = Numeric(p.value(k), p.count(k));
      EXPECT_LT(NormalizedError(analytic[k], numeric), 1.0) << p.decl(k).name;
      if (p.decl(k).name == zero_grad_) {
        EXPECT_EQ(MaxAbs(analytic[k]), 0.0) << p.decl(k).name;
        EXPECT_LT(MaxAbs(numeric), 1e-4) << p.decl(k).name;
      } else {
        EXPECT_GT(MaxAbs(numeric), 1e-3) << p.decl(k).name << ": a vacuous check";
      }
    }
    const std::vector<double> numeric = Numeric(plan_->input(), in_);
    EXPECT_LT(NormalizedError(analytic_input, numeric), 1.0) << "input";
    EXPECT_GT(MaxAbs(numeric), 1e-3) << "input: a vacuous check";
  }

 private:
  std::mt19937_64 rng_;
  std::unique_ptr<Network> net_;
  Plan* plan_ = nullptr;
  std::vector<double> r_;
  int64_t in_ = 0;
  int top_ = 0;
  std::string zero_grad_;
};

struct Case {
  std::string name;
  RecurrentSpec spec;
  Shape input;
  int params;             // expected parameter tensors
  std::string zero_grad;  // a parameter with exactly zero gradient, if any
  friend void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
};

RecurrentSpec Spec(RecurrentCell cell, int units, int layers = 1, bool bidirectional = false,
                   bool return_sequences = true, bool peephole = false) {
  RecurrentSpec s;
  s.cell = cell;
  s.units = units;
  s.layers = layers;
  s.bidirectional = bidirectional;
  s.return_sequences = return_sequences;
  s.peephole = peephole;
  return s;
}

class RnnGradTest : public ::testing::TestWithParam<Case> {};

TEST_P(RnnGradTest, MatchesFiniteDifferences) {
  const Case& c = GetParam();
  RnnGradCheck g({ActivationSpec{Activation::kLinear}, c.spec}, c.input, /*batch=*/2);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g.net().params().size(), c.params);
  g.set_zero_grad(c.zero_grad);
  g.CheckAll();
}

INSTANTIATE_TEST_SUITE_P(
    Cells, RnnGradTest,
    ::testing::Values(
        Case{"rnn_tanh", Spec(RecurrentCell::kRnnTanh, 3), {4, 3}, 4, ""},
        Case{"rnn_relu", Spec(RecurrentCell::kRnnRelu, 3), {4, 3}, 4, ""},
        // output[:, -1] of the reverse direction has read x_{T−1} only, from the zero state:
        // its hidden-to-hidden weights get no gradient (as in PyTorch).
        Case{"rnn_tanh_bidir_last",
             Spec(RecurrentCell::kRnnTanh, 3, 1, true, false),
             {4, 3},
             8,
             "layers.1.rnn.weight_hh_l0_reverse"},
        Case{"lstm", Spec(RecurrentCell::kLstm, 3), {4, 3}, 4, ""},
        Case{"lstm_last", Spec(RecurrentCell::kLstm, 3, 1, false, false), {5, 2}, 4, ""},
        Case{"lstm_stacked", Spec(RecurrentCell::kLstm, 3, 2), {4, 3}, 8, ""},
        Case{"lstm_peephole", Spec(RecurrentCell::kLstm, 3, 1, false, true, true), {4, 3}, 5, ""},
        Case{"lstm_peephole_last",
             Spec(RecurrentCell::kLstm, 3, 1, false, false, true),
             {5, 2},
             5,
             ""},
        Case{"lstm_peephole_stacked_bidir",
             Spec(RecurrentCell::kLstm, 2, 2, true, true, true),
             {3, 2},
             20,
             ""},
        Case{"lstm_image", Spec(RecurrentCell::kLstm, 3, 1, false, false), {2, 4, 2}, 4, ""},
        Case{"gru", Spec(RecurrentCell::kGru, 3), {4, 3}, 4, ""},
        Case{"gru_last", Spec(RecurrentCell::kGru, 3, 1, false, false), {5, 2}, 4, ""},
        Case{"gru_stacked_bidir", Spec(RecurrentCell::kGru, 2, 2, true, true), {3, 2}, 16, ""}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// The peephole weights matter: a peephole lstm with non-zero peepholes computes something other
// than the same lstm with them zeroed (so the check above cannot pass with peepholes ignored).
TEST(RnnGradCheckTest, PeepholesChangeTheOutput) {
  RnnGradCheck g({ActivationSpec{Activation::kLinear},
                  Spec(RecurrentCell::kLstm, 3, 1, false, true, /*peephole=*/true)},
                 {4, 3}, /*batch=*/2);
  ASSERT_TRUE(g.ok());
  const double with = g.Objective();
  ParamStore& p = g.net().params();
  const int peep = p.Find("layers.1.lstm.weight_peephole_l0");
  ASSERT_GE(peep, 0);
  std::fill(p.value(peep), p.value(peep) + p.count(peep), 0.0f);
  EXPECT_GT(std::abs(with - g.Objective()), 1e-3);
}

// The harness can fail: a gradient scaled by 1.05 is reported.
TEST(RnnGradCheckTest, DetectsAWrongGradient) {
  RnnGradCheck g({ActivationSpec{Activation::kLinear}, Spec(RecurrentCell::kLstm, 3)}, {4, 3},
                 /*batch=*/2);
  ASSERT_TRUE(g.ok());
  g.CheckAll();
  ParamStore& p = g.net().params();
  const int w = p.Find("layers.1.lstm.weight_hh_l0");
  ASSERT_GE(w, 0);
  std::vector<double> wrong(p.grad(w), p.grad(w) + p.count(w));
  for (double& v : wrong) v *= 1.05;
  EXPECT_GT(NormalizedError(wrong, g.Numeric(p.value(w), p.count(w))), 1.0);
}

}  // namespace
}  // namespace cajal
