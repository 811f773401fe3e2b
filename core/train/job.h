// A training job as the core sees it: the resolved configuration (no protos, no flags), the
// data, the network and the loop.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<TrainingJob> job, TrainingJob::Prepare(config));
//   ASSIGN_OR_RETURN(TrainResult result, job->Run(&observer));
//
// The job's parts, one file each: building (job.cc: data, network, loss, optimizer), the step
// (step.cc: batch, forward, loss, backward, gradient reduction, update), evaluation
// (evaluate.cc) and the loop (loop.cc: epochs and the stop decisions). Checkpoints are
// train/checkpoint.h.
//
// Data-parallel (PrepareOptions::collective with size N > 1): every rank runs the same job;
// a step takes batch_size examples on each rank (global batch N·batch_size, the epoch's
// order split in consecutive per-rank slices), sums the gradients of all ranks (in buckets,
// overlapped with the backward pass) before the update, and reduces the loss, evaluation sums
// and stop decisions, so every rank takes the same decisions. See docs/distributed.md.
//
// Prepare loads the data and builds the network: every error there is a problem with the spec
// or its inputs (kInvalidArgument, kNotFound), or kResourceExhausted when it does not fit, or
// kFailedPrecondition when the device asked for is missing. Run's errors are training failures
// (kAborted: the loss became NaN or infinite) or backend failures (kInternal,
// kResourceExhausted), naming the layer. Nothing here throws.
#ifndef CAJAL_CORE_TRAIN_JOB_H_
#define CAJAL_CORE_TRAIN_JOB_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/backend/registry.h"
#include "core/collective/collective.h"
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
  int threads = 0;  // 0: all available cores (divided among the ranks on this machine)
  int64_t log_every_steps = 0;
  DeviceChoice device = DeviceChoice::kAuto;
  // Data-parallel: batch norm computes its batch statistics over every rank's examples.
  bool sync_batch_norm = false;
  // Autoencoders: the targets are the normalized inputs (always so for Preset::kAutoencoder).
  bool reconstruct = false;
};

// The layers of a preset for examples of `input` shape and `classes` outputs.
absl::StatusOr<std::vector<LayerSpec>> PresetLayers(Preset preset, const Shape& input, int classes);

// Why a run stopped.
enum class StopReason { kCompleted, kMaxSteps, kEarlyStopping, kCancelled };
// "completed", "max_steps", "early_stopping", "cancelled".
const char* StopReasonName(StopReason reason);

struct StepReport {
  int epoch = 0;     // 1-based
  int64_t step = 0;  // global, 1-based
  int64_t total_steps = 0;
  double loss = 0;       // this step's mean loss (over every rank's examples)
  int64_t examples = 0;  // this rank's examples
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
  // (cancellation); data-parallel ranks stop together, at the first boundary where any of
  // them returned false.
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
  StopReason stop_reason = StopReason::kCompleted;
  // Data-parallel: time the training thread waited for gradient sums (beyond what overlapped
  // with the backward pass), and the digest of the trainable parameters, checked equal on
  // every rank after training (FNV-1a 64 of their bytes).
  double reduce_wait_seconds = 0;
  uint64_t param_digest = 0;
};

class GradientReducer;

// How a job runs, as opposed to what it trains (JobConfig).
struct PrepareOptions {
  // Null: chosen from JobConfig::device by the registry (backend/registry.h).
  Backend* backend = nullptr;
  // Null: a single process.
  Collective* collective = nullptr;
};

class TrainingJob {
 public:
  static absl::StatusOr<std::unique_ptr<TrainingJob>> Prepare(const JobConfig& config,
                                                              const PrepareOptions& options = {});
  static absl::StatusOr<std::unique_ptr<TrainingJob>> Prepare(const JobConfig& config,
                                                              Backend* backend) {
    return Prepare(config, PrepareOptions{backend, nullptr});
  }

  ~TrainingJob();

  absl::StatusOr<TrainResult> Run(TrainObserver* observer);
  // Loss and accuracy over a whole data set in evaluation mode (data-parallel: each rank a
  // slice, the sums reduced).
  absl::StatusOr<EvalResult> Evaluate(const Dataset& data, const std::vector<int64_t>& indices);
  absl::StatusOr<EvalResult> EvaluateTest();
  // What the loss reads for `indices` of `data`, in evaluation mode, as host values
  // (indices.size() × its width), on this rank alone: the logits — the input of a final
  // softmax (cross_entropy) or sigmoid (binary_cross_entropy) fused with the loss — or else
  // the network's output. `cajal evaluate --logits_out` writes them for the ONNX checks.
  absl::StatusOr<std::vector<float>> Predict(const Dataset& data,
                                             const std::vector<int64_t>& indices);
  // Data-parallel: rank 0's parameters, optimizer state and position to every rank (after a
  // restore). A no-op in one process.
  absl::Status SyncReplicas();

  Network& network() { return *network_; }
  Optimizer& optimizer() { return *optimizer_; }
  TrainerState& state() { return state_; }
  const JobConfig& config() const { return config_; }
  const Dataset& train_data() const { return train_; }
  bool has_test() const { return test_.has_value(); }
  const Dataset* test_data() const { return test_ ? &*test_ : nullptr; }
  int64_t total_steps() const { return total_steps_; }
  int threads() const { return threads_; }
  Backend* backend() const { return backend_; }
  Collective& collective() { return *collective_; }
  const Normalization& normalization() const { return norm_; }

 private:
  TrainingJob() = default;
  // job.cc: the parts of Prepare.
  absl::Status Build();
  void SplitData();
  absl::StatusOr<std::vector<LayerSpec>> ResolveLayers(int classes) const;
  absl::Status CheckOutputs(const std::vector<LayerSpec>& layers, int classes) const;
  void ConfigureLoss(const std::vector<LayerSpec>& layers);
  absl::Status AllocateBatchBuffers();
  // step.cc: one optimization step on this rank's slice `indices` of a global batch of
  // `global_n` examples; returns this rank's summed loss and correct count.
  absl::StatusOr<LossOutput> TrainStep(const int64_t* indices, int64_t n, int64_t global_n);
  absl::StatusOr<LossOutput> HessianFreeStep(const int64_t* indices, int64_t n);
  // Writes examples `indices` of `data` into the plan's input and the job's label/target
  // buffers, on the device; returns the loss targets.
  absl::StatusOr<LossTargets> LoadBatch(const Dataset& data, const int64_t* indices, int64_t n,
                                        Plan* plan);
  // loop.cc: the steps of epochs in this rank's share, and this rank's slice of a step.
  int64_t StepsPerEpoch() const;
  std::pair<int64_t, int64_t> RankSlice(int64_t global_start, int64_t global_n) const;
  // Data-parallel: the trainable parameters' digest, the same on every rank, or kInternal.
  absl::StatusOr<uint64_t> CheckReplicas();

  JobConfig config_;
  Backend* backend_ = nullptr;
  std::unique_ptr<Collective> own_collective_;  // when PrepareOptions gave none
  Collective* collective_ = nullptr;
  std::unique_ptr<GradientReducer> reducer_;  // data-parallel only
  std::unique_ptr<LossKernel> loss_kernel_;
  // Host staging of a batch's input, labels and targets (pinned and double-buffered on a GPU;
  // null on the CPU, which gathers in place) and the device's label and target buffers, for
  // batches up to batch_size.
  std::unique_ptr<BatchUpload> upload_;
  DeviceBuffer device_labels_, device_targets_;
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
};

}  // namespace cajal

#endif  // CAJAL_CORE_TRAIN_JOB_H_
