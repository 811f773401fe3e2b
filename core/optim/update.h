// The optimizer updates, one parameter at a time, written once for the CPU and the CUDA
// backends (CAJAL_HD). Each follows PyTorch 1.13's definition of the same optimizer (so goldens
// compare directly), with g = grad·clip + weight_decay·θ:
//   sgd        θ −= lr·g
//   momentum   b = μ·b + g;            θ −= lr·b
//   nesterov   b = μ·b + g;            θ −= lr·(g + μ·b)
//   rmsprop    s = ρ·s + (1−ρ)·g²;     θ −= lr·g/(√s + ε)
//   adagrad    s += g²;                θ −= lr·g/(√s + ε)
//   adam       m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
//              θ −= (lr/(1−β1ᵗ))·m/(√v/√(1−β2ᵗ) + ε)
//   adadelta   s = ρ·s + (1−ρ)·g²; Δ = √(u+ε)/√(s+ε)·g; u = ρ·u + (1−ρ)·Δ²; θ −= lr·Δ
//   perceptron_rule  as sgd; the loss hands back the raw error (optim/optimizer.h).
// State: s0 is momentum's buffer, rmsprop's and adagrad's square average, adam's first moment
// and adadelta's square average; s1 is adam's second moment and adadelta's accumulated delta.
//
// A backend's ApplyUpdate loops over the parameters with the kind's function chosen once
// outside the loop, so the loop vectorizes.
#ifndef CAJAL_CORE_OPTIM_UPDATE_H_
#define CAJAL_CORE_OPTIM_UPDATE_H_

#include <cmath>
#include <cstdint>

#include "core/util/hd.h"

namespace cajal {

enum class OptimizerKind {
  kSgd,
  kMomentum,
  kNesterov,
  kRmsprop,
  kAdagrad,
  kAdam,
  kAdadelta,
  kHessianFree,
  kPerceptronRule,
};

// The coefficients of one update step, the same for every parameter.
struct UpdateParams {
  OptimizerKind kind = OptimizerKind::kSgd;
  float lr = 0.01f;
  float momentum = 0.9f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  float rho = 0.99f;
  float weight_decay = 0.0f;
  float grad_scale = 1.0f;         // global-norm clipping (1: none)
  float adam_step_size = 0.0f;     // lr/(1 − β1ᵗ), from AdamCoefficients
  float adam_inv_bc2_sqrt = 0.0f;  // 1/√(1 − β2ᵗ)
};

// Adam's bias corrections for update number t (1-based), computed in double on the host.
inline void AdamCoefficients(int64_t t, UpdateParams* u) {
  const double td = static_cast<double>(t);
  u->adam_step_size = static_cast<float>(u->lr / (1.0 - std::pow(u->beta1, td)));
  u->adam_inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(u->beta2, td)));
}

CAJAL_HD float EffectiveGradient(const UpdateParams& u, float p, float g) {
  return g * u.grad_scale + u.weight_decay * p;
}

CAJAL_HD void SgdUpdate(const UpdateParams& u, float& p, float g) {
  p -= u.lr * EffectiveGradient(u, p, g);
}

CAJAL_HD void MomentumUpdate(const UpdateParams& u, float& p, float g, float& b) {
  const float gi = EffectiveGradient(u, p, g);
  b = u.momentum * b + gi;
  p -= u.lr * b;
}

CAJAL_HD void NesterovUpdate(const UpdateParams& u, float& p, float g, float& b) {
  const float gi = EffectiveGradient(u, p, g);
  b = u.momentum * b + gi;
  p -= u.lr * (gi + u.momentum * b);
}

CAJAL_HD void RmspropUpdate(const UpdateParams& u, float& p, float g, float& s) {
  const float gi = EffectiveGradient(u, p, g);
  s = u.rho * s + (1 - u.rho) * gi * gi;
  p -= u.lr * gi / (sqrtf(s) + u.epsilon);
}

CAJAL_HD void AdagradUpdate(const UpdateParams& u, float& p, float g, float& s) {
  const float gi = EffectiveGradient(u, p, g);
  s += gi * gi;
  p -= u.lr * gi / (sqrtf(s) + u.epsilon);
}

CAJAL_HD void AdamUpdate(const UpdateParams& u, float& p, float g, float& m, float& v) {
  const float gi = EffectiveGradient(u, p, g);
  m = u.beta1 * m + (1 - u.beta1) * gi;
  v = u.beta2 * v + (1 - u.beta2) * gi * gi;
  p -= u.adam_step_size * m / (sqrtf(v) * u.adam_inv_bc2_sqrt + u.epsilon);
}

CAJAL_HD void AdadeltaUpdate(const UpdateParams& u, float& p, float g, float& s, float& acc) {
  const float gi = EffectiveGradient(u, p, g);
  s = u.rho * s + (1 - u.rho) * gi * gi;
  const float delta = sqrtf(acc + u.epsilon) / sqrtf(s + u.epsilon) * gi;
  acc = u.rho * acc + (1 - u.rho) * delta * delta;
  p -= u.lr * delta;
}

// One parameter's update, dispatching on the kind (for tests and simple kernels; the
// backends' loops dispatch once outside). s0/s1 are ignored where the kind has no state.
CAJAL_HD void UpdateOne(const UpdateParams& u, float& p, float g, float& s0, float& s1) {
  switch (u.kind) {
    case OptimizerKind::kSgd:
    case OptimizerKind::kPerceptronRule:
      SgdUpdate(u, p, g);
      break;
    case OptimizerKind::kMomentum:
      MomentumUpdate(u, p, g, s0);
      break;
    case OptimizerKind::kNesterov:
      NesterovUpdate(u, p, g, s0);
      break;
    case OptimizerKind::kRmsprop:
      RmspropUpdate(u, p, g, s0);
      break;
    case OptimizerKind::kAdagrad:
      AdagradUpdate(u, p, g, s0);
      break;
    case OptimizerKind::kAdam:
      AdamUpdate(u, p, g, s0, s1);
      break;
    case OptimizerKind::kAdadelta:
      AdadeltaUpdate(u, p, g, s0, s1);
      break;
    case OptimizerKind::kHessianFree:
      break;
  }
}

}  // namespace cajal

#endif  // CAJAL_CORE_OPTIM_UPDATE_H_
