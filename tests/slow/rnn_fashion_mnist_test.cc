// The `lstm` preset (one LSTM layer of 128 over the 28 image rows, last step -> dense 10)
// reaches at least 87% test accuracy on Fashion-MNIST within 5 epochs (Adam 1e-3, batch 64),
// and examples/lstm.yaml spells out the same network.
#include <unistd.h>

#include <iostream>
#include <memory>
#include <string>

#include "core/backend/backend.h"
#include "core/train/job.h"
#include "gtest/gtest.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"

namespace cajal {
namespace {

constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

class Printer : public TrainObserver {
 public:
  void OnEpoch(const EpochReport& e) override {
    std::cout << "epoch=" << e.epoch << " loss=" << e.loss << " accuracy=" << e.accuracy
              << " val_loss=" << e.val_loss << " val_accuracy=" << e.val_accuracy << std::endl;
  }
};

absl::StatusOr<JobConfig> Config(const std::string& text) {
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(text);
  if (!spec.ok()) return spec.status();
  return ToJobConfig(*spec);
}

TEST(RnnFashionMnistTest, LstmPresetReaches87Percent) {
  if (::access(kFashionMnist, F_OK) != 0) GTEST_SKIP() << kFashionMnist << " is missing";
  absl::StatusOr<JobConfig> config = Config(
      "model: {preset: lstm}\n"
      "data: {train: {builtin: fashion-mnist}, normalize: scale}\n"
      "optimizer: {kind: adam, learning_rate: 0.001}\n"
      "training: {epochs: 5, batch_size: 64, seed: 1, loss: cross_entropy}\n");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(*config, CpuBackend());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ((*job)->network().shapes()[1], (Shape{128}));
  Printer printer;
  absl::StatusOr<TrainResult> result = (*job)->Run(&printer);
  ASSERT_TRUE(result.ok()) << result.status();
  std::cout << "test_accuracy=" << result->test.accuracy
            << " samples_per_sec=" << result->samples_per_sec << " threads=" << (*job)->threads()
            << std::endl;
  ASSERT_EQ(result->epochs.size(), 5u);
  ASSERT_TRUE(result->has_test);
  EXPECT_GE(result->test.accuracy, 0.87);
}

// examples/lstm.yaml (the benchmark's model) is the preset written out.
TEST(RnnFashionMnistTest, ExampleSpecIsThePreset) {
  if (::access(kFashionMnist, F_OK) != 0) GTEST_SKIP() << kFashionMnist << " is missing";
  absl::StatusOr<v1::JobSpec> spec =
      LoadSpecFile(std::string(CAJAL_SOURCE_DIR) + "/examples/lstm.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<JobConfig> config = ToJobConfig(*spec);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->layers.size(), 2u);
  const auto* lstm = std::get_if<RecurrentSpec>(&config->layers[0]);
  ASSERT_NE(lstm, nullptr);
  EXPECT_EQ(lstm->cell, RecurrentCell::kLstm);
  EXPECT_EQ(lstm->units, 128);
  EXPECT_EQ(std::get<DenseSpec>(config->layers[1]).units, 10);
  EXPECT_EQ(config->batch_size, 64);
  EXPECT_EQ(config->epochs, 5);
}

}  // namespace
}  // namespace cajal
