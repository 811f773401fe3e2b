// TrainingJob's build: data, network, loss, optimizer. The step, evaluation and loop are in
// step.cc, evaluate.cc and loop.cc.
#include "core/train/job.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/train/data_parallel.h"
#include "core/util/cores.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

absl::StatusOr<Dataset> LoadSource(const DataSourceConfig& src, const char* field,
                                   bool test_split) {
  absl::StatusOr<Dataset> ds;
  switch (src.kind) {
    case DataSourceConfig::Kind::kBuiltin: {
      BuiltinOptions o = src.builtin_options;
      o.test_split = test_split;
      ds = LoadBuiltin(src.builtin, o);
      break;
    }
    case DataSourceConfig::Kind::kIdx:
      ds = LoadIdx(src.images, src.labels, src.idx);
      break;
    case DataSourceConfig::Kind::kCsv:
      ds = LoadCsv(src.csv_path, src.csv);
      break;
    case DataSourceConfig::Kind::kNone:
      return absl::InvalidArgumentError(absl::StrCat(field, ": no data source given"));
  }
  if (!ds.ok()) {
    return absl::Status(ds.status().code(), absl::StrCat(field, ": ", ds.status().message()));
  }
  if (!src.shape.empty()) {
    if (absl::Status s = Reshape(src.shape, &*ds); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".shape: ", s.message()));
    }
  }
  return ds;
}

bool LastIs(const std::vector<LayerSpec>& layers, Activation kind) {
  const auto* a = std::get_if<ActivationSpec>(&layers.back());
  return a != nullptr && a->kind == kind;
}

// The threads of one rank: its share of the cores this process may use, at most
// training.threads. Data-parallel ranks on one machine divide the cores among them, unless the
// launcher already bound each rank to cores of its own (mpirun's default for few ranks).
int RankThreads(int requested, const Collective& collective) {
  const int local = collective.local_size();
  const int share =
      local > 1 && !AffinityRestricted() ? std::max(1, AvailableCores() / local) : AvailableCores();
  return requested > 0 ? std::min(requested, share) : share;
}

}  // namespace

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxSteps:
      return "max_steps";
    case StopReason::kEarlyStopping:
      return "early_stopping";
    case StopReason::kCancelled:
      return "cancelled";
    default:
      return "completed";
  }
}

TrainingJob::~TrainingJob() = default;

absl::StatusOr<std::unique_ptr<TrainingJob>> TrainingJob::Prepare(const JobConfig& config,
                                                                  const PrepareOptions& options) {
  std::unique_ptr<TrainingJob> job(new TrainingJob());
  job->config_ = config;
  if (options.backend != nullptr) {
    job->backend_ = options.backend;
  } else {
    ASSIGN_OR_RETURN(job->backend_, GetBackend({config.device}));
  }
  if (options.collective != nullptr) {
    job->collective_ = options.collective;
  } else {
    job->own_collective_ = SingleProcessCollective();
    job->collective_ = job->own_collective_.get();
  }
  ASSIGN_OR_RETURN(job->train_, LoadSource(config.train, "data.train", false));
  if (config.test.kind != DataSourceConfig::Kind::kNone) {
    ASSIGN_OR_RETURN(job->test_, LoadSource(config.test, "data.test", true));
  } else if (config.train.kind == DataSourceConfig::Kind::kBuiltin &&
             BuiltinHasTestSplit(config.train.builtin)) {
    ASSIGN_OR_RETURN(job->test_, LoadSource(config.train, "data.train", true));
  }
  if (job->test_.has_value()) {
    const Dataset& tr = job->train_;
    const Dataset& te = *job->test_;
    if (te.shape != tr.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.test: examples have shape ", ShapeToString(te.shape),
                       " but the training examples have ", ShapeToString(tr.shape)));
    }
    if (te.classification() != tr.classification()) {
      return absl::InvalidArgumentError(
          "data.test: one of data.train and data.test has class labels and the other real "
          "targets");
    }
  }
  RETURN_IF_ERROR(job->Build());
  return job;
}

// Validation split: a seeded shuffle, the last fraction held out; the test set whole.
void TrainingJob::SplitData() {
  const JobConfig& c = config_;
  std::vector<int64_t> all(static_cast<size_t>(train_.count));
  std::iota(all.begin(), all.end(), 0);
  if (c.validation_fraction > 0) {
    std::mt19937_64 rng(c.seed ^ 0xA5A5A5A5ULL);
    std::shuffle(all.begin(), all.end(), rng);
    const int64_t val = static_cast<int64_t>(std::floor(c.validation_fraction * train_.count));
    val_indices_.assign(all.end() - val, all.end());
    all.resize(all.size() - val);
    std::sort(val_indices_.begin(), val_indices_.end());
    std::sort(all.begin(), all.end());
  }
  train_indices_ = std::move(all);
  if (test_.has_value()) {
    test_indices_.resize(static_cast<size_t>(test_->count));
    std::iota(test_indices_.begin(), test_indices_.end(), 0);
  }
}

absl::StatusOr<std::vector<LayerSpec>> TrainingJob::ResolveLayers(int classes) const {
  const JobConfig& c = config_;
  std::vector<LayerSpec> layers = c.layers;
  if (c.preset != Preset::kNone) {
    const int outputs = train_.classification() ? classes : train_.target_dim;
    ASSIGN_OR_RETURN(layers, PresetLayers(c.preset, train_.shape, outputs));
  }
  if (layers.empty()) return absl::InvalidArgumentError("model: set either preset or layers");
  for (size_t i = 0; i < layers.size(); ++i) {
    if (std::holds_alternative<ThresholdSpec>(layers[i]) &&
        c.optimizer.kind != OptimizerKind::kPerceptronRule) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.layers.", i,
                       " (threshold): a threshold unit has no gradient; train it with "
                       "optimizer.kind: perceptron_rule"));
    }
  }
  const bool threshold_last = std::holds_alternative<ThresholdSpec>(layers.back());
  if (c.optimizer.kind == OptimizerKind::kPerceptronRule && !threshold_last) {
    return absl::InvalidArgumentError(
        "optimizer.kind: perceptron_rule trains threshold units; the last layer must be "
        "threshold");
  }
  if (c.optimizer.kind == OptimizerKind::kPerceptronRule && c.loss != LossKind::kMse) {
    return absl::InvalidArgumentError(
        "training.loss: perceptron_rule learns from the error y - ŷ of threshold units; use "
        "loss mse (or leave it unset)");
  }
  return layers;
}

// The network's output against the targets and the loss.
absl::Status TrainingJob::CheckOutputs(const std::vector<LayerSpec>& layers, int classes) const {
  const JobConfig& c = config_;
  const int64_t out = NumElements(network_->output_shape());
  const int last = static_cast<int>(layers.size()) - 1;
  const std::string where =
      absl::StrCat("model.layers.", last, " (", LayerKindName(layers.back()), ")");
  if (reconstruct_) {
    if (c.loss == LossKind::kCrossEntropy) {
      return absl::InvalidArgumentError(
          "training.loss: an autoencoder reconstructs its input; use mse or binary_cross_entropy");
    }
    if (out != train_.example_size()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": the network has ", out,
                                                     " outputs but reconstructs inputs of ",
                                                     train_.example_size(), " values"));
    }
  } else if (train_.classification()) {
    const bool ok = c.loss == LossKind::kCrossEntropy
                        ? out == classes && out >= 2
                        : out == classes || (out == 1 && classes == 2);
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": the network has ", out, " outputs but the data has ", classes, " classes; ",
          c.loss == LossKind::kCrossEntropy ? "cross_entropy needs one output per class"
                                            : "use one output per class (or 1 for 2 classes)"));
    }
  } else {
    if (c.loss == LossKind::kCrossEntropy) {
      return absl::InvalidArgumentError(
          "training.loss: cross_entropy needs class labels, but the data has real-valued "
          "targets; use mse");
    }
    if (out != train_.target_dim) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": the network has ", out,
                                                     " outputs but the targets have ",
                                                     train_.target_dim, " values"));
    }
  }
  return absl::OkStatus();
}

void TrainingJob::ConfigureLoss(const std::vector<LayerSpec>& layers) {
  const JobConfig& c = config_;
  const int64_t out = NumElements(network_->output_shape());
  loss_.kind = c.loss;
  loss_.fused = layers.size() >= 2 &&
                ((c.loss == LossKind::kCrossEntropy && LastIs(layers, Activation::kSoftmax)) ||
                 (c.loss == LossKind::kBinaryCrossEntropy && LastIs(layers, Activation::kSigmoid)));
  loss_.perceptron_error = c.optimizer.kind == OptimizerKind::kPerceptronRule;
  if (!train_.classification() || reconstruct_) {
    loss_.accuracy = AccuracyRule::kNone;
  } else if (std::holds_alternative<ThresholdSpec>(layers.back())) {
    loss_.accuracy = AccuracyRule::kExactMatch;
  } else {
    loss_.accuracy = out == 1 ? AccuracyRule::kThreshold : AccuracyRule::kArgmax;
  }
  loss_at_ = static_cast<int>(layers.size()) - (loss_.fused ? 1 : 0);
}

// The label and target buffers of the largest batch on the device, and their host staging
// where the device is not host memory.
absl::Status TrainingJob::AllocateBatchBuffers() {
  const int64_t batch = std::max<int64_t>(config_.batch_size, 1);
  const size_t label_bytes = static_cast<size_t>(batch) * sizeof(int32_t);
  const size_t target_bytes =
      static_cast<size_t>(batch * std::max(1, train_.target_dim)) * sizeof(float);
  ASSIGN_OR_RETURN(device_labels_, backend_->Allocate(label_bytes));
  ASSIGN_OR_RETURN(device_targets_, backend_->Allocate(target_bytes));
  if (!backend_->host_visible()) {
    const size_t input_bytes = static_cast<size_t>(batch * train_.example_size()) * sizeof(float);
    ASSIGN_OR_RETURN(upload_, backend_->MakeBatchUpload({input_bytes, label_bytes, target_bytes}));
  }
  return absl::OkStatus();
}

absl::Status TrainingJob::Build() {
  const JobConfig& c = config_;
  if (c.validation_fraction > 0) {
    const int64_t val = static_cast<int64_t>(std::floor(c.validation_fraction * train_.count));
    if (val < 1 || val >= train_.count) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.validation_fraction: ", c.validation_fraction, " of ", train_.count,
                       " examples leaves an empty training or validation set"));
    }
  }
  SplitData();
  norm_ = FitNormalization(c.normalize, train_, train_indices_);
  const int classes = std::max(train_.num_classes, test_ ? test_->num_classes : 0);
  if (train_.classification()) {
    train_.num_classes = classes;
    if (test_) test_->num_classes = classes;
  }
  ASSIGN_OR_RETURN(std::vector<LayerSpec> layers, ResolveLayers(classes));
  const bool distributed = collective_->size() > 1;
  if (distributed && c.optimizer.kind == OptimizerKind::kHessianFree) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.kind: hessian_free does not run data-parallel (this job has ",
        collective_->size(), " ranks); run it in one process, or choose a first-order optimizer"));
  }
  if (c.optimizer.kind == OptimizerKind::kHessianFree && backend_->kind() != DeviceKind::kCpu) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.kind: hessian_free runs on the cpu only; this job runs on ",
                     backend_->name(), " (set training.device: cpu)"));
  }
  NetworkOptions net_options;
  net_options.seed = c.seed;
  if (distributed && c.sync_batch_norm) net_options.sync_batch_norm = collective_;
  ASSIGN_OR_RETURN(network_, Network::Create(layers, train_.shape, backend_, net_options));
  reconstruct_ = c.reconstruct || c.preset == Preset::kAutoencoder;
  RETURN_IF_ERROR(CheckOutputs(layers, classes));
  ConfigureLoss(layers);

  RETURN_IF_ERROR(InitializeParams(c.init, c.seed, &network_->params()));
  ASSIGN_OR_RETURN(optimizer_, Optimizer::Create(c.optimizer, &network_->params()));
  if (c.optimizer.kind == OptimizerKind::kHessianFree) {
    ASSIGN_OR_RETURN(
        hf_, HessianFree::Create(network_.get(), loss_, loss_at_, c.optimizer.hessian_free));
  }
  total_steps_ = StepsPerEpoch() * c.epochs;
  if (c.max_steps > 0) total_steps_ = std::min(total_steps_, c.max_steps);
  threads_ = RankThreads(c.threads, *collective_);
  ASSIGN_OR_RETURN(loss_kernel_,
                   backend_->MakeLoss(loss_, c.batch_size, NumElements(network_->output_shape())));
  RETURN_IF_ERROR(AllocateBatchBuffers());
  if (distributed) {
    reducer_ = GradientReducer::Create(network_.get(), collective_);
    // Every rank starts from rank 0's initial parameters (they are equal already, from the
    // same seed; this makes it so whatever the backend's initialization order).
    RETURN_IF_ERROR(SyncReplicas());
  }
  // Compile the full-batch training plan now, so a backend error surfaces before training.
  omp_set_num_threads(threads_);
  const int64_t first = std::min<int64_t>(c.batch_size, train_indices_.size());
  return network_->GetPlan(first, Mode::kTrain).status();
}

}  // namespace cajal
