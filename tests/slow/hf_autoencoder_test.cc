// The classic Hessian-free demonstration (Martens 2010, §6), scaled down: a deep sigmoid
// autoencoder 784-256-64-16-64-256-784 (the autoencoder preset) on the first 2,000 Fashion-MNIST
// training images, squared reconstruction error. HF and SGD with momentum get the same
// wall-clock budget of training time; HF must reach a clearly lower training reconstruction
// error. Both curves (error vs seconds) are printed.
//
// Environment: CAJAL_HF_BUDGET_S (default 240) seconds per optimizer; CAJAL_DATA_DIR as for the
// builtin data set. Skipped when Fashion-MNIST is not installed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/data/dataset.h"
#include "core/train/job.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

constexpr int64_t kImages = 2000;

void BigEndian32(std::ofstream& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.write(b, 4);
}

// Writes the first kImages images and labels as raw IDX files; returns false without data.
bool WriteSubset(const std::string& images, const std::string& labels) {
  absl::StatusOr<Dataset> all = LoadBuiltin("fashion-mnist", BuiltinOptions{});
  if (!all.ok() || all->u8.empty()) return false;
  std::ofstream im(images, std::ios::binary), lb(labels, std::ios::binary);
  BigEndian32(im, 0x803);
  BigEndian32(im, kImages);
  BigEndian32(im, 28);
  BigEndian32(im, 28);
  im.write(reinterpret_cast<const char*>(all->u8.data()), kImages * 784);
  BigEndian32(lb, 0x801);
  BigEndian32(lb, kImages);
  for (int64_t i = 0; i < kImages; ++i) lb.put(static_cast<char>(all->labels[i]));
  return im.good() && lb.good();
}

// Records the full training-set reconstruction error after every epoch against training
// seconds (the evaluation itself is not counted), and stops training at the budget.
class CurveObserver : public TrainObserver {
 public:
  CurveObserver(TrainingJob* job, double budget_s) : job_(job), budget_s_(budget_s) {
    all_.resize(static_cast<size_t>(job->train_data().count));
    std::iota(all_.begin(), all_.end(), 0);
    start_ = Clock::now();
  }
  bool OnStep(const StepReport&) override { return Seconds() < budget_s_; }
  void OnEpoch(const EpochReport&) override { Record(); }
  void OnOptimizerMetric(int64_t step, const std::string& name, double value) override {
    std::printf("  step %lld %s %g\n", static_cast<long long>(step), name.c_str(), value);
  }
  void Record() {
    const Clock::time_point t0 = Clock::now();
    const double at = Seconds();
    absl::StatusOr<EvalResult> r = job_->Evaluate(job_->train_data(), all_);
    excluded_ += Clock::now() - t0;
    if (r.ok()) curve.push_back({at, r->loss});
  }
  double Seconds() const {
    return std::chrono::duration<double>(Clock::now() - start_ - excluded_).count();
  }
  std::vector<std::pair<double, double>> curve;  // (seconds, per-pixel mse)

 private:
  using Clock = std::chrono::steady_clock;
  TrainingJob* job_;
  double budget_s_;
  std::vector<int64_t> all_;
  Clock::time_point start_;
  Clock::duration excluded_{};
};

JobConfig AutoencoderConfig(const std::string& images, const std::string& labels) {
  JobConfig c;
  c.preset = Preset::kAutoencoder;
  c.reconstruct = true;
  c.train.kind = DataSourceConfig::Kind::kIdx;
  c.train.images = images;
  c.train.labels = labels;
  c.normalize = NormalizeKind::kScale;
  c.loss = LossKind::kMse;
  c.epochs = 100000;  // the budget stops training
  c.seed = 1;
  return c;
}

std::vector<std::pair<double, double>> Train(const JobConfig& c, double budget_s,
                                             const char* name) {
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(c, CpuBackend());
  EXPECT_TRUE(job.ok()) << job.status();
  if (!job.ok()) return {};
  CurveObserver observer(job->get(), budget_s);
  observer.Record();  // the error at initialization, at t = 0
  absl::StatusOr<TrainResult> r = (*job)->Run(&observer);
  EXPECT_TRUE(r.ok()) << r.status();
  observer.Record();
  std::printf("%s: steps=%lld threads=%d\n", name, static_cast<long long>(r.ok() ? r->steps : 0),
              (*job)->threads());
  std::printf("%s curve (seconds, per-pixel squared error, per-image squared error):\n", name);
  for (const auto& [t, e] : observer.curve) std::printf("  %8.2f  %.5f  %.2f\n", t, e, e * 784);
  return observer.curve;
}

TEST(HessianFreeAutoencoderTest, BeatsMomentumSgdAtTheSameWallClock) {
  const std::string dir = ::testing::TempDir();
  const std::string images = dir + "/hf-ae-images-idx3-ubyte";
  const std::string labels = dir + "/hf-ae-labels-idx1-ubyte";
  if (!WriteSubset(images, labels)) GTEST_SKIP() << "Fashion-MNIST is not installed";
  const char* env = std::getenv("CAJAL_HF_BUDGET_S");
  const double budget = env != nullptr ? std::atof(env) : 240.0;

  JobConfig hf = AutoencoderConfig(images, labels);
  hf.optimizer.kind = OptimizerKind::kHessianFree;
  hf.batch_size = kImages;  // the gradient on every example
  const char* curvature = std::getenv("CAJAL_HF_CURVATURE_BATCH");
  hf.optimizer.hessian_free.curvature_batch_size =
      curvature != nullptr ? std::atoi(curvature) : 500;  // a quarter for G·v
  // Martens' λ = 1 is for the error summed over pixels; cajal's mse averages over the 784
  // outputs, which scales G (and so the right λ) by 1/784.
  hf.optimizer.hessian_free.damping = 1.0f / 784;
  const auto hf_curve = Train(hf, budget, "hessian_free");

  JobConfig sgd = AutoencoderConfig(images, labels);
  sgd.optimizer.kind = OptimizerKind::kMomentum;
  // The loss is a mean over 784 pixels, so gradients are small; CAJAL_HF_SGD_LR overrides.
  const char* lr = std::getenv("CAJAL_HF_SGD_LR");
  sgd.optimizer.learning_rate = lr != nullptr ? std::atof(lr) : 1.0f;
  sgd.optimizer.momentum = 0.9f;
  sgd.batch_size = 100;
  const auto sgd_curve = Train(sgd, budget, "momentum");

  ASSERT_GE(hf_curve.size(), 3u);
  ASSERT_GE(sgd_curve.size(), 3u);
  const double start = hf_curve.front().second;
  EXPECT_NEAR(sgd_curve.front().second, start, 1e-6) << "same seed, same initialization";
  // The budget is checked between updates, so the last one may overrun it: compare each at
  // its last point within the budget.
  auto within = [budget](const std::vector<std::pair<double, double>>& curve) {
    double e = curve.front().second;
    for (const auto& [t, v] : curve) {
      if (t <= budget) e = v;
    }
    return e;
  };
  const double hf_end = within(hf_curve), sgd_end = within(sgd_curve);
  std::printf("after %.0f s: hessian_free %.5f, momentum %.5f (start %.5f)\n", budget, hf_end,
              sgd_end, start);
  EXPECT_LT(hf_end, 0.5 * start);
  // "Clearly lower": at least 10 % below momentum SGD. On an idle 2-core machine HF ended 18 %
  // below it (0.0140 vs 0.0171 after 240 s; docs/hessian-free.md has the curves): far more than
  // the ~1 % the end point moves between runs, and honest about the size of the lead, which is
  // widest on the plateau (first ~12 s) and narrows as both descend.
  EXPECT_LT(hf_end, 0.9 * sgd_end) << "HF must be clearly lower than momentum SGD";
}

}  // namespace
}  // namespace cajal
