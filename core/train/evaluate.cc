// TrainingJob's evaluation: loss and accuracy of a data set in evaluation mode, and the
// network's outputs for export checks.
#include <omp.h>

#include <algorithm>

#include "absl/status/status.h"
#include "core/train/job.h"
#include "core/util/status_macros.h"

namespace cajal {

absl::StatusOr<EvalResult> TrainingJob::Evaluate(const Dataset& data,
                                                 const std::vector<int64_t>& indices) {
  omp_set_num_threads(threads_);
  // Data-parallel: each rank evaluates a contiguous slice; the sums are reduced.
  const int64_t total = static_cast<int64_t>(indices.size());
  const int ranks = collective_->size(), rank = collective_->rank();
  const int64_t begin = total * rank / ranks, end = total * (rank + 1) / ranks;
  const int64_t batch = config_.batch_size;
  double sums[3] = {0, 0, static_cast<double>(end - begin)};  // loss, correct, examples
  for (int64_t start = begin; start < end; start += batch) {
    const int64_t n = std::min<int64_t>(batch, end - start);
    ASSIGN_OR_RETURN(Plan * plan, network_->GetPlan(n, Mode::kEval));
    ASSIGN_OR_RETURN(const LossTargets t, LoadBatch(data, indices.data() + start, n, plan));
    RETURN_IF_ERROR(plan->Forward(0));
    ASSIGN_OR_RETURN(const LossOutput out,
                     loss_kernel_->Compute(plan->output(), n, t, 1.0 / n, nullptr));
    sums[0] += out.sum;
    sums[1] += static_cast<double>(out.correct);
  }
  RETURN_IF_ERROR(collective_->AllReduceSum(sums, 3));
  EvalResult r;
  r.examples = static_cast<int64_t>(sums[2]);
  if (r.examples > 0) {
    r.loss = sums[0] / r.examples;
    r.accuracy = sums[1] / r.examples;
  }
  return r;
}

absl::StatusOr<EvalResult> TrainingJob::EvaluateTest() {
  if (!test_) return absl::FailedPreconditionError("the job has no test set");
  return Evaluate(*test_, test_indices_);
}

absl::StatusOr<std::vector<float>> TrainingJob::Predict(const Dataset& data,
                                                        const std::vector<int64_t>& indices) {
  omp_set_num_threads(threads_);
  const int64_t d = NumElements(network_->shapes()[loss_at_]);
  std::vector<float> out(indices.size() * static_cast<size_t>(d));
  const int64_t batch = config_.batch_size;
  for (size_t start = 0; start < indices.size(); start += batch) {
    const int64_t n = std::min<int64_t>(batch, indices.size() - start);
    ASSIGN_OR_RETURN(Plan * plan, network_->GetPlan(n, Mode::kEval));
    RETURN_IF_ERROR(LoadBatch(data, indices.data() + start, n, plan).status());
    RETURN_IF_ERROR(plan->Forward(0));
    RETURN_IF_ERROR(backend_->CopyToHost(out.data() + start * d, plan->activation(loss_at_),
                                         static_cast<size_t>(n * d) * sizeof(float)));
  }
  return out;
}

}  // namespace cajal
