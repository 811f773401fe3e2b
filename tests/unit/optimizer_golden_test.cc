// Five steps of every optimizer against PyTorch 1.13 (tests/data/goldens/optimizers.txt,
// written by tools/make_goldens.py; see its header for the format and how to regenerate).
//
// The network is dense(4 -> 5) -> tanh -> dense(5 -> 3) with cross-entropy on a fixed batch of
// 6; each step runs forward, loss, backward and Optimizer::Step as TrainingJob::TrainStep does,
// then every parameter is compared with PyTorch's after the same step.
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
#include "core/loss/loss.h"
#include "core/optim/optimizer.h"
#include "core/train/network.h"
#include "gtest/gtest.h"
#include "tests/unit/golden_file.h"

namespace cajal {
namespace {

constexpr int64_t kBatch = 6;
constexpr int64_t kInputs = 4;
constexpr int kClasses = 3;
constexpr int kSteps = 5;
// float32 rounding differs between the two implementations and compounds over the steps;
// adaptive methods divide by small running averages, which amplifies it.
constexpr double kTolerance = 2e-5;

const char* const kParams[] = {"layers.0.dense.weight", "layers.0.dense.bias",
                               "layers.2.dense.weight", "layers.2.dense.bias"};

const std::vector<double>& Golden(const std::string& key) {
  return GoldenFile::Get("optimizers.txt").Values(key);
}

struct OptimizerCase {
  std::string name;  // the case in the golden file
  OptimizerKind kind;
  friend void PrintTo(const OptimizerCase& c, std::ostream* os) { *os << c.name; }
};

// The golden's hyperparameters: lr, momentum, beta1, beta2, eps, rho, weight_decay, clip_norm.
OptimizerConfig ConfigFor(const OptimizerCase& c) {
  const std::vector<double>& h = Golden(c.name + ".hparams");
  OptimizerConfig config;
  config.kind = c.kind;
  if (h.size() != 8) {
    ADD_FAILURE() << c.name << ".hparams has " << h.size() << " values, want 8";
    return config;
  }
  config.learning_rate = static_cast<float>(h[0]);
  config.momentum = static_cast<float>(h[1]);
  config.beta1 = static_cast<float>(h[2]);
  config.beta2 = static_cast<float>(h[3]);
  config.epsilon = static_cast<float>(h[4]);
  config.rho = static_cast<float>(h[5]);
  config.weight_decay = static_cast<float>(h[6]);
  config.clip_norm = static_cast<float>(h[7]);
  return config;
}

class OptimizerGoldenTest : public ::testing::TestWithParam<OptimizerCase> {};

TEST_P(OptimizerGoldenTest, FiveStepsMatchPytorch) {
  const OptimizerCase& c = GetParam();
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create({DenseSpec{5}, ActivationSpec{Activation::kTanh}, DenseSpec{kClasses}},
                      /*input=*/{kInputs}, CpuBackend());
  ASSERT_TRUE(net.ok()) << net.status();
  ParamStore& store = (*net)->params();
  for (const char* name : kParams) {
    const int id = store.Find(name);
    ASSERT_GE(id, 0) << name;
    const std::vector<double>& init = Golden(std::string("init.") + name);
    ASSERT_EQ(static_cast<int64_t>(init.size()), store.count(id)) << name;
    for (size_t i = 0; i < init.size(); ++i) store.value(id)[i] = static_cast<float>(init[i]);
  }
  absl::StatusOr<Plan*> plan = (*net)->GetPlan(kBatch, Mode::kTrain);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::vector<double>& x = Golden("batch.x");
  ASSERT_EQ(static_cast<int64_t>(x.size()), kBatch * kInputs);
  for (size_t i = 0; i < x.size(); ++i) (*plan)->input()[i] = static_cast<float>(x[i]);
  std::vector<int32_t> labels;
  for (double v : Golden("batch.labels")) labels.push_back(static_cast<int32_t>(v));
  ASSERT_EQ(static_cast<int64_t>(labels.size()), kBatch);

  absl::StatusOr<std::unique_ptr<Optimizer>> optimizer = Optimizer::Create(ConfigFor(c), &store);
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  LossConfig loss;  // cross-entropy on logits
  LossTargets targets;
  targets.labels = labels.data();
  for (int step = 1; step <= kSteps; ++step) {
    EXPECT_TRUE((*plan)->Forward(step).ok());
    ComputeLoss(loss, (*plan)->output(), kBatch, kClasses, targets, (*plan)->diff(3));
    EXPECT_TRUE((*plan)->Backward(3).ok());
    EXPECT_TRUE((*optimizer)->Step().ok());
    for (const char* name : kParams) {
      const std::string key = c.name + ".step" + std::to_string(step) + "." + name;
      const std::vector<double>& want = Golden(key);
      const int id = store.Find(name);
      ASSERT_EQ(static_cast<int64_t>(want.size()), store.count(id)) << key;
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_NEAR(store.value(id)[i], want[i], kTolerance * (1 + std::abs(want[i])))
            << key << "[" << i << "]";
      }
    }
  }
  EXPECT_EQ((*optimizer)->steps(), kSteps);
}

// Every step must move the parameters, or the comparison above would pass for a no-op.
TEST(OptimizerGoldenFileTest, GoldenStepsMoveTheParameters) {
  const std::vector<double>& before = Golden("init.layers.2.dense.weight");
  const std::vector<double>& after = Golden("adam.step1.layers.2.dense.weight");
  ASSERT_EQ(before.size(), after.size());
  ASSERT_FALSE(before.empty());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_GT(std::abs(after[i] - before[i]), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, OptimizerGoldenTest,
                         ::testing::Values(OptimizerCase{"sgd", OptimizerKind::kSgd},
                                           OptimizerCase{"momentum", OptimizerKind::kMomentum},
                                           OptimizerCase{"nesterov", OptimizerKind::kNesterov},
                                           OptimizerCase{"rmsprop", OptimizerKind::kRmsprop},
                                           OptimizerCase{"adagrad", OptimizerKind::kAdagrad},
                                           OptimizerCase{"adam", OptimizerKind::kAdam},
                                           OptimizerCase{"adadelta", OptimizerKind::kAdadelta},
                                           OptimizerCase{"sgd_wd", OptimizerKind::kSgd},
                                           OptimizerCase{"momentum_wd", OptimizerKind::kMomentum},
                                           OptimizerCase{"nesterov_wd", OptimizerKind::kNesterov},
                                           OptimizerCase{"rmsprop_wd", OptimizerKind::kRmsprop},
                                           OptimizerCase{"adagrad_wd", OptimizerKind::kAdagrad},
                                           OptimizerCase{"adam_wd", OptimizerKind::kAdam},
                                           OptimizerCase{"adadelta_wd", OptimizerKind::kAdadelta},
                                           OptimizerCase{"sgd_clip", OptimizerKind::kSgd},
                                           OptimizerCase{"adam_clip", OptimizerKind::kAdam}),
                         [](const ::testing::TestParamInfo<OptimizerCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace cajal
