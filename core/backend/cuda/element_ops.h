// The device backend's element operations: every computation of the CUDA backend that is not
// a GEMM (cuBLAS) or a convolution (cuDNN), written once as functors over an index (CAJAL_HD).
// DeviceOps::Run(op, n) runs op(i) for i in [0, n): the CUDA backend with one GPU thread per
// index (kernels.cu), HostOps (host_ops.h) with a loop on the CPU, so the tests run on the CPU
// exactly the index arithmetic and math the GPU runs. Each op writes only element i (or row i)
// of its outputs, so the order of the indices does not matter.
//
// The math comes from the shared headers: activations and the threshold unit
// (backend/activation_math.h), the losses (loss/loss_math.h), the optimizer updates
// (optim/update.h), the dropout masks (util/counter_rng.h); the recurrent cells are in
// recurrent_ops.h.
//
// ChannelSum terms (ReduceTerm) are the other shape of work: DeviceOps::ChannelSum sums
// term(idx, c) over every idx of channel c of an (outer, channels, inner) tensor.
//
// Nothing here includes more than the C++ standard library and the headers above, so nvcc
// compiles it.
#ifndef CAJAL_CORE_BACKEND_CUDA_ELEMENT_OPS_H_
#define CAJAL_CORE_BACKEND_CUDA_ELEMENT_OPS_H_

#include <math.h>

#include <cstdint>
#include <variant>

#include "core/backend/activation_math.h"
#include "core/backend/cuda/recurrent_ops.h"
#include "core/loss/loss_math.h"
#include "core/optim/update.h"
#include "core/util/counter_rng.h"
#include "core/util/hd.h"

namespace cajal::device {

// ---- Whole buffers.

struct FillOp {
  float* x = nullptr;
  float value = 0.0f;
  CAJAL_HD void operator()(int64_t i) const { x[i] = value; }
};

struct ScaleOp {
  float* x = nullptr;
  float a = 1.0f;
  CAJAL_HD void operator()(int64_t i) const { x[i] *= a; }
};

// y (outer, channels, inner): y[i] = b[c] (set) or y[i] += b[c] (add), c = (i / inner) % channels.
struct BiasOp {
  float* y = nullptr;
  const float* b = nullptr;
  int64_t channels = 1, inner = 1;
  bool add = true;
  CAJAL_HD void operator()(int64_t i) const {
    const float v = b[(i / inner) % channels];
    y[i] = add ? y[i] + v : v;
  }
};

// One optimizer update per parameter (optim/update.h); s0/s1 may be null where the kind keeps
// no state.
struct UpdateOp {
  UpdateParams u;
  float* p = nullptr;
  const float* g = nullptr;
  float* s0 = nullptr;
  float* s1 = nullptr;
  CAJAL_HD void operator()(int64_t i) const {
    float unused0 = 0.0f, unused1 = 0.0f;
    UpdateOne(u, p[i], g[i], s0 != nullptr ? s0[i] : unused0, s1 != nullptr ? s1[i] : unused1);
  }
};

// Index i over examples: example i's loss and correctness (summed on the host, in order) and
// its gradient row.
struct LossOp {
  LossConfig config;
  const float* x = nullptr;
  int64_t d = 0;
  LossTargets targets;
  double scale = 1.0;
  float* grad = nullptr;  // null: no gradient
  double* loss = nullptr;
  int32_t* correct = nullptr;
  CAJAL_HD void operator()(int64_t i) const {
    const float* row = x + i * d;
    correct[i] = IsCorrectExample(config, row, d, targets, i) ? 1 : 0;
    loss[i] =
        ExampleLoss(config, row, d, targets, i, scale, grad != nullptr ? grad + i * d : nullptr);
  }
};

// ---- Activations, threshold, dropout.

struct EltwiseForwardOp {
  EltwiseKind kind = EltwiseKind::kLinear;
  float slope = 0.0f;
  const float* x = nullptr;
  float* y = nullptr;
  CAJAL_HD void operator()(int64_t i) const { y[i] = EltwiseForward(kind, x[i], slope); }
};

struct EltwiseBackwardOp {
  EltwiseKind kind = EltwiseKind::kLinear;
  float slope = 0.0f;
  const float* saved = nullptr;  // the output or the input (EltwiseBackwardUsesOutput)
  const float* dy = nullptr;
  float* dx = nullptr;
  CAJAL_HD void operator()(int64_t i) const {
    dx[i] = EltwiseBackward(kind, saved[i], dy[i], slope);
  }
};

// PReLU over (outer, channels, inner) with one slope per channel.
struct PreluForwardOp {
  const float* x = nullptr;
  const float* w = nullptr;
  float* y = nullptr;
  int64_t channels = 1, inner = 1;
  CAJAL_HD void operator()(int64_t i) const {
    y[i] = PreluForward(x[i], w[(i / inner) % channels]);
  }
};

struct PreluBackwardDataOp {
  const float* x = nullptr;
  const float* w = nullptr;
  const float* dy = nullptr;
  float* dx = nullptr;
  int64_t channels = 1, inner = 1;
  CAJAL_HD void operator()(int64_t i) const {
    dx[i] = PreluBackwardData(x[i], w[(i / inner) % channels], dy[i]);
  }
};

// Index i over rows of d values.
struct SoftmaxForwardOp {
  const float* x = nullptr;
  float* y = nullptr;
  int64_t d = 0;
  CAJAL_HD void operator()(int64_t i) const { SoftmaxForwardRow(x + i * d, y + i * d, d); }
};

struct SoftmaxBackwardOp {
  const float* y = nullptr;
  const float* dy = nullptr;
  float* dx = nullptr;
  int64_t d = 0;
  CAJAL_HD void operator()(int64_t i) const {
    SoftmaxBackwardRow(y + i * d, dy + i * d, dx + i * d, d);
  }
};

struct ThresholdOp {
  const float* x = nullptr;
  float* y = nullptr;
  float threshold = 0.0f;
  CAJAL_HD void operator()(int64_t i) const { y[i] = ThresholdForward(x[i], threshold); }
};

// Inverted dropout with the mask of (seed, layer, step) at `key` (util/counter_rng.h): the
// backward pass draws the same mask again instead of storing it.
struct DropoutOp {
  const float* in = nullptr;  // forward: x; backward: dy
  float* out = nullptr;       // forward: y; backward: dx
  uint64_t key = 0;
  float rate = 0.0f;
  CAJAL_HD void operator()(int64_t i) const {
    out[i] = in[i] * DropoutScale(key, static_cast<uint64_t>(i), rate);
  }
};

// ---- Pooling: planes of (h, w) -> (oh, ow), square windows, padding on every side.

struct PoolGeometry {
  int64_t planes = 0;  // N·C
  int64_t h = 0, w = 0, oh = 0, ow = 0;
  int32_t kernel = 1, stride = 1, pad = 0;
};

// First and last output index whose window covers input index `at` (clipped to the output).
CAJAL_HD void CoveringWindows(int64_t at, int64_t out_size, const PoolGeometry& g, int64_t* lo,
                              int64_t* hi) {
  const int64_t first = at + g.pad - g.kernel + 1;
  *lo = first <= 0 ? 0 : (first + g.stride - 1) / g.stride;
  const int64_t last = (at + g.pad) / g.stride;
  *hi = last < out_size - 1 ? last : out_size - 1;
}

// Index i over outputs (plane, oh, ow). Max: padding is −∞ and the first largest wins; in
// training the arg max (h·w + w within the plane) is kept for backward. Avg: padding counts as
// zeros and each window divides by kernel².
struct PoolForwardOp {
  PoolGeometry g;
  bool max = true;
  const float* x = nullptr;
  float* y = nullptr;
  int32_t* argmax = nullptr;  // max, training only
  CAJAL_HD void operator()(int64_t i) const {
    const int64_t ow = i % g.ow, rest = i / g.ow;
    const int64_t oh = rest % g.oh, plane = rest / g.oh;
    const float* p = x + plane * g.h * g.w;
    const int64_t h0 = oh * g.stride - g.pad, w0 = ow * g.stride - g.pad;
    float acc = 0.0f;
    int32_t at = -1;
    for (int64_t kh = 0; kh < g.kernel; ++kh) {
      const int64_t hh = h0 + kh;
      if (hh < 0 || hh >= g.h) continue;
      for (int64_t kw = 0; kw < g.kernel; ++kw) {
        const int64_t ww = w0 + kw;
        if (ww < 0 || ww >= g.w) continue;
        const float v = p[hh * g.w + ww];
        if (!max) {
          acc += v;
        } else if (at < 0 || acc < v) {
          acc = v;
          at = static_cast<int32_t>(hh * g.w + ww);
        }
      }
    }
    y[i] = max ? acc : acc / static_cast<float>(g.kernel * g.kernel);
    if (argmax != nullptr) argmax[i] = at;
  }
};

// Index i over inputs (plane, h, w): the sum over the windows that cover it of their output
// gradient (max: only windows whose arg max it is; avg: divided by kernel²).
struct PoolBackwardOp {
  PoolGeometry g;
  bool max = true;
  const float* dy = nullptr;
  const int32_t* argmax = nullptr;
  float* dx = nullptr;
  CAJAL_HD void operator()(int64_t i) const {
    const int64_t w = i % g.w, rest = i / g.w;
    const int64_t h = rest % g.h, plane = rest / g.h;
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    CoveringWindows(h, g.oh, g, &oh_lo, &oh_hi);
    CoveringWindows(w, g.ow, g, &ow_lo, &ow_hi);
    const int32_t self = static_cast<int32_t>(h * g.w + w);
    float acc = 0.0f;
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow) {
        const int64_t o = (plane * g.oh + oh) * g.ow + ow;
        if (!max || argmax[o] == self) acc += dy[o];
      }
    }
    dx[i] = max ? acc : acc / static_cast<float>(g.kernel * g.kernel);
  }
};

// ---- Local response normalization across channels (the AlexNet paper's alpha, not divided
// by the size): s_c = k + alpha·Σ_{c' ∈ [c − before, c + after]} x_{c'}², y_c = x_c·s_c^−beta.

struct LrnGeometry {
  int64_t channels = 0, plane = 0;  // C, H·W
  int32_t before = 0, after = 0;    // the window around c
  float alpha = 0.0f, beta = 0.0f, k = 0.0f;
};

struct LrnForwardOp {
  LrnGeometry g;
  const float* x = nullptr;
  float* y = nullptr;
  float* s = nullptr;  // training: s_c kept for backward
  CAJAL_HD void operator()(int64_t i) const {
    const int64_t c = (i / g.plane) % g.channels;
    const int64_t c_lo = c - g.before < 0 ? 0 : c - g.before;
    const int64_t c_hi = c + g.after > g.channels - 1 ? g.channels - 1 : c + g.after;
    float sum = 0.0f;
    for (int64_t cc = c_lo; cc <= c_hi; ++cc) {
      const float v = x[i + (cc - c) * g.plane];
      sum += v * v;
    }
    const float sc = g.k + g.alpha * sum;
    y[i] = x[i] * powf(sc, -g.beta);
    if (s != nullptr) s[i] = sc;
  }
};

// dx_i = dy_i·s_i^−beta − 2·alpha·beta·x_i·Σ_{c: i ∈ window(c)} dy_c·x_c·s_c^(−beta−1)
struct LrnBackwardOp {
  LrnGeometry g;
  const float* x = nullptr;
  const float* s = nullptr;
  const float* dy = nullptr;
  float* dx = nullptr;
  CAJAL_HD void operator()(int64_t i) const {
    const int64_t c = (i / g.plane) % g.channels;
    const int64_t c_lo = c - g.after < 0 ? 0 : c - g.after;
    const int64_t c_hi = c + g.before > g.channels - 1 ? g.channels - 1 : c + g.before;
    float acc = 0.0f;
    for (int64_t cc = c_lo; cc <= c_hi; ++cc) {
      const int64_t j = i + (cc - c) * g.plane;
      acc += dy[j] * x[j] * powf(s[j], -g.beta - 1.0f);
    }
    dx[i] = dy[i] * powf(s[i], -g.beta) - 2.0f * g.alpha * g.beta * x[i] * acc;
  }
};

// ---- Batch normalization over (outer, channels, inner), per channel.

// Index over channels: inv = 1/√(var + epsilon).
struct BnInvStdOp {
  const float* var = nullptr;
  float* inv = nullptr;
  float epsilon = 0.0f;
  CAJAL_HD void operator()(int64_t c) const { inv[c] = 1.0f / sqrtf(var[c] + epsilon); }
};

// y = scale·(x − mean)·inv + shift
struct BnNormalizeOp {
  const float* x = nullptr;
  float* y = nullptr;
  const float* mean = nullptr;
  const float* inv = nullptr;
  const float* scale = nullptr;
  const float* shift = nullptr;
  int64_t channels = 1, inner = 1;
  CAJAL_HD void operator()(int64_t i) const {
    const int64_t c = (i / inner) % channels;
    y[i] = scale[c] * (x[i] - mean[c]) * inv[c] + shift[c];
  }
};

// Index over channels: running = momentum·running + (1 − momentum)·batch (the variance made
// unbiased by `unbias` = m/(m − 1)), as the CPU backend does.
struct BnRunningOp {
  float* running_mean = nullptr;
  float* running_var = nullptr;
  const float* mean = nullptr;
  const float* var = nullptr;
  float momentum = 0.9f, unbias = 1.0f;
  CAJAL_HD void operator()(int64_t c) const {
    const float m = momentum;
    running_mean[c] = m * running_mean[c] + (1 - m) * mean[c];
    running_var[c] = m * running_var[c] + (1 - m) * var[c] * unbias;
  }
};

// dx = scale·inv·(dy − dshift/m − (x − mean)·inv·dscale/m), m values per channel.
struct BnBackwardDataOp {
  const float* x = nullptr;
  const float* dy = nullptr;
  const float* mean = nullptr;
  const float* inv = nullptr;
  const float* scale = nullptr;
  const float* dscale = nullptr;
  const float* dshift = nullptr;
  float* dx = nullptr;
  float inv_m = 0.0f;
  int64_t channels = 1, inner = 1;
  CAJAL_HD void operator()(int64_t i) const {
    const int64_t c = (i / inner) % channels;
    const float xhat = (x[i] - mean[c]) * inv[c];
    dx[i] = scale[c] * inv[c] * (dy[i] - dshift[c] * inv_m - xhat * dscale[c] * inv_m);
  }
};

using ElementOp =
    std::variant<FillOp, ScaleOp, BiasOp, UpdateOp, LossOp, EltwiseForwardOp, EltwiseBackwardOp,
                 PreluForwardOp, PreluBackwardDataOp, SoftmaxForwardOp, SoftmaxBackwardOp,
                 ThresholdOp, DropoutOp, PoolForwardOp, PoolBackwardOp, LrnForwardOp, LrnBackwardOp,
                 BnInvStdOp, BnNormalizeOp, BnRunningOp, BnBackwardDataOp, CellForwardOp,
                 CellBackwardOp, SequenceLayoutOp>;

// ---- ChannelSum terms: term(idx, c) for element idx of channel c.

struct ValueTerm {
  const float* x = nullptr;
  CAJAL_HD double operator()(int64_t idx, int64_t) const { return x[idx]; }
};

// (x − mean_c)²: batch norm's variance, in a second pass after the mean.
struct CenteredSquareTerm {
  const float* x = nullptr;
  const float* mean = nullptr;
  CAJAL_HD double operator()(int64_t idx, int64_t c) const {
    const double d = static_cast<double>(x[idx]) - mean[c];
    return d * d;
  }
};

// dy·(x − mean_c)·inv_c: batch norm's scale gradient.
struct BnScaleGradTerm {
  const float* x = nullptr;
  const float* dy = nullptr;
  const float* mean = nullptr;
  const float* inv = nullptr;
  CAJAL_HD double operator()(int64_t idx, int64_t c) const {
    return static_cast<double>(dy[idx]) * (x[idx] - mean[c]) * inv[c];
  }
};

struct PreluSlopeGradTerm {
  const float* x = nullptr;
  const float* dy = nullptr;
  CAJAL_HD double operator()(int64_t idx, int64_t) const { return PreluSlopeTerm(x[idx], dy[idx]); }
};

// x² for idx < n, 0 beyond (a sum of squares over a buffer cut into equal chunks).
struct SquareTerm {
  const float* x = nullptr;
  int64_t n = 0;
  CAJAL_HD double operator()(int64_t idx, int64_t) const {
    return idx < n ? static_cast<double>(x[idx]) * x[idx] : 0.0;
  }
};

using ReduceTerm = std::variant<ValueTerm, CenteredSquareTerm, BnScaleGradTerm, PreluSlopeGradTerm,
                                SquareTerm, PeepholeGradTerm>;

// The tensor a ChannelSum reduces: element (o, c, s) is at (o·channels + c)·inner + s.
struct ReduceShape {
  int64_t outer = 1, channels = 1, inner = 1;
};

}  // namespace cajal::device

#endif  // CAJAL_CORE_BACKEND_CUDA_ELEMENT_OPS_H_
