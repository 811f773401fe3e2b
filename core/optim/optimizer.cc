#include "core/optim/optimizer.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

std::vector<std::string> StateNamesFor(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kMomentum:
    case OptimizerKind::kNesterov:
      return {"momentum_buffer"};
    case OptimizerKind::kRmsprop:
    case OptimizerKind::kAdagrad:
      return {"square_avg"};
    case OptimizerKind::kAdam:
      return {"exp_avg", "exp_avg_sq"};
    case OptimizerKind::kAdadelta:
      return {"square_avg", "acc_delta"};
    default:
      return {};
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Optimizer>> Optimizer::Create(const OptimizerConfig& config,
                                                             ParamStore* store) {
  std::unique_ptr<Optimizer> opt(new Optimizer(config, store));
  const size_t bytes = static_cast<size_t>(store->total()) * sizeof(float);
  for (size_t i = 0; i < opt->state_names_.size(); ++i) {
    ASSIGN_OR_RETURN(DeviceBuffer b, store->backend()->Allocate(bytes));
    opt->state_.push_back(std::move(b));
  }
  return opt;
}

Optimizer::Optimizer(const OptimizerConfig& config, ParamStore* store)
    : config_(config), store_(store), state_names_(StateNamesFor(config.kind)) {}

absl::Status Optimizer::Step() {
  ++steps_;
  const OptimizerConfig& c = config_;
  if (c.kind == OptimizerKind::kHessianFree) return absl::OkStatus();
  // Running statistics (batch norm) follow the trainable parameters and are never updated here.
  const int64_t n = store_->trainable_total();
  Backend* backend = store_->backend();
  UpdateParams u;
  u.kind = c.kind;
  u.lr = c.learning_rate;
  u.momentum = c.momentum;
  u.beta1 = c.beta1;
  u.beta2 = c.beta2;
  u.epsilon = c.epsilon;
  u.rho = c.rho;
  u.weight_decay = c.weight_decay;
  if (c.clip_norm > 0) {
    ASSIGN_OR_RETURN(const double sq, backend->SumOfSquares(store_->grads(), n));
    // PyTorch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
    const double coef = c.clip_norm / (std::sqrt(sq) + 1e-6);
    if (coef < 1.0) u.grad_scale = static_cast<float>(coef);
  }
  if (c.kind == OptimizerKind::kAdam) AdamCoefficients(steps_, &u);
  float* s0 = state_.size() > 0 ? state_[0].floats() : nullptr;
  float* s1 = state_.size() > 1 ? state_[1].floats() : nullptr;
  return backend->ApplyUpdate(u, store_->values(), store_->grads(), s0, s1, n);
}

}  // namespace cajal
