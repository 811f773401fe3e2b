#include "core/optim/optimizer.h"

#include <omp.h>

#include <algorithm>
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

// The update of elements [begin, end), compiled for AVX-512, AVX2+FMA and the baseline and
// chosen at load time (the same machine always runs the same clone, so results stay
// reproducible there).
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void Update(
    const OptimizerConfig& c, float scale, int64_t steps, float* __restrict p,
    const float* __restrict g, float* __restrict s0, float* __restrict s1, int64_t begin,
    int64_t end) {
  const float wd = c.weight_decay;
  const float lr = c.learning_rate;
  switch (c.kind) {
    case OptimizerKind::kSgd:
    case OptimizerKind::kPerceptronRule:
      for (int64_t i = begin; i < end; ++i) p[i] -= lr * (g[i] * scale + wd * p[i]);
      break;
    case OptimizerKind::kMomentum: {
      const float mu = c.momentum;
      for (int64_t i = begin; i < end; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] = mu * s0[i] + gi;
        p[i] -= lr * s0[i];
      }
      break;
    }
    case OptimizerKind::kNesterov: {
      const float mu = c.momentum;
      for (int64_t i = begin; i < end; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] = mu * s0[i] + gi;
        p[i] -= lr * (gi + mu * s0[i]);
      }
      break;
    }
    case OptimizerKind::kRmsprop: {
      const float rho = c.rho, eps = c.epsilon;
      for (int64_t i = begin; i < end; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] = rho * s0[i] + (1 - rho) * gi * gi;
        p[i] -= lr * gi / (std::sqrt(s0[i]) + eps);
      }
      break;
    }
    case OptimizerKind::kAdagrad: {
      const float eps = c.epsilon;
      for (int64_t i = begin; i < end; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] += gi * gi;
        p[i] -= lr * gi / (std::sqrt(s0[i]) + eps);
      }
      break;
    }
    case OptimizerKind::kAdam: {
      const float b1 = c.beta1, b2 = c.beta2, eps = c.epsilon;
      const double t = static_cast<double>(steps);
      const float step_size = static_cast<float>(lr / (1.0 - std::pow(b1, t)));
      const float inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(b2, t)));
      for (int64_t i = begin; i < end; ++i) {
        const float gi = g[i] * scale + wd * p[i];
        s0[i] = b1 * s0[i] + (1 - b1) * gi;
        s1[i] = b2 * s1[i] + (1 - b2) * gi * gi;
        p[i] -= step_size * s0[i] / (std::sqrt(s1[i]) * inv_bc2_sqrt + eps);
      }
      break;
    }
    case OptimizerKind::kAdadelta: {
      const float rho = c.rho, eps = c.epsilon;
      for (int64_t i = begin; i < end; ++i) {
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

}  // namespace

absl::StatusOr<std::unique_ptr<Optimizer>> Optimizer::Create(const OptimizerConfig& config,
                                                             ParamStore* store) {
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
  // Running statistics (batch norm) follow the trainable parameters and are never updated here.
  const int64_t n = store_->trainable_total();
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
  float* s0 = state_.size() > 0 ? state_[0].data() : nullptr;
  float* s1 = state_.size() > 1 ? state_[1].data() : nullptr;
  const int threads = parallel ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(threads)
  {
    // Contiguous, 16-float aligned chunks: each thread streams its own part of every buffer.
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t chunk = (n / nt + 15) / 16 * 16;
    const int64_t begin = std::min<int64_t>(n, t * chunk);
    const int64_t end = t == nt - 1 ? n : std::min<int64_t>(n, begin + chunk);
    Update(c, scale, steps_, p, g, s0, s1, begin, end);
  }
}

}  // namespace cajal
