#include "core/train/job.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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

// Permutation of `indices` for one epoch: a function of (seed, epoch) only, so a resumed run
// sees the same order.
std::vector<int64_t> EpochOrder(const std::vector<int64_t>& indices, uint64_t seed, int epoch,
                                bool shuffle) {
  std::vector<int64_t> order = indices;
  if (shuffle) {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
    std::shuffle(order.begin(), order.end(), rng);
  }
  return order;
}

bool LastIs(const std::vector<LayerSpec>& layers, Activation kind) {
  const auto* a = std::get_if<ActivationSpec>(&layers.back());
  return a != nullptr && a->kind == kind;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TrainingJob>> TrainingJob::Prepare(const JobConfig& config,
                                                                  Backend* backend) {
  std::unique_ptr<TrainingJob> job(new TrainingJob());
  job->config_ = config;
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
  RETURN_IF_ERROR(job->Build(backend));
  return job;
}

absl::Status TrainingJob::Build(Backend* backend) {
  const JobConfig& c = config_;
  // Validation split: a seeded shuffle, the last fraction held out.
  std::vector<int64_t> all(static_cast<size_t>(train_.count));
  std::iota(all.begin(), all.end(), 0);
  if (c.validation_fraction > 0) {
    std::mt19937_64 rng(c.seed ^ 0xA5A5A5A5ULL);
    std::shuffle(all.begin(), all.end(), rng);
    const int64_t val = static_cast<int64_t>(std::floor(c.validation_fraction * train_.count));
    if (val < 1 || val >= train_.count) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.validation_fraction: ", c.validation_fraction, " of ", train_.count,
                       " examples leaves an empty training or validation set"));
    }
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
  norm_ = FitNormalization(c.normalize, train_, train_indices_);

  const int classes = std::max(train_.num_classes, test_ ? test_->num_classes : 0);
  if (train_.classification()) {
    train_.num_classes = classes;
    if (test_) test_->num_classes = classes;
  }
  std::vector<LayerSpec> layers = c.layers;
  if (c.preset != Preset::kNone) {
    const int outputs = train_.classification() ? classes : train_.target_dim;
    ASSIGN_OR_RETURN(layers, PresetLayers(c.preset, train_.shape, outputs));
  }
  if (layers.empty()) {
    return absl::InvalidArgumentError("model: set either preset or layers");
  }
  ASSIGN_OR_RETURN(network_, Network::Create(layers, train_.shape, backend, c.seed));

  // The network's output against the targets and the loss.
  const int64_t out = NumElements(network_->output_shape());
  const int last = static_cast<int>(layers.size()) - 1;
  const std::string where =
      absl::StrCat("model.layers.", last, " (", LayerKindName(layers.back()), ")");
  const bool threshold_last = std::holds_alternative<ThresholdSpec>(layers.back());
  for (size_t i = 0; i < layers.size(); ++i) {
    if (std::holds_alternative<ThresholdSpec>(layers[i]) &&
        c.optimizer.kind != OptimizerKind::kPerceptronRule) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.layers.", i,
                       " (threshold): a threshold unit has no gradient; train it with "
                       "optimizer.kind: perceptron_rule"));
    }
  }
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
  reconstruct_ = c.reconstruct || c.preset == Preset::kAutoencoder;
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

  loss_.kind = c.loss;
  loss_.fused = layers.size() >= 2 &&
                ((c.loss == LossKind::kCrossEntropy && LastIs(layers, Activation::kSoftmax)) ||
                 (c.loss == LossKind::kBinaryCrossEntropy && LastIs(layers, Activation::kSigmoid)));
  loss_.perceptron_error = c.optimizer.kind == OptimizerKind::kPerceptronRule;
  if (!train_.classification() || reconstruct_) {
    loss_.accuracy = AccuracyRule::kNone;
  } else if (threshold_last) {
    loss_.accuracy = AccuracyRule::kExactMatch;
  } else {
    loss_.accuracy = out == 1 ? AccuracyRule::kThreshold : AccuracyRule::kArgmax;
  }
  loss_at_ = static_cast<int>(layers.size()) - (loss_.fused ? 1 : 0);

  InitializeParams(c.init, c.seed, &network_->params());
  ASSIGN_OR_RETURN(optimizer_, Optimizer::Create(c.optimizer, &network_->params()));
  if (c.optimizer.kind == OptimizerKind::kHessianFree) {
    ASSIGN_OR_RETURN(
        hf_, HessianFree::Create(network_.get(), loss_, loss_at_, c.optimizer.hessian_free));
  }

  const int64_t per_epoch =
      (static_cast<int64_t>(train_indices_.size()) + c.batch_size - 1) / c.batch_size;
  total_steps_ = per_epoch * c.epochs;
  if (c.max_steps > 0) total_steps_ = std::min(total_steps_, c.max_steps);
  threads_ = c.threads > 0 ? std::min(c.threads, AvailableCores()) : AvailableCores();
  labels_.resize(static_cast<size_t>(c.batch_size));
  targets_.resize(static_cast<size_t>(c.batch_size * std::max(1, train_.target_dim)));
  // Compile the full-batch training plan now, so a backend error surfaces before training.
  omp_set_num_threads(threads_);
  const int64_t first = std::min<int64_t>(c.batch_size, train_indices_.size());
  return network_->GetPlan(first, Mode::kTrain).status();
}

absl::StatusOr<LossOutput> TrainingJob::TrainStep(const int64_t* indices, int64_t n) {
  if (hf_ != nullptr) {
    // Hessian-free runs its own forward/backward passes and CG on copies of the batch.
    hf_input_.resize(static_cast<size_t>(n * train_.example_size()));
    GatherBatch(train_, norm_, indices, n, hf_input_.data(), labels_.data(), targets_.data());
    LossTargets t;
    if (reconstruct_) {
      t.values = hf_input_.data();
    } else if (train_.classification()) {
      t.labels = labels_.data();
    } else {
      t.values = targets_.data();
    }
    ASSIGN_OR_RETURN(hf_last_, hf_->Step(hf_input_.data(), t, n, state_.step));
    optimizer_->set_steps(optimizer_->steps() + 1);
    return hf_last_.loss;
  }
  ASSIGN_OR_RETURN(Plan * plan, network_->GetPlan(n, Mode::kTrain));
  GatherBatch(train_, norm_, indices, n, plan->input(), labels_.data(), targets_.data());
  plan->Forward(state_.step);
  const int64_t d = NumElements(network_->output_shape());
  LossTargets t;
  if (reconstruct_) {
    t.values = plan->input();
  } else if (train_.classification()) {
    t.labels = labels_.data();
  } else {
    t.values = targets_.data();
  }
  const LossOutput out = ComputeLoss(loss_, plan->output(), n, d, t, plan->diff(loss_at_));
  if (!std::isfinite(out.sum)) return out;
  plan->Backward(loss_at_);
  optimizer_->Step();
  return out;
}

absl::StatusOr<EvalResult> TrainingJob::Evaluate(const Dataset& data,
                                                 const std::vector<int64_t>& indices) {
  omp_set_num_threads(threads_);
  EvalResult r;
  const int64_t d = NumElements(network_->output_shape());
  const int64_t batch = config_.batch_size;
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  std::vector<float> targets(static_cast<size_t>(batch * std::max(1, data.target_dim)));
  double loss_sum = 0;
  int64_t correct = 0;
  for (size_t start = 0; start < indices.size(); start += batch) {
    const int64_t n = std::min<int64_t>(batch, indices.size() - start);
    ASSIGN_OR_RETURN(Plan * plan, network_->GetPlan(n, Mode::kEval));
    GatherBatch(data, norm_, indices.data() + start, n, plan->input(), labels.data(),
                targets.data());
    plan->Forward(0);
    LossTargets t;
    if (reconstruct_) {
      t.values = plan->input();
    } else if (data.classification()) {
      t.labels = labels.data();
    } else {
      t.values = targets.data();
    }
    const LossOutput out = ComputeLoss(loss_, plan->output(), n, d, t, nullptr);
    loss_sum += out.sum;
    correct += out.correct;
  }
  r.examples = static_cast<int64_t>(indices.size());
  if (r.examples > 0) {
    r.loss = loss_sum / r.examples;
    r.accuracy = static_cast<double>(correct) / r.examples;
  }
  return r;
}

absl::StatusOr<EvalResult> TrainingJob::EvaluateTest() {
  if (!test_) return absl::FailedPreconditionError("the job has no test set");
  return Evaluate(*test_, test_indices_);
}

absl::StatusOr<TrainResult> TrainingJob::Run(TrainObserver* observer) {
  omp_set_num_threads(threads_);
  const JobConfig& c = config_;
  TrainResult result;
  result.stop_reason = "completed";
  TrainerState& s = state_;
  using Clock = std::chrono::steady_clock;
  Clock::duration busy{};
  int64_t examples = 0;
  // The observer is called only where `s` describes a consistent position (after a step, after
  // an epoch's rollover), so a checkpoint taken there resumes exactly.
  while (s.epoch < c.epochs) {
    const std::vector<int64_t> order = EpochOrder(train_indices_, c.seed, s.epoch, c.shuffle);
    const int64_t batches = (static_cast<int64_t>(order.size()) + c.batch_size - 1) / c.batch_size;
    bool stopped = false;
    while (s.batch_in_epoch < batches) {
      if (c.max_steps > 0 && s.step >= c.max_steps) {
        result.stop_reason = "max_steps";
        stopped = true;
        break;
      }
      const int64_t start = s.batch_in_epoch * c.batch_size;
      const int64_t n = std::min<int64_t>(c.batch_size, order.size() - start);
      const Clock::time_point t0 = Clock::now();
      ASSIGN_OR_RETURN(LossOutput out, TrainStep(order.data() + start, n));
      busy += Clock::now() - t0;
      if (!std::isfinite(out.sum)) {
        return absl::AbortedError(absl::StrCat(
            "training diverged at epoch ", s.epoch + 1, ", step ", s.step + 1, ": the loss became ",
            std::isnan(out.sum) ? "NaN" : "infinite",
            "; lower optimizer.learning_rate, set optimizer.clip_norm or normalize the data"));
      }
      ++s.step;
      ++s.batch_in_epoch;
      examples += n;
      s.epoch_loss_sum += out.sum;
      s.epoch_correct += out.correct;
      s.epoch_seen += n;
      if (observer != nullptr && hf_ != nullptr) {
        observer->OnOptimizerMetric(s.step, "cg_iterations", hf_last_.cg_iterations);
        observer->OnOptimizerMetric(s.step, "damping", hf_last_.damping);
      }
      if (observer != nullptr &&
          !observer->OnStep({s.epoch + 1, s.step, total_steps_, out.sum / n, n})) {
        result.stop_reason = "cancelled";
        stopped = true;
        break;
      }
    }
    if (result.stop_reason == "cancelled" || (stopped && s.epoch_seen == 0)) break;
    EpochReport e;
    e.epoch = s.epoch + 1;
    e.step = s.step;
    e.loss = s.epoch_seen > 0 ? s.epoch_loss_sum / s.epoch_seen : 0;
    e.accuracy = s.epoch_seen > 0 ? static_cast<double>(s.epoch_correct) / s.epoch_seen : 0;
    if (!val_indices_.empty() || test_) {
      ASSIGN_OR_RETURN(EvalResult val,
                       val_indices_.empty() ? EvaluateTest() : Evaluate(train_, val_indices_));
      e.has_val = true;
      e.val_loss = val.loss;
      e.val_accuracy = val.accuracy;
    }
    result.epochs.push_back(e);
    // Roll over to the next epoch before telling the observer.
    ++s.epoch;
    s.batch_in_epoch = 0;
    s.epoch_loss_sum = 0;
    s.epoch_correct = 0;
    s.epoch_seen = 0;
    bool early_stop = false;
    if (c.patience > 0 && e.has_val) {
      if (!s.has_best || e.val_loss < s.best_val_loss - c.min_delta) {
        s.best_val_loss = e.val_loss;
        s.has_best = true;
        s.epochs_without_improvement = 0;
      } else if (++s.epochs_without_improvement >= c.patience) {
        early_stop = true;
      }
    }
    if (observer != nullptr) observer->OnEpoch(e);
    if (early_stop) {
      result.stop_reason = "early_stopping";
      break;
    }
    if (stopped) break;
  }
  result.steps = s.step;
  result.train_seconds = std::chrono::duration<double>(busy).count();
  result.samples_per_sec = result.train_seconds > 0 ? examples / result.train_seconds : 0;
  if (test_ && result.stop_reason != "cancelled") {
    ASSIGN_OR_RETURN(result.test, EvaluateTest());
    result.has_test = true;
  }
  return result;
}

}  // namespace cajal
