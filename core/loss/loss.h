// Losses over a batch of network outputs, with their gradient.
//
//   x (N, D) network output; targets: class labels (N) or values (N, D).
//   Returns the summed loss over the batch and the number of correct predictions, and writes
//   d(mean loss)/dx to `grad` (N, D) when it is not null.
//
// Fusion: when the network ends in the loss's own output function (softmax for cross-entropy,
// sigmoid for binary cross-entropy), `fused` is true, x holds that function's output, and the
// gradient is taken with respect to its input (p − y)/N: the numerically stable form.
#ifndef CAJAL_CORE_LOSS_LOSS_H_
#define CAJAL_CORE_LOSS_LOSS_H_

#include <cstdint>

namespace cajal {

enum class LossKind { kCrossEntropy, kMse, kBinaryCrossEntropy };

// How predictions are compared with class labels for accuracy.
enum class AccuracyRule {
  kArgmax,      // D > 1: argmax(x) == label
  kThreshold,   // D == 1: (x > cut) == label, cut = 0.5 on probabilities, 0 on logits
  kExactMatch,  // threshold units: every output equals the one-hot (or 0/1) target
  kNone,        // regression
};

struct LossTargets {
  const int32_t* labels = nullptr;  // class indices, or null for regression
  const float* values = nullptr;    // (N, D) real targets, when labels is null
};

struct LossOutput {
  double sum = 0;       // Σ over the batch of each example's loss
  int64_t correct = 0;  // examples predicted right (0 for regression)
};

struct LossConfig {
  LossKind kind = LossKind::kCrossEntropy;
  bool fused = false;
  AccuracyRule accuracy = AccuracyRule::kArgmax;
  // Rosenblatt's rule: the gradient is the raw error (x − y), summed rather than averaged.
  bool perceptron_error = false;
};

// `grad_scale` weighs each example's gradient: 1/n for the batch mean (the default), 1/(global
// batch) when the batch is one rank's share of a data-parallel step.
LossOutput ComputeLoss(const LossConfig& config, const float* x, int64_t n, int64_t d,
                       const LossTargets& targets, float* grad, double grad_scale);
inline LossOutput ComputeLoss(const LossConfig& config, const float* x, int64_t n, int64_t d,
                              const LossTargets& targets, float* grad) {
  return ComputeLoss(config, x, n, d, targets, grad, 1.0 / static_cast<double>(n));
}

}  // namespace cajal

#endif  // CAJAL_CORE_LOSS_LOSS_H_
