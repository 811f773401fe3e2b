// TrainingJob's loop: epochs of steps, the epoch's evaluation, and the stop decisions
// (max_steps, early stopping, a diverged loss, cancellation), taken identically on every rank.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/train/data_parallel.h"
#include "core/train/job.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

// Permutation of `indices` for one epoch: a function of (seed, epoch) only, so a resumed run
// (and every rank) sees the same order.
std::vector<int64_t> EpochOrder(const std::vector<int64_t>& indices, uint64_t seed, int epoch,
                                bool shuffle) {
  std::vector<int64_t> order = indices;
  if (shuffle) {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
    std::shuffle(order.begin(), order.end(), rng);
  }
  return order;
}

// FNV-1a, 64 bits, of `n` bytes.
uint64_t Fnv1a(const void* data, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

}  // namespace

// Every rank applies the same summed gradients to the same parameters, so the replicas stay
// bit-identical; this checks it (a failure means a reduction gave ranks different sums).
absl::StatusOr<uint64_t> TrainingJob::CheckReplicas() {
  ParamStore& p = network_->params();
  std::vector<float> host;
  RETURN_IF_ERROR(p.ReadValues(&host));
  const uint64_t digest = Fnv1a(host.data(), p.trainable_total() * sizeof(float));
  std::string root = std::to_string(digest);
  RETURN_IF_ERROR(collective_->Broadcast(&root, 0));
  double differ = root == std::to_string(digest) ? 0 : 1;
  RETURN_IF_ERROR(collective_->AllReduceSum(&differ, 1));
  if (differ > 0) {
    return absl::InternalError(absl::StrCat(
        "after training the parameters of ", static_cast<int>(differ),
        " rank(s) differ from rank 0's (this rank's digest ", absl::Hex(digest), ", rank 0's ",
        root, "); the gradient reductions did not give every rank the same sums"));
  }
  return digest;
}

// One step takes batch_size examples per rank. Data-parallel, an epoch's last step is dropped
// when it has fewer examples than ranks (some rank would have none).
int64_t TrainingJob::StepsPerEpoch() const {
  const int64_t examples = static_cast<int64_t>(train_indices_.size());
  const int64_t ranks = collective_->size();
  const int64_t global = config_.batch_size * ranks;
  int64_t steps = (examples + global - 1) / global;
  const int64_t tail = examples % global;
  if (ranks > 1 && tail > 0 && tail < ranks) --steps;
  return steps;
}

// This rank's consecutive part of a global batch: all ranks get batch_size examples of a full
// step, and a shorter last step is divided as evenly as possible.
std::pair<int64_t, int64_t> TrainingJob::RankSlice(int64_t global_start, int64_t global_n) const {
  const int64_t ranks = collective_->size(), rank = collective_->rank();
  return {global_start + global_n * rank / ranks, global_start + global_n * (rank + 1) / ranks};
}

absl::StatusOr<TrainResult> TrainingJob::Run(TrainObserver* observer) {
  omp_set_num_threads(threads_);
  const JobConfig& c = config_;
  const bool distributed = collective_->size() > 1;
  const int64_t global_batch = c.batch_size * collective_->size();
  TrainResult result;
  TrainerState& s = state_;
  using Clock = std::chrono::steady_clock;
  Clock::duration busy{};
  int64_t examples = 0;  // every rank's
  const int64_t batches = StepsPerEpoch();
  bool stop = false;
  // The observer is called only where `s` describes a consistent position (after a step, after
  // an epoch's rollover), so a checkpoint taken there resumes exactly.
  while (s.epoch < c.epochs && !stop) {
    const std::vector<int64_t> order = EpochOrder(train_indices_, c.seed, s.epoch, c.shuffle);
    while (s.batch_in_epoch < batches) {
      if (c.max_steps > 0 && s.step >= c.max_steps) {
        result.stop_reason = StopReason::kMaxSteps;
        stop = true;
        break;
      }
      const int64_t start = s.batch_in_epoch * global_batch;
      const int64_t global_n = std::min<int64_t>(global_batch, order.size() - start);
      const auto [lo, hi] = RankSlice(start, global_n);
      const Clock::time_point t0 = Clock::now();
      ASSIGN_OR_RETURN(LossOutput out, TrainStep(order.data() + lo, hi - lo, global_n));
      busy += Clock::now() - t0;
      double sums[2] = {out.sum, static_cast<double>(out.correct)};
      if (distributed) RETURN_IF_ERROR(collective_->AllReduceSum(sums, 2));
      if (!std::isfinite(sums[0])) {
        return absl::AbortedError(absl::StrCat(
            "training diverged at epoch ", s.epoch + 1, ", step ", s.step + 1, ": the loss became ",
            std::isnan(sums[0]) ? "NaN" : "infinite",
            "; lower optimizer.learning_rate, set optimizer.clip_norm or normalize the data"));
      }
      ++s.step;
      ++s.batch_in_epoch;
      examples += global_n;
      s.epoch_loss_sum += sums[0];
      s.epoch_correct += static_cast<int64_t>(sums[1]);
      s.epoch_seen += global_n;
      if (observer != nullptr && hf_ != nullptr) {
        observer->OnOptimizerMetric(s.step, "cg_iterations", hf_last_.cg_iterations);
        observer->OnOptimizerMetric(s.step, "damping", hf_last_.damping);
      }
      double go_on = observer == nullptr || observer->OnStep({s.epoch + 1, s.step, total_steps_,
                                                              sums[0] / global_n, hi - lo})
                         ? 1
                         : 0;
      // Any rank's cancellation (SIGTERM) stops them all at this boundary.
      if (distributed) {
        double stops = 1 - go_on;
        RETURN_IF_ERROR(collective_->AllReduceSum(&stops, 1));
        go_on = stops > 0 ? 0 : 1;
      }
      if (go_on == 0) {
        result.stop_reason = StopReason::kCancelled;
        stop = true;
        break;
      }
    }
    if (result.stop_reason == StopReason::kCancelled || (stop && s.epoch_seen == 0)) break;
    if (distributed && network_->params().total() > network_->params().trainable_total()) {
      // Batch norm's running statistics are per rank (unless synchronized); the model is rank
      // 0's, and every rank evaluates with it (PyTorch DDP's broadcast_buffers).
      ParamStore& p = network_->params();
      RETURN_IF_ERROR(collective_->Broadcast(p.values() + p.trainable_total(),
                                             p.total() - p.trainable_total(), 0));
    }
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
      result.stop_reason = StopReason::kEarlyStopping;
      break;
    }
  }
  result.steps = s.step;
  if (distributed) {
    result.reduce_wait_seconds = reducer_->wait_seconds();
    ASSIGN_OR_RETURN(result.param_digest, CheckReplicas());
  }
  result.train_seconds = std::chrono::duration<double>(busy).count();
  result.samples_per_sec = result.train_seconds > 0 ? examples / result.train_seconds : 0;
  if (test_ && result.stop_reason != StopReason::kCancelled) {
    ASSIGN_OR_RETURN(result.test, EvaluateTest());
    result.has_test = true;
  }
  return result;
}

}  // namespace cajal
