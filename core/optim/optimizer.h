// First-order optimizers over the flat parameter and gradient buffers of a ParamStore.
//
// The update rules are in optim/update.h (written once for every backend). With clip_norm > 0
// the gradient is first scaled to global norm clip_norm (PyTorch's clip_grad_norm_). The
// backend runs the update on its own memory. State buffers are flat like the parameters, so a
// checkpoint stores them as named tensors.
//   perceptron_rule  θ −= lr·g, where the loss hands back the raw error ŷ − y summed over the
//              batch (LossConfig::perceptron_error), i.e. Rosenblatt's w += r·(y − ŷ)·x.
#ifndef CAJAL_CORE_OPTIM_OPTIMIZER_H_
#define CAJAL_CORE_OPTIM_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/optim/update.h"
#include "core/tensor/tensor.h"

namespace cajal {

// Settings of kHessianFree (optim/hessian_free.h); the defaults are Martens 2010's. The
// gradient batch is the training batch (JobConfig::batch_size).
struct HessianFreeConfig {
  float damping = 1.0f;  // initial Levenberg-Marquardt λ (ltatzel's default; theano-hf uses 0.1)
  int cg_max_iterations = 250;
  int64_t curvature_batch_size = 0;  // 0: a quarter of the gradient batch (at least 1)
  float structural_damping = 0.0f;   // μ for recurrent layers, which HF does not support yet
};

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  float learning_rate = 0.01f;
  float momentum = 0.9f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  float rho = 0.99f;
  float weight_decay = 0.0f;
  float clip_norm = 0.0f;  // 0: no clipping
  HessianFreeConfig hessian_free;
};

class Optimizer {
 public:
  // For kHessianFree the optimizer keeps only the step count (Step does nothing): HF drives
  // its own update (optim/hessian_free.h). State buffers live in the store's backend.
  // Errors: kResourceExhausted when the state does not fit.
  static absl::StatusOr<std::unique_ptr<Optimizer>> Create(const OptimizerConfig& config,
                                                           ParamStore* store);

  // Applies one update from the gradients in the store. Not thread-safe.
  absl::Status Step();

  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  // Named state buffers, each of ParamStore::total() floats in the backend's memory, for
  // checkpoints (read and written through the store's backend).
  const std::vector<std::string>& state_names() const { return state_names_; }
  float* state(int i) { return state_[i].floats(); }

 private:
  Optimizer(const OptimizerConfig& config, ParamStore* store);

  OptimizerConfig config_;
  ParamStore* store_;
  int64_t steps_ = 0;
  std::vector<std::string> state_names_;
  std::vector<DeviceBuffer> state_;
};

}  // namespace cajal

#endif  // CAJAL_CORE_OPTIM_OPTIMIZER_H_
