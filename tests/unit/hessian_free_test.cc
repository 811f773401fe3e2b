// Hessian-free optimization: the Gauss-Newton product against Jᵀ H_L J formed explicitly (J and
// H_L by finite differences of an independent double-precision forward pass), PCG on small SPD
// systems, Levenberg-Marquardt damping, layer validation, and training to low loss.
#include "core/optim/hessian_free.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/backend.h"
#include "core/optim/gauss_newton.h"
#include "core/train/job.h"
#include "core/train/network.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// Reference: a double-precision forward pass of dense/flatten/activation networks over a flat
// parameter vector with the store's offsets.

std::vector<double> RefForward(const Network& net, const std::vector<double>& theta,
                               const std::vector<double>& x, int64_t n, int upto) {
  std::vector<double> a = x;
  const ParamStore& store = net.params();
  for (int i = 0; i < upto; ++i) {
    const LayerSpec& layer = net.layers()[i];
    const int64_t in = NumElements(net.shapes()[i]);
    const int64_t out = NumElements(net.shapes()[i + 1]);
    std::vector<double> z(static_cast<size_t>(n * out));
    if (const auto* d = std::get_if<DenseSpec>(&layer)) {
      const int64_t w = store.offset(store.Find(absl::StrCat("layers.", i, ".dense.weight")));
      const int bi = store.Find(absl::StrCat("layers.", i, ".dense.bias"));
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t j = 0; j < out; ++j) {
          double s = d->use_bias ? theta[store.offset(bi) + j] : 0.0;
          for (int64_t k = 0; k < in; ++k) s += theta[w + j * in + k] * a[b * in + k];
          z[b * out + j] = s;
        }
      }
    } else if (std::holds_alternative<FlattenSpec>(layer)) {
      z = a;
    } else {
      const ActivationSpec& act = std::get<ActivationSpec>(layer);
      for (int64_t k = 0; k < n * out; ++k) {
        const double v = a[k];
        switch (act.kind) {
          case Activation::kSigmoid:
            z[k] = 1.0 / (1.0 + std::exp(-v));
            break;
          case Activation::kTanh:
            z[k] = std::tanh(v);
            break;
          case Activation::kRelu:
            z[k] = v > 0 ? v : 0.0;
            break;
          case Activation::kLeakyRelu:
            z[k] = v > 0 ? v : act.slope * v;
            break;
          default:
            z[k] = v;
        }
      }
      if (act.kind == Activation::kSoftmax) {
        for (int64_t b = 0; b < n; ++b) {
          double mx = -1e300, sum = 0;
          for (int64_t j = 0; j < out; ++j) mx = std::max(mx, a[b * out + j]);
          for (int64_t j = 0; j < out; ++j) sum += std::exp(a[b * out + j] - mx);
          for (int64_t j = 0; j < out; ++j) z[b * out + j] = std::exp(a[b * out + j] - mx) / sum;
        }
      }
    }
    a = std::move(z);
  }
  return a;
}

// The batch's mean loss as a function of the loss's input s (n, d): logits for cross-entropy
// and BCE (whether or not the network applies the softmax/sigmoid itself), outputs for mse.
double RefLoss(LossKind kind, const std::vector<double>& s, int64_t n, int64_t d,
               const std::vector<int32_t>& labels, const std::vector<double>& y) {
  double total = 0;
  for (int64_t b = 0; b < n; ++b) {
    const double* row = s.data() + b * d;
    switch (kind) {
      case LossKind::kCrossEntropy: {
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < d; ++j) mx = std::max(mx, row[j]);
        for (int64_t j = 0; j < d; ++j) sum += std::exp(row[j] - mx);
        total += std::log(sum) + mx - row[labels[b]];
        break;
      }
      case LossKind::kBinaryCrossEntropy:
        for (int64_t j = 0; j < d; ++j) {
          const double z = row[j];
          total += (std::max(z, 0.0) - y[b * d + j] * z + std::log1p(std::exp(-std::abs(z)))) / d;
        }
        break;
      case LossKind::kMse:
        for (int64_t j = 0; j < d; ++j) {
          total += (row[j] - y[b * d + j]) * (row[j] - y[b * d + j]) / d;
        }
        break;
    }
  }
  return total / n;
}

struct GnCase {
  std::string name;
  LossKind loss;
  bool has_last;  // a final activation layer
  Activation last;
  bool fused;  // the loss reads the last activation's input
};

struct GnParam {
  Activation hidden;
  GnCase loss;
};

std::string ActivationName(Activation a) {
  switch (a) {
    case Activation::kLinear:
      return "linear";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kTanh:
      return "tanh";
    case Activation::kRelu:
      return "relu";
    case Activation::kLeakyRelu:
      return "leaky_relu";
    default:
      return "other";
  }
}

class GaussNewtonTest : public ::testing::TestWithParam<GnParam> {};

TEST_P(GaussNewtonTest, EqualsExplicitJacobianTransposeHessianJacobian) {
  const GnParam& param = GetParam();
  constexpr int64_t kN = 3, kD = 3;
  ActivationSpec hidden{param.hidden, /*slope=*/0.1f};
  // Flatten → dense 4 → act → dense 4 → act → dense 3 [→ last], on (1, 2, 2) examples.
  std::vector<LayerSpec> layers = {FlattenSpec{}, DenseSpec{4}, hidden,
                                   DenseSpec{4},  hidden,       DenseSpec{3}};
  if (param.loss.has_last) layers.push_back(ActivationSpec{param.loss.last});
  absl::StatusOr<std::unique_ptr<Network>> created =
      Network::Create(layers, {1, 2, 2}, CpuBackend());
  ASSERT_TRUE(created.ok()) << created.status();
  Network& net = **created;
  ParamStore& store = net.params();
  const int64_t size = store.trainable_total();

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.8f);
  for (int i = 0; i < store.size(); ++i) {
    for (int64_t k = 0; k < store.count(i); ++k) store.value(i)[k] = normal(rng);
  }
  std::vector<double> x(kN * 4);
  for (double& v : x) v = normal(rng);
  std::vector<int32_t> labels = {0, 2, 1};
  std::vector<double> y(kN * kD);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (double& v : y)
    v = param.loss.loss == LossKind::kBinaryCrossEntropy ? (unit(rng) > 0.5) : unit(rng);

  LossConfig loss;
  loss.kind = param.loss.loss;
  loss.fused = param.loss.fused;
  loss.accuracy = AccuracyRule::kNone;
  const int loss_at = static_cast<int>(layers.size()) - (param.loss.fused ? 1 : 0);

  absl::StatusOr<std::unique_ptr<GaussNewtonProduct>> gn =
      GaussNewtonProduct::Create(&net, kN, loss, loss_at);
  ASSERT_TRUE(gn.ok()) << gn.status();
  Plan* plan = (*gn)->plan();
  for (int64_t k = 0; k < kN * 4; ++k) plan->input()[k] = static_cast<float>(x[k]);
  EXPECT_TRUE(plan->Forward(0).ok());

  std::vector<double> theta(store.values(), store.values() + size);
  // The reference forward agrees with the network's.
  const std::vector<double> s0 = RefForward(net, theta, x, kN, loss_at);
  for (int64_t k = 0; k < kN * kD; ++k) {
    ASSERT_NEAR(s0[k], plan->activation(loss_at)[k], 1e-5) << "activation " << loss_at;
  }

  // J (n·d × size) by central differences; H_L (n·d × n·d) by second differences of the loss.
  const int64_t m = kN * kD;
  std::vector<double> jac(static_cast<size_t>(m * size));
  const double h = 1e-6;
  for (int64_t p = 0; p < size; ++p) {
    std::vector<double> tp = theta, tm = theta;
    tp[p] += h;
    tm[p] -= h;
    const std::vector<double> sp = RefForward(net, tp, x, kN, loss_at);
    const std::vector<double> sm = RefForward(net, tm, x, kN, loss_at);
    for (int64_t r = 0; r < m; ++r) jac[r * size + p] = (sp[r] - sm[r]) / (2 * h);
  }
  std::vector<double> hess(static_cast<size_t>(m * m));
  const double e = 1e-4;
  auto loss_of = [&](const std::vector<double>& s) {
    return RefLoss(loss.kind, s, kN, kD, labels, y);
  };
  for (int64_t a = 0; a < m; ++a) {
    for (int64_t b = 0; b < m; ++b) {
      auto shifted = [&](double da, double db) {
        std::vector<double> s = s0;
        s[a] += da;
        s[b] += db;
        return loss_of(s);
      };
      hess[a * m + b] =
          (shifted(e, e) - shifted(e, -e) - shifted(-e, e) + shifted(-e, -e)) / (4 * e * e);
    }
  }

  std::vector<float> v(static_cast<size_t>(size)), gv(static_cast<size_t>(size));
  for (float& f : v) f = normal(rng);
  (*gn)->Multiply(v.data(), gv.data());

  std::vector<double> jv(m, 0.0), hjv(m, 0.0);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t p = 0; p < size; ++p) jv[r] += jac[r * size + p] * v[p];
  }
  for (int64_t a = 0; a < m; ++a) {
    for (int64_t b = 0; b < m; ++b) hjv[a] += hess[a * m + b] * jv[b];
  }
  // Jv alone, from the R-forward pass.
  const float* r_out = (*gn)->ForwardR(v.data());
  for (int64_t r = 0; r < m; ++r) EXPECT_NEAR(r_out[r], jv[r], 1e-4 * (1 + std::abs(jv[r])));
  double scale = 0;
  std::vector<double> want(static_cast<size_t>(size), 0.0);
  for (int64_t p = 0; p < size; ++p) {
    for (int64_t r = 0; r < m; ++r) want[p] += jac[r * size + p] * hjv[r];
    scale = std::max(scale, std::abs(want[p]));
  }
  ASSERT_GT(scale, 1e-4) << "a vanishing product would make this test vacuous";
  for (int64_t p = 0; p < size; ++p) {
    EXPECT_NEAR(gv[p], want[p], 2e-3 * scale) << "parameter entry " << p;
  }
}

std::vector<GnParam> AllGnCases() {
  const std::vector<GnCase> losses = {
      {"ce_softmax_fused", LossKind::kCrossEntropy, true, Activation::kSoftmax, true},
      {"ce_logits", LossKind::kCrossEntropy, false, Activation::kLinear, false},
      {"bce_sigmoid_fused", LossKind::kBinaryCrossEntropy, true, Activation::kSigmoid, true},
      {"bce_logits", LossKind::kBinaryCrossEntropy, false, Activation::kLinear, false},
      {"mse_linear", LossKind::kMse, false, Activation::kLinear, false},
      {"mse_sigmoid", LossKind::kMse, true, Activation::kSigmoid, false},
      {"mse_softmax", LossKind::kMse, true, Activation::kSoftmax, false},
  };
  std::vector<GnParam> all;
  for (Activation a : {Activation::kLinear, Activation::kSigmoid, Activation::kTanh,
                       Activation::kRelu, Activation::kLeakyRelu}) {
    for (const GnCase& l : losses) all.push_back({a, l});
  }
  return all;
}

INSTANTIATE_TEST_SUITE_P(AllLayersAndLosses, GaussNewtonTest, ::testing::ValuesIn(AllGnCases()),
                         [](const ::testing::TestParamInfo<GnParam>& info) {
                           return ActivationName(info.param.hidden) + "_" + info.param.loss.name;
                         });

// ---------------------------------------------------------------------------------------------
// Conjugate gradient.

struct Spd {
  int64_t n;
  std::vector<double> a;  // n × n
  std::vector<float> b;
  std::vector<double> solution;
};

// A = BᵀB + I with a known solution x*, b = A x*.
Spd MakeSpd(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> bm(n * n);
  for (double& v : bm) v = normal(rng);
  Spd s{n, std::vector<double>(n * n, 0.0), std::vector<float>(n), std::vector<double>(n)};
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t k = 0; k < n; ++k) s.a[i * n + j] += bm[k * n + i] * bm[k * n + j];
    }
    s.a[i * n + i] += 1.0;
  }
  for (double& v : s.solution) v = normal(rng);
  for (int64_t i = 0; i < n; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += s.a[i * n + j] * s.solution[j];
    s.b[i] = static_cast<float>(sum);
  }
  return s;
}

MatVec Apply(const Spd& s) {
  return [&s](const float* v, float* out) {
    for (int64_t i = 0; i < s.n; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < s.n; ++j) sum += s.a[i * s.n + j] * v[j];
      out[i] = static_cast<float>(sum);
    }
  };
}

TEST(ConjugateGradientTest, SolvesSpdSystemAndStopsByRelativeProgress) {
  const Spd s = MakeSpd(20, 3);
  CgOptions options;  // 250 iterations, ε = 5e-4
  const CgResult r = PreconditionedCg(Apply(s), s.b.data(), nullptr, nullptr, s.n, options);
  // Martens' rule stops once φ stalls: φ is within 1e-3 of its minimum −½ bᵀA⁻¹b = −½ bᵀx*,
  // long before the cap, though x is then only accurate to a few percent.
  EXPECT_TRUE(r.converged_by_progress);
  EXPECT_FALSE(r.converged_by_residual);
  EXPECT_GT(r.iterations, 10);
  EXPECT_LT(r.iterations, 30);
  double min_phi = 0;
  for (int64_t i = 0; i < s.n; ++i) min_phi -= 0.5 * s.b[i] * s.solution[i];
  EXPECT_NEAR(r.phi.back(), min_phi, 1e-3 * std::abs(min_phi));
  EXPECT_GT(r.phi.back() - min_phi, 1e-7 * std::abs(min_phi));  // not solved exactly yet
  for (size_t i = 1; i < r.phi.size(); ++i) EXPECT_LE(r.phi[i], r.phi[i - 1] + 1e-6);
  // Iterates saved at ⌈1.3^j⌉ for backtracking, then the final one.
  const std::vector<int> grid = {1, 2, 3, 4, 5, 7, 9, 11, 14, 18, 24};
  size_t on_grid = 0;
  while (on_grid < grid.size() && grid[on_grid] <= r.iterations) ++on_grid;
  ASSERT_GE(r.saved.size(), on_grid);
  for (size_t j = 0; j < on_grid; ++j) EXPECT_EQ(r.saved[j].first, grid[j]);
  EXPECT_EQ(r.saved.back().first, r.iterations);
  EXPECT_EQ(r.saved.back().second, r.x);
}

TEST(ConjugateGradientTest, SolvesToTolerance) {
  const Spd s = MakeSpd(20, 3);
  CgOptions options;
  options.epsilon = 1e-9;  // progress rule effectively off: run to round-off
  const CgResult r = PreconditionedCg(Apply(s), s.b.data(), nullptr, nullptr, s.n, options);
  EXPECT_TRUE(r.converged_by_residual);
  EXPECT_LT(r.iterations, 250);
  for (int64_t i = 0; i < s.n; ++i) EXPECT_NEAR(r.x[i], s.solution[i], 2e-3) << i;
}

TEST(ConjugateGradientTest, StopsAtTheIterationCap) {
  const Spd s = MakeSpd(20, 4);
  CgOptions options;
  options.max_iterations = 3;
  const CgResult r = PreconditionedCg(Apply(s), s.b.data(), nullptr, nullptr, s.n, options);
  EXPECT_EQ(r.iterations, 3);
  EXPECT_FALSE(r.converged_by_progress);
  ASSERT_EQ(r.saved.size(), 3u);  // 1, 2, 3
  EXPECT_EQ(r.saved[2].first, 3);
}

TEST(ConjugateGradientTest, ExactDiagonalPreconditionerSolvesInOneIteration) {
  // A = diag(1..1000): unpreconditioned CG needs many iterations; M = diag(A) needs one.
  const int64_t n = 1000;
  std::vector<float> diag(n), b(n);
  for (int64_t i = 0; i < n; ++i) {
    diag[i] = static_cast<float>(i + 1);
    b[i] = static_cast<float>(std::sin(0.1 * i));
  }
  const MatVec a = [&](const float* v, float* out) {
    for (int64_t i = 0; i < n; ++i) out[i] = diag[i] * v[i];
  };
  const CgResult plain = PreconditionedCg(a, b.data(), nullptr, nullptr, n, CgOptions{});
  const CgResult pre = PreconditionedCg(a, b.data(), nullptr, diag.data(), n, CgOptions{});
  EXPECT_EQ(pre.iterations, 1);
  EXPECT_TRUE(pre.converged_by_residual);
  EXPECT_GT(plain.iterations, 20);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(pre.x[i], b[i] / diag[i], 1e-6);
  double plain_err = 0;
  for (int64_t i = 0; i < n; ++i) {
    plain_err = std::max<double>(plain_err, std::abs(plain.saved[0].second[i] - b[i] / diag[i]));
  }
  EXPECT_GT(plain_err, 0.05);  // one unpreconditioned iteration is far off
}

TEST(ConjugateGradientTest, WarmStartFromTheSolutionNeedsNoIteration) {
  const Spd s = MakeSpd(10, 5);
  std::vector<float> x0(s.solution.begin(), s.solution.end());
  const CgResult r = PreconditionedCg(Apply(s), s.b.data(), x0.data(), nullptr, s.n, CgOptions{});
  EXPECT_LE(r.iterations, 1);
  double min_phi = 0;
  for (int64_t i = 0; i < s.n; ++i) min_phi -= 0.5 * s.b[i] * s.solution[i];
  EXPECT_NEAR(r.phi[0], min_phi, 1e-5 * std::abs(min_phi));  // φ(x0) is already the minimum
  for (int64_t i = 0; i < s.n; ++i) EXPECT_NEAR(r.x[i], s.solution[i], 1e-4);
}

// ---------------------------------------------------------------------------------------------
// Damping.

TEST(DampingTest, LevenbergMarquardtMovesTheRightWay) {
  EXPECT_DOUBLE_EQ(AdaptDamping(1.0, 0.1), 1.5);   // ρ < 1/4: the model promised too much
  EXPECT_DOUBLE_EQ(AdaptDamping(1.0, -2.0), 1.5);  // the loss went up
  EXPECT_DOUBLE_EQ(AdaptDamping(2.0, 0.9), 2.0 * 2.0 / 3.0);  // ρ > 3/4: trust it more
  EXPECT_DOUBLE_EQ(AdaptDamping(1.0, 0.5), 1.0);              // in between: unchanged
  EXPECT_DOUBLE_EQ(AdaptDamping(1.0, 0.25), 1.0);
  EXPECT_DOUBLE_EQ(AdaptDamping(1.0, 0.75), 1.0);
  EXPECT_DOUBLE_EQ(AdaptDamping(1.0, std::nan("")), 1.5);
}

// ---------------------------------------------------------------------------------------------
// Validation.

TEST(HessianFreeValidationTest, NamesTheUnsupportedLayer) {
  const absl::Status s = ValidateHessianFreeLayers(
      {DenseSpec{8}, ActivationSpec{Activation::kRelu}, Conv2dSpec{4, 3}, DenseSpec{2}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              HasSubstr("model.layers.2 (conv2d): hessian_free does not support this layer"));
  const absl::Status prelu =
      ValidateHessianFreeLayers({DenseSpec{8}, ActivationSpec{Activation::kPrelu}});
  EXPECT_THAT(prelu.message(), HasSubstr("model.layers.1 (activation): hessian_free does not "
                                         "support this layer (prelu)"));
  EXPECT_TRUE(
      ValidateHessianFreeLayers({FlattenSpec{}, DenseSpec{8}, ActivationSpec{Activation::kTanh},
                                 DenseSpec{2}, ActivationSpec{Activation::kSoftmax}})
          .ok());
  EXPECT_FALSE(SupportsHessianFree(DropoutSpec{0.5f}));
  EXPECT_FALSE(SupportsHessianFree(BatchNormSpec{}));
  EXPECT_FALSE(SupportsHessianFree(RecurrentSpec{}));
  EXPECT_FALSE(SupportsHessianFree(Pool2dSpec{}));
}

JobConfig XorConfig() {
  JobConfig c;
  c.train.kind = DataSourceConfig::Kind::kBuiltin;
  c.train.builtin = "xor";
  c.layers = {DenseSpec{8}, ActivationSpec{Activation::kTanh}, DenseSpec{2},
              ActivationSpec{Activation::kSoftmax}};
  c.optimizer.kind = OptimizerKind::kHessianFree;
  c.loss = LossKind::kCrossEntropy;
  c.batch_size = 4;
  c.epochs = 25;
  c.seed = 1;
  c.threads = 1;
  c.init.kind = InitKind::kXavierNormal;
  return c;
}

TEST(HessianFreeValidationTest, JobRefusesDropoutWithHessianFree) {
  JobConfig c = XorConfig();
  c.layers = {DenseSpec{8}, ActivationSpec{Activation::kTanh}, DropoutSpec{0.5f}, DenseSpec{2}};
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(c, CpuBackend());
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(),
              HasSubstr("model.layers.2 (dropout): hessian_free does not support this layer"));
}

// ---------------------------------------------------------------------------------------------
// Training.

class RecordingObserver : public TrainObserver {
 public:
  void OnOptimizerMetric(int64_t step, const std::string& name, double value) override {
    if (name == "cg_iterations") cg.push_back({step, value});
    if (name == "damping") damping.push_back({step, value});
  }
  std::vector<std::pair<int64_t, double>> cg, damping;
};

TEST(HessianFreeTrainingTest, LearnsXorAndReportsCgIterationsAndDamping) {
  JobConfig c = XorConfig();
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(c, CpuBackend());
  ASSERT_TRUE(job.ok()) << job.status();
  RecordingObserver observer;
  absl::StatusOr<TrainResult> r = (*job)->Run(&observer);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->epochs.size(), 25u);
  EXPECT_GT(r->epochs.front().loss, 0.3);  // ~ln 2 at the start
  EXPECT_LT(r->epochs.back().loss, 0.01);
  EXPECT_DOUBLE_EQ(r->epochs.back().accuracy, 1.0);
  ASSERT_EQ(observer.cg.size(), 25u);
  ASSERT_EQ(observer.damping.size(), 25u);
  EXPECT_EQ(observer.cg.front().first, 1);
  EXPECT_EQ(observer.cg.back().first, 25);
  for (const auto& [step, iterations] : observer.cg) {
    EXPECT_GE(iterations, 1) << "step " << step;
    EXPECT_LE(iterations, 250) << "step " << step;
  }
  for (const auto& [step, lambda] : observer.damping) EXPECT_GT(lambda, 0) << "step " << step;
  EXPECT_EQ((*job)->optimizer().steps(), 25);
}

// On a linear least-squares problem the quadratic model is exact (G is the Hessian), so an
// almost undamped HF step is a Newton step: the loss drops to ~0, ρ = 1 and λ shrinks by 2/3.
TEST(HessianFreeTrainingTest, LinearLeastSquaresIsSolvedInOneStep) {
  absl::StatusOr<std::unique_ptr<Network>> created =
      Network::Create({DenseSpec{2}}, {3}, CpuBackend());
  ASSERT_TRUE(created.ok()) << created.status();
  Network& net = **created;
  constexpr int64_t kN = 16;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(kN * 3), y(kN * 2);
  for (float& v : x) v = normal(rng);
  for (int64_t b = 0; b < kN; ++b) {
    y[b * 2] = 0.5f * x[b * 3] - 2.0f * x[b * 3 + 1] + 0.25f;
    y[b * 2 + 1] = x[b * 3 + 2] - 1.0f;
  }
  LossConfig loss;
  loss.kind = LossKind::kMse;
  loss.accuracy = AccuracyRule::kNone;
  HessianFreeConfig config;
  config.damping = 1e-6f;
  config.curvature_batch_size = kN;
  absl::StatusOr<std::unique_ptr<HessianFree>> hf =
      HessianFree::Create(&net, loss, /*loss_at=*/1, config);
  ASSERT_TRUE(hf.ok()) << hf.status();
  LossTargets t;
  t.values = y.data();
  absl::StatusOr<HfStepResult> r = (*hf)->Step(x.data(), t, kN, /*step=*/0);
  ASSERT_TRUE(r.ok()) << r.status();
  const double before = r->loss.sum / kN;
  EXPECT_GT(before, 0.5);
  EXPECT_LT(r->loss_after, 1e-6 * before);
  EXPECT_NEAR(r->rho, 1.0, 1e-2);
  EXPECT_DOUBLE_EQ(r->step_size, 1.0);
  EXPECT_NEAR(r->damping, 1e-6 * 2.0 / 3.0, 1e-12);
  EXPECT_LE(r->cg_iterations, 12);  // 8 parameters (+ padding): CG converges in ≤ 8 + a few
}

TEST(HessianFreeTrainingTest, TanhRegressionReachesLowLoss) {
  // y = sin(2x) on [−1.5, 1.5] with a 1-16-1 tanh network.
  absl::StatusOr<std::unique_ptr<Network>> created = Network::Create(
      {DenseSpec{16}, ActivationSpec{Activation::kTanh}, DenseSpec{1}}, {1}, CpuBackend());
  ASSERT_TRUE(created.ok()) << created.status();
  Network& net = **created;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  ParamStore& store = net.params();
  for (int i = 0; i < store.size(); ++i) {
    for (int64_t k = 0; k < store.count(i); ++k) store.value(i)[k] = normal(rng);
  }
  constexpr int64_t kN = 64;
  std::vector<float> x(kN), y(kN);
  for (int64_t b = 0; b < kN; ++b) {
    x[b] = -1.5f + 3.0f * b / (kN - 1);
    y[b] = std::sin(2.0f * x[b]);
  }
  LossConfig loss;
  loss.kind = LossKind::kMse;
  loss.accuracy = AccuracyRule::kNone;
  EXPECT_EQ((*HessianFree::Create(&net, loss, 3, HessianFreeConfig{}))->curvature_batch(kN), 16)
      << "a quarter of the gradient batch by default";
  // The examples are sorted by x, so a prefix would not represent the batch: use all of it.
  HessianFreeConfig config;
  config.curvature_batch_size = kN;
  absl::StatusOr<std::unique_ptr<HessianFree>> hf =
      HessianFree::Create(&net, loss, /*loss_at=*/3, config);
  ASSERT_TRUE(hf.ok()) << hf.status();
  LossTargets t;
  t.values = y.data();
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    absl::StatusOr<HfStepResult> r = (*hf)->Step(x.data(), t, kN, step);
    ASSERT_TRUE(r.ok()) << r.status();
    if (step == 0) first = r->loss.sum / kN;
    last = r->loss_after;
    EXPECT_LE(r->loss_after, r->loss.sum / kN + 1e-9) << "step " << step;
  }
  EXPECT_GT(first, 1.0);
  EXPECT_LT(last, 1e-5);  // second-order convergence: ~1e-6 within 20 updates
}

}  // namespace
}  // namespace cajal
