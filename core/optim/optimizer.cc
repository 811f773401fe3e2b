#include "core/optim/optimizer.h"

#include <cmath>

#include "absl/status/status.h"

namespace cajal {
namespace {

// Work below this many elements runs on one thread: fork/join would cost more than it saves.
constexpr int64_t kParallelThreshold = 1 << 15;

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
  if (config.kind == OptimizerKind::kHessianFree) {
    return absl::UnimplementedError(
        "optimizer.kind: hessian_free is not a first-order optimizer; it is not available yet");
  }
  return std::unique_ptr<Optimizer>(new Optimizer(config, store));
}

Optimizer::Optimizer(const OptimizerConfig& config, ParamStore* store)
    : config_(config), store_(store), state_names_(StateNamesFor(config.kind)) {
  for (size_t i = 0; i < state_names_.size(); ++i) {
    state_.emplace_back(static_cast<size_t>(store->total()));
  }
}

void Optimizer::Step() {
  ++steps_;
  const int64_t n = store_->total();
  float* __restrict p = store_->values();
  float* __restrict g = store_->grads();
  const OptimizerConfig& c = config_;
  const bool parallel = n >= kParallelThreshold;

  float scale = 1.0f;
  if (c.clip_norm > 0) {
    double sq = 0;
#pragma omp parallel for simd reduction(+ : sq) schedule(static) if (parallel)
    for (int64_t i = 0; i < n; ++i) sq += static_cast<double>(g[i]) * g[i];
    const double norm = std::sqrt(sq);
    // PyTorch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
    const double coef = c.clip_norm / (norm + 1e-6);
    if (coef < 1.0) scale = static_cast<float>(coef);
  }
  const float wd = c.weight_decay;
  const float lr = c.learning_rate;
  float* __restrict s0 = state_.size() > 0 ? state_[0].data() : nullptr;
  float* __restrict s1 = state_.size() > 1 ? state_[1].data() : nullptr;

  switch (c.kind) {
    case OptimizerKind::kSgd:
    case OptimizerKind::kPerceptronRule:
#pragma omp parallel for simd schedule(static) if (parallel)
      for (int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] * scale + wd * p[i]);
      break;
    case OptimizerKind::kMomentum: {
      const float mu = c.momentum;
#pragma omp parallel for simd schedule(static) if (parallel)
      for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] = mu * s0[i] + gi;
        p[i] -= lr * s0[i];
      }
      break;
    }
    case OptimizerKind::kNesterov: {
      const float mu = c.momentum;
#pragma omp parallel for simd schedule(static) if (parallel)
      for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] = mu * s0[i] + gi;
        p[i] -= lr * (gi + mu * s0[i]);
      }
      break;
    }
    case OptimizerKind::kRmsprop: {
      const float rho = c.rho, eps = c.epsilon;
#pragma omp parallel for simd schedule(static) if (parallel)
      for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] = rho * s0[i] + (1 - rho) * gi * gi;
        p[i] -= lr * gi / (std::sqrt(s0[i]) + eps);
      }
      break;
    }
    case OptimizerKind::kAdagrad: {
      const float eps = c.epsilon;
#pragma omp parallel for simd schedule(static) if (parallel)
      for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] += gi * gi;
        p[i] -= lr * gi / (std::sqrt(s0[i]) + eps);
      }
      break;
    }
    case OptimizerKind::kAdam: {
      const float b1 = c.beta1, b2 = c.beta2, eps = c.epsilon;
      const double t = static_cast<double>(steps_);
      const float step_size = static_cast<float>(lr / (1.0 - std::pow(b1, t)));
      const float inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(b2, t)));
#pragma omp parallel for simd schedule(static) if (parallel)
      for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] = b1 * s0[i] + (1 - b1) * gi;
        s1[i] = b2 * s1[i] + (1 - b2) * gi * gi;
        p[i] -= step_size * s0[i] / (std::sqrt(s1[i]) * inv_bc2_sqrt + eps);
      }
      break;
    }
    case OptimizerKind::kAdadelta: {
      const float rho = c.rho, eps = c.epsilon;
#pragma omp parallel for simd schedule(static) if (parallel)
      for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] = rho * s0[i] + (1 - rho) * gi * gi;
        const float delta = std::sqrt(s1[i] + eps) / std::sqrt(s0[i] + eps) * gi;
        s1[i] = rho * s1[i] + (1 - rho) * delta * delta;
        p[i] -= lr * delta;
      }
      break;
    }
    case OptimizerKind::kHessianFree:
      break;
  }
}

}  // namespace cajal
