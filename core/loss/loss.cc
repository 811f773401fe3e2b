#include "core/loss/loss.h"

#include <algorithm>
#include <cmath>

namespace cajal {
namespace {

// The target of output j of example i: one-hot for labels (a single 0/1 output for D == 1).
inline float Target(const LossTargets& t, int64_t i, int64_t j, int64_t d) {
  if (t.labels == nullptr) return t.values[i * d + j];
  if (d == 1) return static_cast<float>(t.labels[i]);
  return t.labels[i] == j ? 1.0f : 0.0f;
}

bool IsCorrect(const LossConfig& c, const float* row, int64_t d, const LossTargets& t, int64_t i) {
  if (t.labels == nullptr) return false;
  switch (c.accuracy) {
    case AccuracyRule::kArgmax:
      return std::max_element(row, row + d) - row == t.labels[i];
    case AccuracyRule::kThreshold: {
      const bool probabilities = c.fused || c.kind == LossKind::kMse;
      const float cut = probabilities ? 0.5f : 0.0f;
      return (row[0] > cut ? 1 : 0) == t.labels[i];
    }
    case AccuracyRule::kExactMatch:
      for (int64_t j = 0; j < d; ++j) {
        if ((row[j] > 0.5f ? 1.0f : 0.0f) != Target(t, i, j, d)) return false;
      }
      return true;
    case AccuracyRule::kNone:
      return false;
  }
  return false;
}

// Softmax cross-entropy of one example; writes (p − y)/n to g.
double CrossEntropy(const LossConfig& c, const float* row, int64_t d, int32_t label, double scale,
                    float* g) {
  if (c.fused) {
    const double p = std::max(static_cast<double>(row[label]), 1e-30);
    if (g != nullptr) {
      for (int64_t j = 0; j < d; ++j) g[j] = static_cast<float>((row[j] - (j == label)) * scale);
    }
    return -std::log(p);
  }
  const float mx = *std::max_element(row, row + d);
  double sum = 0;
  for (int64_t j = 0; j < d; ++j) sum += std::exp(static_cast<double>(row[j] - mx));
  const double log_z = std::log(sum) + mx;
  if (g != nullptr) {
    for (int64_t j = 0; j < d; ++j) {
      const double p = std::exp(row[j] - log_z);
      g[j] = static_cast<float>((p - (j == label)) * scale);
    }
  }
  return log_z - row[label];
}

}  // namespace

LossOutput ComputeLoss(const LossConfig& c, const float* x, int64_t n, int64_t d,
                       const LossTargets& t, float* grad, double grad_scale) {
  LossOutput out;
  const double inv_n = grad_scale;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * d;
    float* g = grad != nullptr ? grad + i * d : nullptr;
    if (IsCorrect(c, row, d, t, i)) ++out.correct;
    switch (c.kind) {
      case LossKind::kCrossEntropy:
        out.sum += CrossEntropy(c, row, d, t.labels[i], inv_n, g);
        break;
      case LossKind::kMse: {
        // Mean over outputs, as PyTorch's MSELoss(reduction='mean') over N·D elements.
        double sum = 0;
        for (int64_t j = 0; j < d; ++j) {
          const double diff = static_cast<double>(row[j]) - Target(t, i, j, d);
          sum += diff * diff;
          if (g != nullptr) {
            g[j] = static_cast<float>(c.perceptron_error ? diff : 2.0 * diff * inv_n / d);
          }
        }
        out.sum += sum / static_cast<double>(d);
        break;
      }
      case LossKind::kBinaryCrossEntropy: {
        // Mean over outputs of −[y log p + (1 − y) log(1 − p)], p = sigmoid(x).
        double sum = 0;
        for (int64_t j = 0; j < d; ++j) {
          const double y = Target(t, i, j, d);
          const double z = row[j];
          double loss, p;
          if (c.fused) {
            p = std::clamp(z, 1e-12, 1.0 - 1e-12);
            loss = -(y * std::log(p) + (1 - y) * std::log(1 - p));
          } else {
            // log(1 + e^z) − y·z, stable for both signs of z.
            loss = std::max(z, 0.0) - y * z + std::log1p(std::exp(-std::abs(z)));
            p = 1.0 / (1.0 + std::exp(-z));
          }
          sum += loss;
          if (g != nullptr) g[j] = static_cast<float>((p - y) * inv_n / d);
        }
        out.sum += sum / static_cast<double>(d);
        break;
      }
    }
  }
  return out;
}

}  // namespace cajal
