// The device backend's recurrent element operations: the cells of rnn, lstm (with optional
// peepholes) and gru, one time step at a time, and the layout changes around them. Each is a
// functor over an index (CAJAL_HD): the CUDA backend runs one thread per index, HostOps (the
// CPU emulation, host_ops.h) a loop, so tests run exactly what the GPU runs. recurrent.cc
// orders them with the GEMMs; this file is only the element math.
//
// Layout inside the layer: time-major, one row per (t, n): a step's rows are contiguous. Gates
// are PyTorch's, in its order: rnn 1; lstm i, f, g, o; gru r, z, n, each H columns wide.
//   G (N, G·H) of a step: W_ih·x_t + b_ih in; the activated gates out (saved for backward).
//   R (N, G·H) of a step: W_hh·h_{t−1} + b_hh (the gru's n gate needs it alone: r ⊙ R_n).
//   lstm     i = σ(G_i + R_i + p_i ⊙ c_{t−1})   f = σ(G_f + R_f + p_f ⊙ c_{t−1})
//            g = tanh(G_g + R_g)   c_t = f ⊙ c_{t−1} + i ⊙ g
//            o = σ(G_o + R_o + p_o ⊙ c_t)   h_t = o ⊙ tanh(c_t)
//   gru      r = σ(G_r + R_r)   z = σ(G_z + R_z)   n = tanh(G_n + r ⊙ R_n)
//            h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}   (PyTorch's and cuDNN's linear-before-reset form)
//   rnn      h_t = act(G + R), act tanh or relu
// The first step of a direction has zero state: h_prev and c_prev are null.
#ifndef CAJAL_CORE_BACKEND_CUDA_RECURRENT_OPS_H_
#define CAJAL_CORE_BACKEND_CUDA_RECURRENT_OPS_H_

#include <math.h>

#include <cstdint>

#include "core/backend/activation_math.h"
#include "core/util/hd.h"

namespace cajal::device {

enum class CellKind : int32_t { kRnnTanh, kRnnRelu, kLstm, kGru };

CAJAL_HD int CellGates(CellKind cell) {
  return cell == CellKind::kLstm ? 4 : cell == CellKind::kGru ? 3 : 1;
}

// Index i over N·H: example i / H, unit i % H.
struct CellForwardOp {
  CellKind cell = CellKind::kLstm;
  int64_t units = 0;
  float* g = nullptr;               // (N, G·H)
  const float* r = nullptr;         // (N, G·H)
  const float* h_prev = nullptr;    // row stride ld_h; null: zero
  float* h_out = nullptr;           // row stride ld_h
  int64_t ld_h = 0;                 // the layer's output width D·H
  const float* c_prev = nullptr;    // (N, H), lstm; null: zero
  float* c_out = nullptr;           // (N, H), lstm
  const float* peephole = nullptr;  // (3, H) rows i, f, o, or null

  CAJAL_HD void operator()(int64_t i) const {
    const int64_t h = units, n = i / h, j = i % h;
    const int64_t gh = CellGates(cell) * h;
    float* gr = g + n * gh;
    const float* rr = r + n * gh;
    float* out = h_out + n * ld_h + j;
    if (cell == CellKind::kLstm) {
      const float cp = c_prev != nullptr ? c_prev[n * h + j] : 0.0f;
      float pi = gr[j] + rr[j], pf = gr[h + j] + rr[h + j];
      if (peephole != nullptr) {
        pi += peephole[j] * cp;
        pf += peephole[h + j] * cp;
      }
      const float ig = Sigmoid(pi), fg = Sigmoid(pf), gg = tanhf(gr[2 * h + j] + rr[2 * h + j]);
      const float c = fg * cp + ig * gg;
      float po = gr[3 * h + j] + rr[3 * h + j];
      if (peephole != nullptr) po += peephole[2 * h + j] * c;
      const float og = Sigmoid(po);
      gr[j] = ig;
      gr[h + j] = fg;
      gr[2 * h + j] = gg;
      gr[3 * h + j] = og;
      c_out[n * h + j] = c;
      *out = og * tanhf(c);
    } else if (cell == CellKind::kGru) {
      const float hp = h_prev != nullptr ? h_prev[n * ld_h + j] : 0.0f;
      const float rg = Sigmoid(gr[j] + rr[j]);
      const float zg = Sigmoid(gr[h + j] + rr[h + j]);
      const float ng = tanhf(gr[2 * h + j] + rg * rr[2 * h + j]);
      gr[j] = rg;
      gr[h + j] = zg;
      gr[2 * h + j] = ng;
      *out = (1.0f - zg) * ng + zg * hp;
    } else {
      const float a = gr[j] + rr[j];
      const float y = cell == CellKind::kRnnTanh ? tanhf(a) : (a > 0.0f ? a : 0.0f);
      gr[j] = y;
      *out = y;
    }
  }
};

// Backpropagation through one step. Index i over N·H. dh = dy + dh_rec (the gradient from the
// step that read this one's state, absent at the first backward step). Writes the
// pre-activation gradients of the input projection (dg) and of R (dr: the gru's n column is
// dn ⊙ r; other cells have dr == dg), the lstm's dc_{t−1} into dc, and the gru's direct part
// z ⊙ dh of dh_{t−1} into dh_rec (the GEMM dr·W_hh adds the rest).
struct CellBackwardOp {
  CellKind cell = CellKind::kLstm;
  int64_t units = 0;
  bool first = true;              // the last step in time order: dh_rec and dc hold nothing yet
  const float* g = nullptr;       // activated gates
  const float* r = nullptr;       // R (gru)
  const float* h_prev = nullptr;  // row stride ld_h (gru); null: zero
  int64_t ld_h = 0;
  const float* c_prev = nullptr;  // lstm; null: zero
  const float* c = nullptr;       // lstm
  const float* peephole = nullptr;
  const float* dy = nullptr;  // this step's output gradient, row stride ld_h
  float* dh_rec = nullptr;    // (N, H)
  float* dc = nullptr;        // (N, H), lstm
  float* dg = nullptr;        // (N, G·H)
  float* dr = nullptr;        // (N, G·H), gru

  CAJAL_HD void operator()(int64_t i) const {
    const int64_t h = units, n = i / h, j = i % h;
    const int64_t gh = CellGates(cell) * h;
    const float* gr = g + n * gh;
    float* dgr = dg + n * gh;
    const float dh = dy[n * ld_h + j] + (first ? 0.0f : dh_rec[n * h + j]);
    if (cell == CellKind::kLstm) {
      const float ig = gr[j], fg = gr[h + j], gg = gr[2 * h + j], og = gr[3 * h + j];
      const float ct = c[n * h + j];
      const float cp = c_prev != nullptr ? c_prev[n * h + j] : 0.0f;
      const float tc = tanhf(ct);
      const float d_o = dh * tc * og * (1.0f - og);
      float dct = (first ? 0.0f : dc[n * h + j]) + dh * og * (1.0f - tc * tc);
      if (peephole != nullptr) dct += peephole[2 * h + j] * d_o;
      const float d_i = dct * gg * ig * (1.0f - ig);
      const float d_f = dct * cp * fg * (1.0f - fg);
      const float d_g = dct * ig * (1.0f - gg * gg);
      float dcp = dct * fg;
      if (peephole != nullptr) dcp += peephole[j] * d_i + peephole[h + j] * d_f;
      dgr[j] = d_i;
      dgr[h + j] = d_f;
      dgr[2 * h + j] = d_g;
      dgr[3 * h + j] = d_o;
      dc[n * h + j] = dcp;
    } else if (cell == CellKind::kGru) {
      const float rg = gr[j], zg = gr[h + j], ng = gr[2 * h + j];
      const float rn = r[n * gh + 2 * h + j];
      const float hp = h_prev != nullptr ? h_prev[n * ld_h + j] : 0.0f;
      const float d_n = dh * (1.0f - zg) * (1.0f - ng * ng);
      const float d_z = dh * (hp - ng) * zg * (1.0f - zg);
      const float d_r = d_n * rn * rg * (1.0f - rg);
      float* drr = dr + n * gh;
      dgr[j] = d_r;
      dgr[h + j] = d_z;
      dgr[2 * h + j] = d_n;
      drr[j] = d_r;
      drr[h + j] = d_z;
      drr[2 * h + j] = d_n * rg;
      dh_rec[n * h + j] = dh * zg;
    } else {
      const float y = gr[j];
      dgr[j] = cell == CellKind::kRnnTanh ? dh * (1.0f - y * y) : (y > 0.0f ? dh : 0.0f);
    }
  }
};

// Between the network's layout (N, C, T, W) — a sequence (T, F) is C = 1, W = F; an image
// (C, H, W) read row by row is T = H steps of C·W features — and the layer's time-major rows
// (T, N, C·W). Index i over the destination.
struct SequenceLayoutOp {
  const float* src = nullptr;
  float* dst = nullptr;
  int64_t batch = 0, steps = 0, channels = 1, width = 0;
  bool to_time_major = true;

  CAJAL_HD void operator()(int64_t i) const {
    const int64_t f_count = channels * width;
    if (to_time_major) {
      const int64_t f = i % f_count, rest = i / f_count;
      const int64_t n = rest % batch, t = rest / batch;
      const int64_t c = f / width, w = f % width;
      dst[i] = src[((n * channels + c) * steps + t) * width + w];
    } else {
      const int64_t w = i % width, r1 = i / width;
      const int64_t t = r1 % steps, r2 = r1 / steps;
      const int64_t c = r2 % channels, n = r2 / channels;
      dst[i] = src[(t * batch + n) * f_count + c * width + w];
    }
  }
};

// A ChannelSum term (element_ops.h) for the peephole gradients of one direction: channels 3·H
// (rows i, f, o of the (3, H) peephole tensor) over the T·N rows:
//   dp_i = Σ dG_i ⊙ c_{t−1},  dp_f = Σ dG_f ⊙ c_{t−1},  dp_o = Σ dG_o ⊙ c_t
// where t − 1 is the step before in the direction's own order (t + 1 for the reverse one).
struct PeepholeGradTerm {
  const float* dg = nullptr;  // (T·N, 4H)
  const float* c = nullptr;   // (T·N, H)
  int64_t batch = 0, steps = 0, units = 0;
  bool reverse = false;

  CAJAL_HD double operator()(int64_t idx, int64_t ch) const {
    const int64_t h = units, row = idx / (3 * h);
    const int64_t gate = ch / h, j = ch % h;
    const float d = dg[row * 4 * h + (gate == 2 ? 3 : gate) * h + j];
    if (gate == 2) return static_cast<double>(d) * c[row * h + j];
    const int64_t t = row / batch;
    const int64_t prev = reverse ? t + 1 : t - 1;
    if (prev < 0 || prev >= steps) return 0.0;
    return static_cast<double>(d) * c[(row + (reverse ? batch : -batch)) * h + j];
  }
};

}  // namespace cajal::device

#endif  // CAJAL_CORE_BACKEND_CUDA_RECURRENT_OPS_H_
