// TrainingJob's step: one batch through the network, the loss, the backward pass, the
// gradient reduction across ranks and the optimizer update.
#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/train/data_parallel.h"
#include "core/train/job.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

// The parts of a batch upload (AllocateBatchBuffers makes them in this order).
constexpr int kUploadInput = 0, kUploadLabels = 1, kUploadTargets = 2;

}  // namespace

absl::StatusOr<LossTargets> TrainingJob::LoadBatch(const Dataset& data, const int64_t* indices,
                                                   int64_t n, Plan* plan) {
  const bool direct = backend_->host_visible();
  // On host memory the batch is gathered in place. Otherwise into the next host staging
  // buffers, while the device may still be running the previous step, then uploaded in order
  // with the kernels (BatchUpload: the host does not wait for the copy).
  float* x = plan->input();
  int32_t* labels = device_labels_.ints();
  float* targets = device_targets_.floats();
  if (!direct) {
    RETURN_IF_ERROR(upload_->Acquire());
    x = static_cast<float*>(upload_->host(kUploadInput));
    labels = static_cast<int32_t*>(upload_->host(kUploadLabels));
    targets = static_cast<float*>(upload_->host(kUploadTargets));
  }
  GatherBatch(data, norm_, indices, n, x, labels, targets);
  if (!direct) {
    const size_t x_bytes = static_cast<size_t>(n * data.example_size()) * sizeof(float);
    RETURN_IF_ERROR(upload_->Send(kUploadInput, plan->input(), x_bytes));
    if (data.classification()) {
      RETURN_IF_ERROR(upload_->Send(kUploadLabels, device_labels_.get(), n * sizeof(int32_t)));
    } else {
      RETURN_IF_ERROR(upload_->Send(kUploadTargets, device_targets_.get(),
                                    static_cast<size_t>(n * data.target_dim) * sizeof(float)));
    }
  }
  LossTargets t;
  if (reconstruct_) {
    t.values = plan->input();
  } else if (data.classification()) {
    t.labels = device_labels_.ints();
  } else {
    t.values = device_targets_.floats();
  }
  return t;
}

absl::StatusOr<LossOutput> TrainingJob::HessianFreeStep(const int64_t* indices, int64_t n) {
  // Hessian-free runs its own forward/backward passes and CG on copies of the batch, on the
  // host (Build refuses it elsewhere).
  hf_input_.resize(static_cast<size_t>(n * train_.example_size()));
  GatherBatch(train_, norm_, indices, n, hf_input_.data(), device_labels_.ints(),
              device_targets_.floats());
  LossTargets t;
  if (reconstruct_) {
    t.values = hf_input_.data();
  } else if (train_.classification()) {
    t.labels = device_labels_.ints();
  } else {
    t.values = device_targets_.floats();
  }
  ASSIGN_OR_RETURN(hf_last_, hf_->Step(hf_input_.data(), t, n, state_.step));
  optimizer_->set_steps(optimizer_->steps() + 1);
  return hf_last_.loss;
}

absl::StatusOr<LossOutput> TrainingJob::TrainStep(const int64_t* indices, int64_t n,
                                                  int64_t global_n) {
  if (hf_ != nullptr) return HessianFreeStep(indices, n);
  ASSIGN_OR_RETURN(Plan * plan, network_->GetPlan(n, Mode::kTrain));
  ASSIGN_OR_RETURN(const LossTargets t, LoadBatch(train_, indices, n, plan));
  RETURN_IF_ERROR(plan->Forward(state_.step));
  ASSIGN_OR_RETURN(const LossOutput out,
                   loss_kernel_->Compute(plan->output(), n, t, 1.0 / static_cast<double>(global_n),
                                         plan->diff(loss_at_)));
  // A diverged loss stops the job (loop.cc); every rank sees the same sum once reduced, so
  // each still completes this step's collectives below.
  if (!std::isfinite(out.sum) && reducer_ == nullptr) return out;
  RETURN_IF_ERROR(plan->Backward(loss_at_, reducer_.get()));
  if (reducer_ != nullptr) RETURN_IF_ERROR(reducer_->Finish());
  if (std::isfinite(out.sum)) RETURN_IF_ERROR(optimizer_->Step());
  return out;
}

absl::Status TrainingJob::SyncReplicas() {
  if (collective_->size() == 1) return absl::OkStatus();
  ParamStore& store = network_->params();
  RETURN_IF_ERROR(collective_->Broadcast(store.values(), store.total(), /*root=*/0));
  for (size_t k = 0; k < optimizer_->state_names().size(); ++k) {
    RETURN_IF_ERROR(
        collective_->Broadcast(optimizer_->state(static_cast<int>(k)), store.total(), 0));
  }
  // The position and step count, as doubles (exact below 2^53).
  double position[] = {static_cast<double>(state_.epoch),
                       static_cast<double>(state_.batch_in_epoch), static_cast<double>(state_.step),
                       static_cast<double>(optimizer_->steps())};
  std::string bytes(reinterpret_cast<const char*>(position), sizeof(position));
  RETURN_IF_ERROR(collective_->Broadcast(&bytes, 0));
  if (bytes.size() != sizeof(position)) {
    return absl::InternalError("SyncReplicas: rank 0 sent a position of the wrong size");
  }
  std::memcpy(position, bytes.data(), sizeof(position));
  if (static_cast<int64_t>(position[2]) != state_.step ||
      static_cast<int>(position[0]) != state_.epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank ", collective_->rank(), " is at epoch ", state_.epoch + 1, ", step ", state_.step,
        " but rank 0 at epoch ", static_cast<int>(position[0]) + 1, ", step ",
        static_cast<int64_t>(position[2]),
        "; every rank must resume from the same checkpoint (a --checkpoint_dir on a volume "
        "all ranks share)"));
  }
  return absl::OkStatus();
}

}  // namespace cajal
