// Checks of a second backend against a reference beyond single layers: losses, optimizer
// updates, whole-buffer operations, and training jobs. Shared by device_backend_test.cc (the
// emulated device) and tests/gpu/ (the CUDA backend). Tolerances are stated at each check.
#ifndef CAJAL_TESTS_UNIT_DEVICE_JOB_CHECKS_H_
#define CAJAL_TESTS_UNIT_DEVICE_JOB_CHECKS_H_

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/io/model_file.h"
#include "core/loss/loss.h"
#include "core/train/job.h"
#include "gtest/gtest.h"
#include "tests/unit/backend_parity.h"

namespace cajal {

// ---- Losses.

struct LossCheck {
  std::string name;
  LossConfig config;
  int64_t d = 1;
  bool labels = true;           // class labels, else real targets
  bool probabilities = false;   // x in (0, 1) (a fused softmax/sigmoid's output), else logits
  bool binary_outputs = false;  // x in {0, 1} (threshold units)
};

inline std::vector<LossCheck> LossChecks() {
  auto cfg = [](LossKind kind, bool fused, AccuracyRule rule, bool perceptron = false) {
    LossConfig c;
    c.kind = kind;
    c.fused = fused;
    c.accuracy = rule;
    c.perceptron_error = perceptron;
    return c;
  };
  using K = LossKind;
  using R = AccuracyRule;
  return {
      {"cross_entropy_logits", cfg(K::kCrossEntropy, false, R::kArgmax), 7},
      {"cross_entropy_fused", cfg(K::kCrossEntropy, true, R::kArgmax), 7, true, true},
      {"mse_regression", cfg(K::kMse, false, R::kNone), 3, false},
      {"mse_one_output_labels", cfg(K::kMse, false, R::kThreshold), 1, true, true},
      {"mse_perceptron_exact_match", cfg(K::kMse, false, R::kExactMatch, true), 4, true, false,
       true},
      {"bce_logits", cfg(K::kBinaryCrossEntropy, false, R::kNone), 5, false},
      {"bce_fused", cfg(K::kBinaryCrossEntropy, true, R::kNone), 5, false, true},
      {"bce_one_output_labels", cfg(K::kBinaryCrossEntropy, false, R::kThreshold), 1},
  };
}

// The loss sum to relative 1e-10 (both sum per-example doubles in example order; a GPU's
// exp/log differ from glibc's in the last bits), the correct count exactly, the gradient to
// backend_parity.h's float tolerance.
inline void CheckLossParity(const LossCheck& check, Backend* reference, Backend* candidate) {
  SCOPED_TRACE(check.name);
  const int64_t n = 37, d = check.d;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> logit(-4.0f, 4.0f), unit(0.01f, 0.99f);
  std::vector<float> x(static_cast<size_t>(n * d)), targets(x.size());
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float row_sum = 0;
    for (int64_t j = 0; j < d; ++j) {
      float& v = x[static_cast<size_t>(i * d + j)];
      v = check.binary_outputs ? static_cast<float>(rng() % 2)
                               : (check.probabilities ? unit(rng) : logit(rng));
      row_sum += v;
      targets[static_cast<size_t>(i * d + j)] = unit(rng);
    }
    if (check.probabilities && check.config.kind == LossKind::kCrossEntropy) {
      for (int64_t j = 0; j < d; ++j) x[static_cast<size_t>(i * d + j)] /= row_sum;
    }
    labels[static_cast<size_t>(i)] = static_cast<int32_t>(rng() % (d == 1 ? 2 : d));
  }
  struct Result {
    LossOutput out;
    std::vector<float> grad;
  };
  auto run = [&](Backend* b) -> Result {
    Result r;
    absl::StatusOr<DeviceBuffer> dx = b->Allocate(x.size() * 4);
    absl::StatusOr<DeviceBuffer> dg = b->Allocate(x.size() * 4);
    absl::StatusOr<DeviceBuffer> dt = b->Allocate(x.size() * 4);
    absl::StatusOr<DeviceBuffer> dl = b->Allocate(labels.size() * 4);
    EXPECT_TRUE(dx.ok() && dg.ok() && dt.ok() && dl.ok());
    if (!dx.ok() || !dg.ok() || !dt.ok() || !dl.ok()) return r;
    EXPECT_TRUE(b->CopyToDevice(dx->get(), x.data(), x.size() * 4).ok());
    EXPECT_TRUE(b->CopyToDevice(dt->get(), targets.data(), x.size() * 4).ok());
    EXPECT_TRUE(b->CopyToDevice(dl->get(), labels.data(), labels.size() * 4).ok());
    LossTargets t;
    if (check.labels) {
      t.labels = dl->ints();
    } else {
      t.values = dt->floats();
    }
    absl::StatusOr<std::unique_ptr<LossKernel>> loss = b->MakeLoss(check.config, n, d);
    EXPECT_TRUE(loss.ok()) << loss.status();
    if (!loss.ok()) return r;
    absl::StatusOr<LossOutput> out = (*loss)->Compute(dx->floats(), n, t, 1.0 / n, dg->floats());
    EXPECT_TRUE(out.ok()) << out.status();
    if (out.ok()) r.out = *out;
    r.grad = ReadBack(b, dg->floats(), n * d);
    return r;
  };
  const Result want = run(reference);
  const Result got = run(candidate);
  EXPECT_NEAR(got.out.sum, want.out.sum, 1e-10 * std::abs(want.out.sum));
  EXPECT_EQ(got.out.correct, want.out.correct);
  EXPECT_LE(ParityError(got.grad, want.grad), 1.0);
}

// ---- Optimizer updates and whole-buffer operations.

// Three updates of every first-order optimizer from the same parameters, gradients and state:
// parameters and state to backend_parity.h's float tolerance.
inline void CheckOptimizerParity(Backend* reference, Backend* candidate) {
  const int64_t n = 1000;
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> p(n), g(n), s0(n), s1(n);
  for (int64_t i = 0; i < n; ++i) {
    p[i] = u(rng), g[i] = u(rng), s0[i] = std::abs(u(rng)), s1[i] = std::abs(u(rng));
  }
  for (OptimizerKind kind :
       {OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kNesterov,
        OptimizerKind::kRmsprop, OptimizerKind::kAdagrad, OptimizerKind::kAdam,
        OptimizerKind::kAdadelta, OptimizerKind::kPerceptronRule}) {
    SCOPED_TRACE(static_cast<int>(kind));
    UpdateParams up;
    up.kind = kind;
    up.weight_decay = 0.01f;
    up.grad_scale = 0.5f;
    auto run = [&](Backend* b) {
      std::vector<DeviceBuffer> bufs;
      for (const std::vector<float>* h : {&p, &g, &s0, &s1}) {
        absl::StatusOr<DeviceBuffer> d = b->Allocate(n * 4);
        EXPECT_TRUE(d.ok());
        EXPECT_TRUE(b->CopyToDevice(d->get(), h->data(), n * 4).ok());
        bufs.push_back(*std::move(d));
      }
      for (int t = 1; t <= 3; ++t) {
        AdamCoefficients(t, &up);
        EXPECT_TRUE(b->ApplyUpdate(up, bufs[0].floats(), bufs[1].floats(), bufs[2].floats(),
                                   bufs[3].floats(), n)
                        .ok());
      }
      return std::vector<std::vector<float>>{ReadBack(b, bufs[0].floats(), n),
                                             ReadBack(b, bufs[2].floats(), n),
                                             ReadBack(b, bufs[3].floats(), n)};
    };
    const auto want = run(reference);
    const auto got = run(candidate);
    for (size_t k = 0; k < want.size(); ++k) EXPECT_LE(ParityError(got[k], want[k]), 1.0) << k;
  }
}

// SumOfSquares to relative 1e-9 (double sums in different orders); Scale exactly.
inline void CheckBufferOpsParity(Backend* reference, Backend* candidate) {
  const int64_t n = 100003;
  std::vector<float> x(n);
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (float& v : x) v = u(rng);
  auto run = [&](Backend* b, double* sq) {
    absl::StatusOr<DeviceBuffer> d = b->Allocate(n * 4);
    EXPECT_TRUE(d.ok());
    EXPECT_TRUE(b->CopyToDevice(d->get(), x.data(), n * 4).ok());
    absl::StatusOr<double> s = b->SumOfSquares(d->floats(), n);
    EXPECT_TRUE(s.ok());
    *sq = s.ok() ? *s : 0;
    EXPECT_TRUE(b->Scale(d->floats(), n, 0.37f).ok());
    return ReadBack(b, d->floats(), n);
  };
  double want_sq = 0, got_sq = 0;
  const std::vector<float> want = run(reference, &want_sq);
  const std::vector<float> got = run(candidate, &got_sq);
  EXPECT_NEAR(got_sq, want_sq, 1e-9 * want_sq);
  EXPECT_EQ(got, want);
}

// ---- Jobs.

// Fashion-MNIST, 784-32-10 with relu, adam, batch 32.
inline JobConfig MlpJob(int64_t max_steps) {
  JobConfig c;
  c.layers = {DenseSpec{32}, ActivationSpec{Activation::kRelu}, DenseSpec{10}};
  c.train.kind = DataSourceConfig::Kind::kBuiltin;
  c.train.builtin = "fashion-mnist";
  c.normalize = NormalizeKind::kScale;
  c.optimizer.kind = OptimizerKind::kAdam;
  c.optimizer.learning_rate = 1e-3f;
  c.batch_size = 32;
  c.epochs = 100;
  c.seed = 3;
  c.max_steps = max_steps;
  return c;
}

// The adding problem (builtin, 512 sequences of 20 steps): an lstm of 8 units, the last step
// to one output, mse.
inline JobConfig LstmJob(int64_t max_steps) {
  JobConfig c;
  c.layers = {RecurrentSpec{RecurrentCell::kLstm, 8}, DenseSpec{1}};
  c.train.kind = DataSourceConfig::Kind::kBuiltin;
  c.train.builtin = "adding";
  c.train.builtin_options.examples = 512;
  c.train.builtin_options.sequence_length = 20;
  c.loss = LossKind::kMse;
  c.optimizer.kind = OptimizerKind::kAdam;
  c.optimizer.learning_rate = 1e-2f;
  c.batch_size = 16;
  c.epochs = 100;
  c.seed = 4;
  c.max_steps = max_steps;
  return c;
}

class StepLosses : public TrainObserver {
 public:
  bool OnStep(const StepReport& r) override {
    losses.push_back(r.loss);
    return true;
  }
  std::vector<double> losses;
};

// Both backends train the same job: every step's loss within rel_tol of the reference's (the
// float rounding of the two backends drifts apart slowly over the steps), the test loss too.
inline void CheckJobCurves(const JobConfig& config, Backend* reference, Backend* candidate,
                           double rel_tol) {
  auto run = [&](Backend* b, StepLosses* curve) -> TrainResult {
    absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(config, b);
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return {};
    absl::StatusOr<TrainResult> r = (*job)->Run(curve);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : TrainResult{};
  };
  StepLosses want, got;
  const TrainResult a = run(reference, &want);
  const TrainResult b = run(candidate, &got);
  ASSERT_EQ(got.losses.size(), want.losses.size());
  ASSERT_EQ(static_cast<int64_t>(want.losses.size()), config.max_steps);
  for (size_t i = 0; i < want.losses.size(); ++i) {
    ASSERT_NEAR(got.losses[i], want.losses[i], rel_tol * std::abs(want.losses[i]))
        << "step " << i + 1;
  }
  EXPECT_EQ(a.has_test, b.has_test);
  if (a.has_test) {
    EXPECT_NEAR(b.test.loss, a.test.loss, rel_tol * a.test.loss);
  }
}

// A job trained on `train_on`, saved as a model file, loaded into the same job on `eval_on`:
// the test loss to relative 1e-5 and the accuracy to 0.1 % (an example whose two largest
// outputs tie within rounding may go either way).
inline void CheckTrainedHereEvaluatedThere(const JobConfig& config, Backend* train_on,
                                           Backend* eval_on) {
  SCOPED_TRACE(train_on->name() + " -> " + eval_on->name());
  absl::StatusOr<std::unique_ptr<TrainingJob>> trained = TrainingJob::Prepare(config, train_on);
  ASSERT_TRUE(trained.ok()) << trained.status();
  absl::StatusOr<TrainResult> result = (*trained)->Run(nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->has_test);
  const std::string path =
      ::testing::TempDir() + "/device_model_" + std::to_string(::getpid()) + ".cajal";
  absl::StatusOr<ModelFile> file = SnapshotJob(**trained, "{}");
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE(WriteModelFile(path, *file).ok());
  absl::StatusOr<ModelFile> read = ReadModelFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  absl::StatusOr<std::unique_ptr<TrainingJob>> loaded = TrainingJob::Prepare(config, eval_on);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(RestoreJob(*read, /*with_state=*/false, loaded->get()).ok());
  absl::StatusOr<EvalResult> there = (*loaded)->EvaluateTest();
  ASSERT_TRUE(there.ok()) << there.status();
  EXPECT_NEAR(there->loss, result->test.loss, 1e-5 * result->test.loss);
  EXPECT_NEAR(there->accuracy, result->test.accuracy, 1e-3);
  std::remove(path.c_str());
}

}  // namespace cajal

#endif  // CAJAL_TESTS_UNIT_DEVICE_JOB_CHECKS_H_
