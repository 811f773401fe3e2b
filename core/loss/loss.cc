#include "core/loss/loss.h"

#include "core/loss/loss_math.h"

namespace cajal {

// The per-example math is loss_math.h's, shared with the CUDA backend's loss kernel; this loop
// sums it in example order.
LossOutput ComputeLoss(const LossConfig& c, const float* x, int64_t n, int64_t d,
                       const LossTargets& t, float* grad, double grad_scale) {
  LossOutput out;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * d;
    float* g = grad != nullptr ? grad + i * d : nullptr;
    if (IsCorrectExample(c, row, d, t, i)) ++out.correct;
    out.sum += ExampleLoss(c, row, d, t, i, grad_scale, g);
  }
  return out;
}

}  // namespace cajal
