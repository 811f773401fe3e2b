// The classic: Rosenblatt's perceptron learns AND and OR but not XOR; backpropagation through a
// hidden layer learns XOR. Each test runs a whole TrainingJob on the builtin truth tables.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/train/job.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

const std::vector<int64_t> kAllRows = {0, 1, 2, 3};

// A perceptron job on the builtin truth table `name`: dense(1) -> threshold, zero weights,
// Rosenblatt's rule one example at a time.
JobConfig PerceptronConfig(const std::string& name, int epochs) {
  JobConfig c;
  c.train.kind = DataSourceConfig::Kind::kBuiltin;
  c.train.builtin = name;
  c.preset = Preset::kPerceptron;
  c.init.kind = InitKind::kZeros;
  c.optimizer.kind = OptimizerKind::kPerceptronRule;
  c.optimizer.learning_rate = 1.0f;
  c.loss = LossKind::kMse;
  c.batch_size = 1;
  c.epochs = epochs;
  c.seed = 3;
  c.threads = 1;
  return c;
}

// Prepares and runs the job to completion; null (with a test failure) if either fails.
std::unique_ptr<TrainingJob> Train(const JobConfig& config) {
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(config, CpuBackend());
  EXPECT_TRUE(job.ok()) << job.status();
  if (!job.ok()) return nullptr;
  absl::StatusOr<TrainResult> result = (*job)->Run(/*observer=*/nullptr);
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok()) return nullptr;
  EXPECT_EQ(result->stop_reason, StopReason::kCompleted);
  EXPECT_EQ(result->steps, 4 / config.batch_size * config.epochs);
  return *std::move(job);
}

// Loss and accuracy over the four rows, in evaluation mode.
EvalResult EvaluateAll(TrainingJob& job) {
  absl::StatusOr<EvalResult> eval = job.Evaluate(job.train_data(), kAllRows);
  EXPECT_TRUE(eval.ok()) << eval.status();
  if (!eval.ok()) return EvalResult{/*loss=*/-1, /*accuracy=*/-1, /*examples=*/0};
  EXPECT_EQ(eval->examples, 4);
  return *eval;
}

TEST(PerceptronTest, LearnsAnd) {
  std::unique_ptr<TrainingJob> job = Train(PerceptronConfig("and", /*epochs=*/20));
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(EvaluateAll(*job).accuracy, 1.0);
  // The separating line w·x + b = 0 puts only (1, 1) on the positive side: both weights
  // positive, the bias negative, and w_i + b <= 0 < w_1 + w_2 + b.
  ParamStore& p = job->network().params();
  const float* w = p.value(p.Find("layers.0.dense.weight"));
  const float b = *p.value(p.Find("layers.0.dense.bias"));
  EXPECT_GT(w[0], 0);
  EXPECT_GT(w[1], 0);
  EXPECT_LE(w[0] + b, 0);
  EXPECT_LE(w[1] + b, 0);
  EXPECT_GT(w[0] + w[1] + b, 0);
}

TEST(PerceptronTest, LearnsOr) {
  std::unique_ptr<TrainingJob> job = Train(PerceptronConfig("or", /*epochs=*/20));
  ASSERT_NE(job, nullptr);
  const EvalResult eval = EvaluateAll(*job);
  EXPECT_EQ(eval.accuracy, 1.0);
  EXPECT_EQ(eval.loss, 0.0);  // every threshold output equals its target
}

// XOR is not linearly separable: w1 + b > 0 and w2 + b > 0 (rows (1,0), (0,1)) add to
// w1 + w2 + 2b > 0, while b <= 0 (row (0,0)) and w1 + w2 + b <= 0 (row (1,1)) add to
// w1 + w2 + 2b <= 0. No w, b satisfies all four rows, so the perceptron convergence theorem
// does not apply and the rule cycles forever; at least one row is always wrong.
TEST(PerceptronTest, CannotLearnXor) {
  std::unique_ptr<TrainingJob> job = Train(PerceptronConfig("xor", /*epochs=*/100));
  ASSERT_NE(job, nullptr);
  const EvalResult eval = EvaluateAll(*job);
  EXPECT_GE(eval.accuracy, 0.0);
  EXPECT_LT(eval.accuracy, 1.0);
  EXPECT_GT(eval.loss, 0.0);
}

// Rosenblatt's rule needs a threshold unit at the end; anything else is refused up front.
TEST(PerceptronTest, RuleNeedsThresholdOutput) {
  JobConfig c = PerceptronConfig("and", /*epochs=*/1);
  c.preset = Preset::kNone;
  c.layers = {DenseSpec{1}};
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(c, CpuBackend());
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(job.status().message().find("last layer must be threshold"), std::string::npos)
      << job.status();
}

// One hidden layer trained by backpropagation separates XOR.
TEST(PerceptronTest, MlpLearnsXorByBackpropagation) {
  JobConfig c;
  c.train.kind = DataSourceConfig::Kind::kBuiltin;
  c.train.builtin = "xor";
  c.layers = {DenseSpec{8}, ActivationSpec{Activation::kTanh}, DenseSpec{2}};
  c.init.kind = InitKind::kXavierUniform;
  c.optimizer.kind = OptimizerKind::kAdam;
  c.optimizer.learning_rate = 0.05f;
  c.loss = LossKind::kCrossEntropy;
  c.batch_size = 4;
  c.epochs = 300;
  c.seed = 1;
  c.threads = 1;
  std::unique_ptr<TrainingJob> job = Train(c);
  ASSERT_NE(job, nullptr);
  const EvalResult eval = EvaluateAll(*job);
  EXPECT_EQ(eval.accuracy, 1.0);
  EXPECT_LT(eval.loss, 0.05);  // confident, not just on the right side of 0.5
}

}  // namespace
}  // namespace cajal
