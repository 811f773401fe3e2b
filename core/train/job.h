// A training job as the core sees it: the resolved configuration (no protos, no flags), the
// data, the network and the loop.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<TrainingJob> job, TrainingJob::Prepare(config, CpuBackend()));
//   ASSIGN_OR_RETURN(TrainResult result, job->Run(&observer));
//
// Prepare loads the data and builds the network: every error there is a problem with the spec
// or its inputs (kInvalidArgument, kNotFound). Run's errors are training failures (kAborted:
// the loss became NaN or infinite) or backend failures.
#ifndef CAJAL_CORE_TRAIN_JOB_H_
#define CAJAL_CORE_TRAIN_JOB_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/data/dataset.h"
#include "core/init/init.h"
#include "core/layers/layers.h"
#include "core/loss/loss.h"
#include "core/optim/hessian_free.h"
#include "core/optim/optimizer.h"
#include "core/train/network.h"

namespace cajal {

enum class Preset { kNone, kPerceptron, kMlp, kLenet, kAlexnet, kRnn, kLstm, kGru, kAutoencoder };

struct DataSourceConfig {
  enum class Kind { kNone, kBuiltin, kIdx, kCsv };
  Kind kind = Kind::kNone;
  std::string builtin;
  std::string images, labels;  // idx
  IdxOptions idx;
  std::string csv_path;
  CsvOptions csv;
  Shape shape;  // empty: the file's own
  BuiltinOptions builtin_options;
};

struct JobConfig {
  Preset preset = Preset::kNone;
  std::vector<LayerSpec> layers;
  InitConfig init;
  DataSourceConfig train;
  DataSourceConfig test;  // kNone: the builtin's test split if any, else none
  NormalizeKind normalize = NormalizeKind::kNone;
  float validation_fraction = 0.0f;
  bool shuffle = true;
  OptimizerConfig optimizer;
  LossKind loss = LossKind::kCrossEntropy;
  int epochs = 1;
  int64_t batch_size = 32;
  uint64_t seed = 0;
  int64_t max_steps = 0;
  int patience = 0;
  float min_delta = 0.0f;
  int threads = 0;  // 0: all available cores
  int64_t log_every_steps = 0;
  // Autoencoders: the targets are the normalized inputs (always so for Preset::kAutoencoder).
  bool reconstruct = false;
};

// The layers of a preset for examples of `input` shape and `classes` outputs.
absl::StatusOr<std::vector<LayerSpec>> PresetLayers(Preset preset, const Shape& input, int classes);

struct StepReport {
  int epoch = 0;     // 1-based
  int64_t step = 0;  // global, 1-based
  int64_t total_steps = 0;
  double loss = 0;  // this step's mean loss
  int64_t examples = 0;
};

struct EpochReport {
  int epoch = 0;  // 1-based
  int64_t step = 0;
  double loss = 0;
  double accuracy = 0;
  bool has_val = false;
  double val_loss = 0;
  double val_accuracy = 0;
};

// Receives progress on the training thread. Implementations must be quick.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  // After every step, with TrainingJob::state() already advanced past it (a checkpoint taken
  // here resumes with the next batch). Returning false stops training at this step boundary
  // (cancellation).
  virtual bool OnStep(const StepReport&) { return true; }
  // After an epoch's evaluation, with the state already rolled over to the next epoch.
  virtual void OnEpoch(const EpochReport&) {}
  // Per-update values an optimizer reports besides the loss, before OnStep of the same step:
  // hessian_free reports "cg_iterations" and "damping".
  virtual void OnOptimizerMetric(int64_t /*step*/, const std::string& /*name*/, double /*value*/) {}
};

// Where a run is; saved in checkpoints so a resumed run continues with the same data order.
struct TrainerState {
  int epoch = 0;               // 0-based epoch in progress
  int64_t batch_in_epoch = 0;  // batches of that epoch already done
  int64_t step = 0;            // global steps done
  double epoch_loss_sum = 0;
  int64_t epoch_correct = 0;
  int64_t epoch_seen = 0;
  double best_val_loss = 0;
  int epochs_without_improvement = 0;
  bool has_best = false;
};

struct EvalResult {
  double loss = 0;
  double accuracy = 0;
  int64_t examples = 0;
};

struct TrainResult {
  std::vector<EpochReport> epochs;
  int64_t steps = 0;
  double train_seconds = 0;  // forward, loss, backward and update only
  double samples_per_sec = 0;
  bool has_test = false;
  EvalResult test;
  std::string stop_reason;  // "completed", "max_steps", "early_stopping", "cancelled"
};

class TrainingJob {
 public:
  static absl::StatusOr<std::unique_ptr<TrainingJob>> Prepare(const JobConfig& config,
                                                              Backend* backend);

  absl::StatusOr<TrainResult> Run(TrainObserver* observer);
  // Loss and accuracy over a whole data set in evaluation mode.
  absl::StatusOr<EvalResult> Evaluate(const Dataset& data, const std::vector<int64_t>& indices);
  absl::StatusOr<EvalResult> EvaluateTest();

  Network& network() { return *network_; }
  Optimizer& optimizer() { return *optimizer_; }
  TrainerState& state() { return state_; }
  const JobConfig& config() const { return config_; }
  const Dataset& train_data() const { return train_; }
  bool has_test() const { return test_.has_value(); }
  int64_t total_steps() const { return total_steps_; }
  int threads() const { return threads_; }

 private:
  TrainingJob() = default;
  absl::Status Build(Backend* backend);
  // One optimization step on the batch `indices`; returns its summed loss and correct count.
  absl::StatusOr<LossOutput> TrainStep(const int64_t* indices, int64_t n);

  JobConfig config_;
  Dataset train_;
  std::optional<Dataset> test_;
  std::vector<int64_t> train_indices_, val_indices_, test_indices_;
  Normalization norm_;
  std::unique_ptr<Network> network_;
  std::unique_ptr<Optimizer> optimizer_;
  // optimizer.kind hessian_free: drives its own update; optimizer_ then only counts steps.
  std::unique_ptr<HessianFree> hf_;
  HfStepResult hf_last_;
  std::vector<float> hf_input_;  // the gradient batch's normalized inputs
  bool reconstruct_ = false;
  LossConfig loss_;
  int loss_at_ = 0;  // index of the activation the loss reads its gradient into
  TrainerState state_;
  int64_t total_steps_ = 0;
  int threads_ = 1;
  std::vector<int32_t> labels_;
  std::vector<float> targets_;
};

}  // namespace cajal

#endif  // CAJAL_CORE_TRAIN_JOB_H_
