// The losses and accuracy rules of one example, written once for the CPU (loss.cc's loop) and
// the CUDA kernels (CAJAL_HD; see util/hd.h). Definitions in loss.h.
//
//   row  the example's d outputs; g: its d gradient values, or null
//   cross_entropy  fused: −log max(p_label, 1e−30), g = (p − y)·scale
//                  else:  log Σ e^x − x_label (max-shifted), g = (softmax(x) − y)·scale
//   mse            mean over outputs of (x − y)², g = 2(x − y)·scale/d (perceptron_error: x − y)
//   binary_cross_entropy  mean over outputs of −[y log p + (1 − y) log(1 − p)], p = σ(x)
//                  (fused: p = x clamped to [1e−12, 1 − 1e−12]), g = (p − y)·scale/d
// Sums run in double. The comparisons are written as std::max, std::clamp and
// std::max_element write them, so NaNs propagate as they did before these functions existed.
//
// Nothing here includes more than the C++ standard library and loss.h, so nvcc compiles it.
#ifndef CAJAL_CORE_LOSS_LOSS_MATH_H_
#define CAJAL_CORE_LOSS_LOSS_MATH_H_

#include <math.h>

#include <cstdint>

#include "core/loss/loss.h"
#include "core/util/hd.h"

namespace cajal {

// std::max(a, b) and std::clamp(v, lo, hi), NaN behavior included.
CAJAL_HD double MaxOf(double a, double b) { return a < b ? b : a; }
CAJAL_HD double ClampTo(double v, double lo, double hi) { return v < lo ? lo : hi < v ? hi : v; }

// The index of the first largest of d values (std::max_element's choice).
CAJAL_HD int64_t ArgMax(const float* row, int64_t d) {
  int64_t best = 0;
  for (int64_t j = 1; j < d; ++j) {
    if (row[best] < row[j]) best = j;
  }
  return best;
}

// The target of output j of example i: one-hot for labels (a single 0/1 output for d == 1).
CAJAL_HD float LossTarget(const LossTargets& t, int64_t i, int64_t j, int64_t d) {
  if (t.labels == nullptr) return t.values[i * d + j];
  if (d == 1) return static_cast<float>(t.labels[i]);
  return t.labels[i] == j ? 1.0f : 0.0f;
}

CAJAL_HD bool IsCorrectExample(const LossConfig& c, const float* row, int64_t d,
                               const LossTargets& t, int64_t i) {
  if (t.labels == nullptr) return false;
  switch (c.accuracy) {
    case AccuracyRule::kArgmax:
      return ArgMax(row, d) == t.labels[i];
    case AccuracyRule::kThreshold: {
      const bool probabilities = c.fused || c.kind == LossKind::kMse;
      const float cut = probabilities ? 0.5f : 0.0f;
      return (row[0] > cut ? 1 : 0) == t.labels[i];
    }
    case AccuracyRule::kExactMatch:
      for (int64_t j = 0; j < d; ++j) {
        if ((row[j] > 0.5f ? 1.0f : 0.0f) != LossTarget(t, i, j, d)) return false;
      }
      return true;
    case AccuracyRule::kNone:
      return false;
  }
  return false;
}

// Softmax cross-entropy of one example; writes (p − y)·scale to g.
CAJAL_HD double CrossEntropyExample(const LossConfig& c, const float* row, int64_t d, int32_t label,
                                    double scale, float* g) {
  if (c.fused) {
    const double p = MaxOf(static_cast<double>(row[label]), 1e-30);
    if (g != nullptr) {
      for (int64_t j = 0; j < d; ++j) g[j] = static_cast<float>((row[j] - (j == label)) * scale);
    }
    return -log(p);
  }
  const float mx = row[ArgMax(row, d)];
  double sum = 0;
  for (int64_t j = 0; j < d; ++j) sum += exp(static_cast<double>(row[j] - mx));
  const double log_z = log(sum) + mx;
  if (g != nullptr) {
    for (int64_t j = 0; j < d; ++j) {
      const double p = exp(row[j] - log_z);
      g[j] = static_cast<float>((p - (j == label)) * scale);
    }
  }
  return log_z - row[label];
}

// Mean over outputs, as PyTorch's MSELoss(reduction='mean') over N·D elements.
CAJAL_HD double MseExample(const LossConfig& c, const float* row, int64_t d, const LossTargets& t,
                           int64_t i, double scale, float* g) {
  double sum = 0;
  for (int64_t j = 0; j < d; ++j) {
    const double diff = static_cast<double>(row[j]) - LossTarget(t, i, j, d);
    sum += diff * diff;
    if (g != nullptr) g[j] = static_cast<float>(c.perceptron_error ? diff : 2.0 * diff * scale / d);
  }
  return sum / static_cast<double>(d);
}

// Mean over outputs of −[y log p + (1 − y) log(1 − p)], p = sigmoid(x).
CAJAL_HD double BinaryCrossEntropyExample(const LossConfig& c, const float* row, int64_t d,
                                          const LossTargets& t, int64_t i, double scale, float* g) {
  double sum = 0;
  for (int64_t j = 0; j < d; ++j) {
    const double y = LossTarget(t, i, j, d);
    const double z = row[j];
    double loss, p;
    if (c.fused) {
      p = ClampTo(z, 1e-12, 1.0 - 1e-12);
      loss = -(y * log(p) + (1 - y) * log(1 - p));
    } else {
      // log(1 + e^z) − y·z, stable for both signs of z.
      loss = MaxOf(z, 0.0) - y * z + log1p(exp(-fabs(z)));
      p = 1.0 / (1.0 + exp(-z));
    }
    sum += loss;
    if (g != nullptr) g[j] = static_cast<float>((p - y) * scale / d);
  }
  return sum / static_cast<double>(d);
}

// Example i's loss, writing its gradient (scaled by `scale`) to g when g is not null.
CAJAL_HD double ExampleLoss(const LossConfig& c, const float* row, int64_t d, const LossTargets& t,
                            int64_t i, double scale, float* g) {
  switch (c.kind) {
    case LossKind::kCrossEntropy:
      return CrossEntropyExample(c, row, d, t.labels[i], scale, g);
    case LossKind::kMse:
      return MseExample(c, row, d, t, i, scale, g);
    case LossKind::kBinaryCrossEntropy:
      return BinaryCrossEntropyExample(c, row, d, t, i, scale, g);
  }
  return 0;
}

}  // namespace cajal

#endif  // CAJAL_CORE_LOSS_LOSS_MATH_H_
