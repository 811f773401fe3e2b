// Activation math, one element (or one softmax row) at a time, written once for the CPU tests
// and the CUDA kernels (CAJAL_HD; see util/hd.h). The oneDNN backend computes activations with
// oneDNN's eltwise, prelu and softmax primitives; these functions are the same definitions,
// and tests/unit/device_math_test.cc checks them against oneDNN's results. The threshold unit
// (TLU) is computed by both backends through ThresholdForward.
//
//   forward   linear x · sigmoid 1/(1 + e^−x) · tanh · relu max(x, 0) ·
//             leaky_relu x > 0 ? x : slope·x · prelu x > 0 ? x : w_c·x (a slope per channel) ·
//             softmax e^(x_j − max) / Σ e^(x_k − max) over a row
//   backward  from the output y for sigmoid y(1 − y), tanh 1 − y², relu and leaky_relu with a
//             slope >= 0 (y > 0 ⇔ x > 0); from the input x for linear, leaky_relu with a negative
//             slope (then y's sign no longer tells x's) and prelu, as oneDNN's *_use_dst_for_bwd
//             algorithms do. Softmax: dx = y ⊙ (dy − Σ dy ⊙ y).
//
// Nothing here includes more than the C++ standard library, so nvcc compiles it as it is.
#ifndef CAJAL_CORE_BACKEND_ACTIVATION_MATH_H_
#define CAJAL_CORE_BACKEND_ACTIVATION_MATH_H_

#include <math.h>

#include <cstdint>

#include "core/util/hd.h"

namespace cajal {

// The element-wise activations: layers.h's Activation without prelu and softmax, which need a
// channel's slope or a whole row.
enum class EltwiseKind : int32_t { kLinear, kSigmoid, kTanh, kRelu, kLeakyRelu };

CAJAL_HD float Sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

CAJAL_HD float EltwiseForward(EltwiseKind kind, float x, float slope) {
  switch (kind) {
    case EltwiseKind::kSigmoid:
      return Sigmoid(x);
    case EltwiseKind::kTanh:
      return tanhf(x);
    case EltwiseKind::kRelu:
      return x > 0.0f ? x : 0.0f * x;
    case EltwiseKind::kLeakyRelu:
      return x > 0.0f ? x : slope * x;
    default:
      return x;
  }
}

// Whether EltwiseBackward takes the forward output (true) or its input (false).
CAJAL_HD bool EltwiseBackwardUsesOutput(EltwiseKind kind, float slope) {
  return kind == EltwiseKind::kSigmoid || kind == EltwiseKind::kTanh ||
         kind == EltwiseKind::kRelu || (kind == EltwiseKind::kLeakyRelu && slope >= 0.0f);
}

// The input gradient from the output gradient dy and the saved value (output or input, as
// EltwiseBackwardUsesOutput says).
CAJAL_HD float EltwiseBackward(EltwiseKind kind, float saved, float dy, float slope) {
  switch (kind) {
    case EltwiseKind::kSigmoid:
      return dy * saved * (1.0f - saved);
    case EltwiseKind::kTanh:
      return dy * (1.0f - saved * saved);
    case EltwiseKind::kRelu:
      return saved > 0.0f ? dy : 0.0f * dy;
    case EltwiseKind::kLeakyRelu:
      return saved > 0.0f ? dy : slope * dy;
    default:
      return dy;
  }
}

CAJAL_HD float PreluForward(float x, float w) { return x > 0.0f ? x : w * x; }
CAJAL_HD float PreluBackwardData(float x, float w, float dy) { return x > 0.0f ? dy : w * dy; }
// One element's share of its channel's slope gradient: Σ min(x, 0)·dy over the channel.
CAJAL_HD float PreluSlopeTerm(float x, float dy) { return x > 0.0f ? 0.0f : x * dy; }

// Softmax of one row of d values.
CAJAL_HD void SoftmaxForwardRow(const float* x, float* y, int64_t d) {
  float mx = x[0];
  for (int64_t j = 1; j < d; ++j) mx = mx < x[j] ? x[j] : mx;
  float sum = 0.0f;
  for (int64_t j = 0; j < d; ++j) {
    y[j] = expf(x[j] - mx);
    sum += y[j];
  }
  for (int64_t j = 0; j < d; ++j) y[j] /= sum;
}

CAJAL_HD void SoftmaxBackwardRow(const float* y, const float* dy, float* dx, int64_t d) {
  float dot = 0.0f;
  for (int64_t j = 0; j < d; ++j) dot += dy[j] * y[j];
  for (int64_t j = 0; j < d; ++j) dx[j] = y[j] * (dy[j] - dot);
}

// The threshold unit: 1 where x > threshold, else 0. Its backward passes the error through
// unchanged (layers.h, ThresholdSpec).
CAJAL_HD float ThresholdForward(float x, float threshold) { return x > threshold ? 1.0f : 0.0f; }

}  // namespace cajal

#endif  // CAJAL_CORE_BACKEND_ACTIVATION_MATH_H_
