// The lstm layer of our own, for unidirectional stacks (with or without peepholes), on a small
// GEMM kernel of our own, dnnl_sgemm and vectorized cells. Bidirectional lstms, rnns and grus run
// on oneDNN's RNN primitives (rnn.cc); the two paths compute the same function
// (tests/unit/lstm_kernel_test.cc).
//
// Why: oneDNN 2.6's LSTM primitive is a reference implementation on AVX2 machines and gains
// little from a second thread. Here the threads never wait on each other inside the
// recurrence: the batch is cut into one contiguous block of samples per thread, and each thread
// runs the whole recurrence (forward, then backward) of its block on one core. The weight
// gradients and the input gradient, which are not sequential, run afterwards as GEMMs over all
// N·T samples-steps on every thread.
//
// Layout: feature-major. Every per-step quantity is a matrix with one row per feature (unit,
// gate, input) and one column per (sample, step); block k (samples [b_k, b_k+1)) owns columns
// [b_k·T, b_k+1·T), step t of it the nb = b_k+1 − b_k columns from b_k·T + t·nb. So a step of
// a block is a (rows × nb) slice with the row stride ld of the whole matrix, and the products
// of a step put the weights on the left (M = 4H or H rows, packed once per training step) and
// the block's columns on the right; the cells run along the columns.
//   xh  (in + H + 1, ld): rows [x_t; h_{t−1}; 1]      W = [W_ih | W_hh | b_ih + b_hh]  (4H, in+H+1)
//   forward   per t:  G = W · xh[:, t]
//                     i = σ(G_i + p_i ⊙ c_{t−1})   f = σ(G_f + p_f ⊙ c_{t−1})   g = tanh(G_g)
//                     c_t = f ⊙ c_{t−1} + i ⊙ g    o = σ(G_o + p_o ⊙ c_t)      h_t = o ⊙ tanh(c_t)
//   backward  per t, from T−1: dh = dh_out[:, t] + W_hhᵀ · dG[:, t+1], then the gate gradients
//             dG[:, t]; afterwards [dW_ih | dW_hh | db] = dG · xhᵀ and dx = W_ihᵀ · dG.
// Gates i, f, g, o are in PyTorch's order and layout (the ParamStore's); db_ih = db_hh = db.
// Peepholes (3, H) rows i, f, o, as oneDNN defines them (o sees c_t); the cells are compiled
// with and without them. The states start at zero.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/onednn/kernels.h"
#include "core/util/status_macros.h"
#include "oneapi/dnnl/dnnl.h"

namespace cajal::onednn {
namespace {

// e^x for |x| ≤ 87 (callers clamp), written so that the loops below vectorize: Cody–Waite
// reduction x = k·ln2 + r with |r| ≤ ln2/2, a degree-6 Taylor polynomial for e^r (relative
// error 1.2e-7 there), and 2^k built in the exponent bits.
inline float Exp(float x) {
  const float k = std::floor(x * 1.44269504f + 0.5f);
  // ln2 = 355/512 − 2.12194440e-4: the first product is exact.
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// x limited to [−bound, bound]; NaN stays NaN.
inline float Clamp(float x, float bound) {
  x = x < -bound ? -bound : x;
  return x > bound ? bound : x;
}

// σ(±25) is 1 or 1.4e-11 and tanh(±9) is ±1 in float, so the arguments are clamped there; that
// keeps e^{−x} ≤ 7.2e10 and e^{2x} ≤ 6.6e7, whose products below stay far from overflow.
constexpr float kSigmoidBound = 25.0f;
constexpr float kTanhBound = 9.0f;

#define CAJAL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

// ---- The products of a step: C (m × n) = A (m × k) · B (k × n), A packed. ----
//
// A (the weights) is packed once per training step into panels of kPanel rows: panel p holds
// element (p·kPanel + i, q) at p·kPanel·k + q·kPanel + i, rows past m as zeros. B and C are
// row-major slices (a step's columns). Per panel, the columns go in 16- and 8-wide tiles whose
// kPanel × 16 sums stay in vector registers over the whole k (12 of the 16 AVX2 registers, one
// broadcast A element times two B vectors per row and q); the last n % 8 columns one by one.
constexpr int64_t kPanel = 6;

typedef float Vec8 __attribute__((vector_size(32)));
// The same, at any float's address (unaligned loads and stores).
typedef float Vec8Unaligned __attribute__((vector_size(32), aligned(4), may_alias));

int64_t Panels(int64_t m) { return (m + kPanel - 1) / kPanel; }

// Packs panel p of the m × k matrix whose element (i, q) is at(i, q).
template <typename At>
void PackPanel(int64_t p, int64_t m, int64_t k, const At& at, float* packed) {
  float* out = packed + p * kPanel * k;
  for (int64_t q = 0; q < k; ++q) {
    for (int64_t i = 0; i < kPanel; ++i) {
      const int64_t row = p * kPanel + i;
      out[q * kPanel + i] = row < m ? at(row, q) : 0.0f;
    }
  }
}

template <int kVecs>
__attribute__((always_inline)) inline void PanelTile(int64_t rows, int64_t k,
                                                     const float* __restrict a,
                                                     const float* __restrict b, int64_t ldb,
                                                     float* __restrict c, int64_t ldc) {
  // Loads and stores through typed pointers, never the sums' addresses: they stay in registers.
  Vec8 sum[kPanel][kVecs];
  for (int i = 0; i < kPanel; ++i) {
    for (int v = 0; v < kVecs; ++v) sum[i][v] = Vec8{};
  }
  for (int64_t q = 0; q < k; ++q) {
    Vec8 bq[kVecs];
    for (int v = 0; v < kVecs; ++v) {
      bq[v] = *reinterpret_cast<const Vec8Unaligned*>(b + q * ldb + 8 * v);
    }
    for (int i = 0; i < kPanel; ++i) {
      for (int v = 0; v < kVecs; ++v) sum[i][v] += bq[v] * a[q * kPanel + i];
    }
  }
  for (int i = 0; i < kPanel; ++i) {
    if (i >= rows) break;
    for (int v = 0; v < kVecs; ++v)
      *reinterpret_cast<Vec8Unaligned*>(c + i * ldc + 8 * v) = sum[i][v];
  }
}

// The columns go in blocks of kColumnBlock, so that a block of B (k × 128 floats: 80 KB for the
// forward products of a 28 → 128 lstm, 256 KB for the backward ones) stays in the L2 cache
// while every panel of A passes over it; a step of one thread has up to 32 columns at batch 64.
constexpr int64_t kColumnBlock = 128;

CAJAL_CLONES void PackedGemm(int64_t m, int64_t n, int64_t k, const float* packed, const float* b,
                             int64_t ldb, float* c, int64_t ldc) {
  for (int64_t j0 = 0; j0 < n; j0 += kColumnBlock) {
    const int64_t stop = std::min(n, j0 + kColumnBlock);
    for (int64_t p = 0; p < Panels(m); ++p) {
      const float* a = packed + p * kPanel * k;
      const int64_t rows = std::min(kPanel, m - p * kPanel);
      float* cp = c + p * kPanel * ldc;
      int64_t j = j0;
      for (; j + 16 <= stop; j += 16) PanelTile<2>(rows, k, a, b + j, ldb, cp + j, ldc);
      for (; j + 8 <= stop; j += 8) PanelTile<1>(rows, k, a, b + j, ldb, cp + j, ldc);
      for (; j < stop; ++j) {
        for (int64_t i = 0; i < rows; ++i) {
          float sum = 0.0f;
          for (int64_t q = 0; q < k; ++q) sum += a[q * kPanel + i] * b[q * ldb + j];
          cp[i * ldc + j] = sum;
        }
      }
    }
  }
}

// Row-major C = op(A) · op(B), on every thread of the caller's OpenMP context.
void Gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float* c, int64_t ldc) {
  dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}

// ---- The cells, along the `width` columns of one block's step; rows `ld` apart. ----

// The bodies run along `count` columns; with kChunk > 0 count is a multiple of kChunk and the
// columns go kChunk at a time (a constant trip count the compiler turns into straight vector
// code; a loop over a step's few columns costs twice as much), with kChunk = 0 in one loop.
constexpr int kCellChunk = 32;

// Asks for the `count` floats from p in cache lines, for reading (kWrite false) or writing.
template <bool kWrite>
inline void Prefetch(const float* p, int64_t count) {
  for (int64_t o = 0; o < count; o += 16) __builtin_prefetch(p + o, kWrite ? 1 : 0, 3);
}

// Unit j's peephole weights (i, f, o); zeros without peepholes.
struct Peepholes {
  float i, f, o;
};

template <bool kPeephole>
inline Peepholes PeepholesOf(const float* peep, int64_t units, int64_t j) {
  if (!kPeephole) return {0.0f, 0.0f, 0.0f};
  return {peep[j], peep[units + j], peep[2 * units + j]};
}

// The next step's lines of unit j's four gate rows (g: this step's columns), for writing.
inline void PrefetchGates(float* g, int64_t units, int64_t j, int64_t ld, int64_t ahead,
                          int64_t count) {
  for (int64_t u = 0; u < 4; ++u) Prefetch<true>(g + (u * units + j) * ld + ahead, count);
}

// Pre-activations g (4H rows) in, gate activations out; the cell c and h written: h to h, to
// h_next (the next step's xh rows) or to both; whichever is null is skipped. peep (3H; read only
// with kPeephole); c_prev with row stride c_prev_ld (0: one row of zeros for t = 0).
template <bool kPeephole, int kChunk>
__attribute__((always_inline)) inline void ForwardCellBody(
    int64_t units, int64_t count, int64_t ld, int64_t ahead, const float* __restrict peep,
    const float* __restrict c_prev, int64_t c_prev_ld, float* __restrict g, float* __restrict c,
    float* __restrict h, float* __restrict h_next) {
  if (count == 0) return;
  const int64_t step = kChunk > 0 ? kChunk : count;
  for (int64_t j = 0; j < units; ++j) {
    float* __restrict gi = g + j * ld;
    float* __restrict gf = g + (units + j) * ld;
    float* __restrict gg = g + (2 * units + j) * ld;
    float* __restrict go = g + (3 * units + j) * ld;
    const float* __restrict cp_row = c_prev + j * c_prev_ld;
    float* __restrict c_row = c + j * ld;
    float* __restrict h_row = (h != nullptr ? h : h_next) + j * ld;
    const Peepholes p = PeepholesOf<kPeephole>(peep, units, j);
    if (ahead != 0) {
      PrefetchGates(g, units, j, ld, ahead, count);
      Prefetch<true>(c_row + ahead, count);
      Prefetch<true>(h_row + ahead, count);
    }
    for (int64_t n0 = 0; n0 < count; n0 += step) {
      for (int64_t n = n0; n < n0 + step; ++n) {
        const float cp = cp_row[n];
        const float ai = kPeephole ? gi[n] + p.i * cp : gi[n];
        const float af = kPeephole ? gf[n] + p.f * cp : gf[n];
        // σ(a) = 1 / (1 + e^{−a}) and tanh(a) = (e^{2a} − 1) / (e^{2a} + 1): i, f and g share one
        // division, o and tanh(c) another (1/x = y·z / (x·y·z)); divisions are the loop's slowest
        // instructions.
        const float ei = 1.0f + Exp(-Clamp(ai, kSigmoidBound));
        const float ef = 1.0f + Exp(-Clamp(af, kSigmoidBound));
        const float eg = Exp(2.0f * Clamp(gg[n], kTanhBound));
        const float pg = eg + 1.0f;
        const float r = 1.0f / (ei * ef * pg);
        const float i = ef * pg * r;
        const float f = ei * pg * r;
        const float cand = (eg - 1.0f) * ei * ef * r;
        const float cell = f * cp + i * cand;
        const float ao = kPeephole ? go[n] + p.o * cell : go[n];
        const float eo = 1.0f + Exp(-Clamp(ao, kSigmoidBound));
        const float ec = Exp(2.0f * Clamp(cell, kTanhBound));
        const float pc = ec + 1.0f;
        const float s = 1.0f / (eo * pc);
        const float o = pc * s;
        const float t = (ec - 1.0f) * eo * s;
        gi[n] = i;
        gf[n] = f;
        gg[n] = cand;
        go[n] = o;
        c_row[n] = cell;
        h_row[n] = o * t;
      }
    }
    if (h != nullptr && h_next != nullptr) std::copy(h_row, h_row + count, h_next + j * ld);
  }
}

// One step backward. dh_out: the gradient arriving from above (row stride dh_out_ld, 0: zeros),
// dh_rec: the one from step t + 1 through W_hh (rows `width` apart). dc: in, the cell gradient
// from t + 1; out, the one for t − 1 (rows `width` apart). g (4H rows): in, the gate
// activations; out, the pre-activation gradients (in place: the activations are not needed
// again, and a second buffer would be one more pass over memory). With kPeephole adds each column's
// peephole gradient terms to dpeep (3H rows `width` apart), summed over the columns by the caller.
template <bool kPeephole, int kChunk>
__attribute__((always_inline)) inline void BackwardCellBody(
    int64_t units, int64_t count, int64_t width, int64_t ld, int64_t ahead,
    const float* __restrict peep, float* __restrict g, const float* __restrict c,
    const float* __restrict c_prev, int64_t c_prev_ld, const float* __restrict dh_out,
    int64_t dh_out_ld, const float* __restrict dh_rec, float* __restrict dc,
    float* __restrict dpeep) {
  if (count == 0) return;
  const int64_t step = kChunk > 0 ? kChunk : count;
  for (int64_t j = 0; j < units; ++j) {
    float* __restrict gi = g + j * ld;
    float* __restrict gf = g + (units + j) * ld;
    float* __restrict gg = g + (2 * units + j) * ld;
    float* __restrict go = g + (3 * units + j) * ld;
    const float* __restrict c_row = c + j * ld;
    const float* __restrict cp_row = c_prev + j * c_prev_ld;
    const float* __restrict dh_out_row = dh_out + j * dh_out_ld;
    const float* __restrict dh_rec_row = dh_rec + j * width;
    float* __restrict dc_row = dc + j * width;
    float* __restrict dpi = kPeephole ? dpeep + j * width : nullptr;
    float* __restrict dpf = kPeephole ? dpeep + (units + j) * width : nullptr;
    float* __restrict dpo = kPeephole ? dpeep + (2 * units + j) * width : nullptr;
    const Peepholes p = PeepholesOf<kPeephole>(peep, units, j);
    if (ahead != 0) {
      PrefetchGates(g, units, j, ld, ahead, count);
      Prefetch<false>(c_row + ahead, count);
      if (dh_out_ld != 0) Prefetch<false>(dh_out_row + ahead, count);
    }
    for (int64_t n0 = 0; n0 < count; n0 += step) {
      for (int64_t n = n0; n < n0 + step; ++n) {
        const float i = gi[n], f = gf[n], cand = gg[n], o = go[n];
        // tanh(c) again rather than stored: one more pass over memory costs more.
        const float ec = Exp(2.0f * Clamp(c_row[n], kTanhBound));
        const float cp = cp_row[n], t = (ec - 1.0f) / (ec + 1.0f);
        const float dh = dh_out_row[n] + dh_rec_row[n];
        const float d_o = dh * t * o * (1.0f - o);
        float dcell = dh * o * (1.0f - t * t) + dc_row[n];
        if (kPeephole) dcell += d_o * p.o;
        const float d_i = dcell * cand * i * (1.0f - i);
        const float d_f = dcell * cp * f * (1.0f - f);
        const float d_g = dcell * i * (1.0f - cand * cand);
        dc_row[n] = kPeephole ? dcell * f + d_i * p.i + d_f * p.f : dcell * f;
        gi[n] = d_i;
        gf[n] = d_f;
        gg[n] = d_g;
        go[n] = d_o;
        if (kPeephole) {
          dpi[n] += d_i * cp;
          dpf[n] += d_f * cp;
          dpo[n] += d_o * c_row[n];
        }
      }
    }
  }
}

// The cells compiled for each instruction set, with and without peepholes: the columns in
// chunks, then the rest.
CAJAL_CLONES void ForwardCell(bool peephole, int64_t units, int64_t width, int64_t ld,
                              int64_t ahead, const float* peep, const float* c_prev,
                              int64_t c_prev_ld, float* g, float* c, float* h, float* h_next) {
  const int64_t m = width / kCellChunk * kCellChunk;
  float* h_rest = h != nullptr ? h + m : nullptr;
  float* h_next_rest = h_next != nullptr ? h_next + m : nullptr;
  if (peephole) {
    ForwardCellBody<true, kCellChunk>(units, m, ld, ahead, peep, c_prev, c_prev_ld, g, c, h,
                                      h_next);
    ForwardCellBody<true, 0>(units, width - m, ld, ahead, peep, c_prev + m, c_prev_ld, g + m, c + m,
                             h_rest, h_next_rest);
  } else {
    ForwardCellBody<false, kCellChunk>(units, m, ld, ahead, peep, c_prev, c_prev_ld, g, c, h,
                                       h_next);
    ForwardCellBody<false, 0>(units, width - m, ld, ahead, peep, c_prev + m, c_prev_ld, g + m,
                              c + m, h_rest, h_next_rest);
  }
}

CAJAL_CLONES void BackwardCell(bool peephole, int64_t units, int64_t width, int64_t ld,
                               int64_t ahead, const float* peep, float* g, const float* c,
                               const float* c_prev, int64_t c_prev_ld, const float* dh_out,
                               int64_t dh_out_ld, const float* dh_rec, float* dc, float* dpeep) {
  const int64_t m = width / kCellChunk * kCellChunk;
  float* dpeep_rest = dpeep != nullptr ? dpeep + m : nullptr;
  if (peephole) {
    BackwardCellBody<true, kCellChunk>(units, m, width, ld, ahead, peep, g, c, c_prev, c_prev_ld,
                                       dh_out, dh_out_ld, dh_rec, dc, dpeep);
    BackwardCellBody<true, 0>(units, width - m, width, ld, ahead, peep, g + m, c + m, c_prev + m,
                              c_prev_ld, dh_out + m, dh_out_ld, dh_rec + m, dc + m, dpeep_rest);
  } else {
    BackwardCellBody<false, kCellChunk>(units, m, width, ld, ahead, peep, g, c, c_prev, c_prev_ld,
                                        dh_out, dh_out_ld, dh_rec, dc, dpeep);
    BackwardCellBody<false, 0>(units, width - m, width, ld, ahead, peep, g + m, c + m, c_prev + m,
                               c_prev_ld, dh_out + m, dh_out_ld, dh_rec + m, dc + m, dpeep_rest);
  }
}

struct Layer {
  int64_t in = 0;
  int64_t d = 0;                                  // rows of xh, columns of W: in + H + 1
  const float *w_ih, *w_hh, *b_ih, *b_hh, *peep;  // peep null without peepholes
  float *dw_ih, *dw_hh, *db_ih, *db_hh, *dpeep;   // dpeep null without peepholes
  AlignedBuffer w_packed;                         // W (4H, D) in panels, for the forward products
  AlignedBuffer xh;                               // (D, ld): x, h one step earlier, 1
  AlignedBuffer gates;  // (4H, ld): pre-activations, activations, in Backward their gradients
  AlignedBuffer cells;  // (H, ld)
  AlignedBuffer h;      // (H, ld)
  bool keep_h = false;  // h of every step kept (the layer above or the output reads it), else
                        // only the last step's
  // Training only.
  AlignedBuffer w_hh_t_packed;  // W_hhᵀ (H, 4H) in panels, for the backward products
  AlignedBuffer dw;             // (4H, D): [dW_ih | dW_hh | db]
  AlignedBuffer dh_rec, dc;     // (H, nb) per block, block k at b_k·H
  AlignedBuffer dpeep_part;     // (3H, nb) per block, block k at b_k·3H; peepholes only
  const float* dh = nullptr;    // (H, ld) gradient of h
  bool dh_every_step = false;   // false: dh holds only the columns of the last step
  AlignedBuffer dx;             // (in, ld) input gradient; empty: not wanted
};

class LstmKernel : public Kernel {
 public:
  LstmKernel(const RecurrentSpec& spec, const KernelArgs& args) : args_(args) {
    n_ = args.batch;
    const bool image = args.input.size() == 3;
    channels_ = image ? args.input[0] : 1;
    t_ = image ? args.input[1] : args.input[0];
    features_ = image ? args.input[0] * args.input[2] : args.input[1];
    units_ = spec.units;
    return_sequences_ = spec.return_sequences;
    train_ = args.mode == Mode::kTrain;
    const int64_t H = units_, G = 4 * units_, rows = n_ * t_;
    // Row stride: the columns, rounded to 16 floats and to an odd number of 64-byte lines, so
    // that a step's rows do not all fall into a few cache sets.
    ld_ = (rows + 15) / 16 * 16;
    if ((ld_ / 16) % 2 == 0) ld_ += 16;
    zeros_ = AlignedBuffer(static_cast<size_t>(n_));  // a block is at most n_ columns wide
    const auto matrix = [&](int64_t height) {
      return AlignedBuffer(static_cast<size_t>(height * ld_));
    };
    layers_.resize(static_cast<size_t>(spec.layers));
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      L.in = l == 0 ? features_ : H;
      L.d = L.in + H + 1;
      const std::string s = absl::StrCat("_l", l);
      L.w_ih = args.value("weight_ih" + s);
      L.w_hh = args.value("weight_hh" + s);
      L.b_ih = args.value("bias_ih" + s);
      L.b_hh = args.value("bias_hh" + s);
      L.peep = spec.peephole ? args.value("weight_peephole" + s) : nullptr;
      L.w_packed = AlignedBuffer(static_cast<size_t>(Panels(G) * kPanel * L.d));
      L.xh = matrix(L.d);
      std::fill(L.xh.data() + (L.in + H) * ld_, L.xh.data() + (L.in + H) * ld_ + rows, 1.0f);
      L.gates = matrix(G);
      L.cells = matrix(H);
      L.h = matrix(H);
      L.keep_h = l + 1 < static_cast<size_t>(spec.layers) || return_sequences_;
      if (!train_) continue;
      L.dw_ih = args.grad("weight_ih" + s);
      L.dw_hh = args.grad("weight_hh" + s);
      L.db_ih = args.grad("bias_ih" + s);
      L.db_hh = args.grad("bias_hh" + s);
      L.dpeep = spec.peephole ? args.grad("weight_peephole" + s) : nullptr;
      L.w_hh_t_packed = AlignedBuffer(static_cast<size_t>(Panels(H) * kPanel * G));
      L.dw = AlignedBuffer(static_cast<size_t>(G * L.d));
      L.dh_rec = AlignedBuffer(static_cast<size_t>(n_ * H));
      L.dc = AlignedBuffer(static_cast<size_t>(n_ * H));
      if (spec.peephole) L.dpeep_part = AlignedBuffer(static_cast<size_t>(n_ * 3 * H));
      // Layer l's input gradient is layer l − 1's dh; layer 0's goes to diff_src if bound.
      if (l > 0 || args.diff_src != nullptr) L.dx = matrix(L.in);
    }
    if (!train_) return;
    for (size_t l = 0; l + 1 < layers_.size(); ++l) {
      layers_[l].dh = layers_[l + 1].dx.data();
      layers_[l].dh_every_step = true;
    }
    top_dh_ = matrix(H);
    layers_.back().dh = top_dh_.data();
    layers_.back().dh_every_step = return_sequences_;
  }

  absl::Status Forward(int64_t /*step*/) override {
    // The blocks are fixed here for the step; Backward uses the same.
    blocks_ = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), n_));
    for (size_t l = 0; l < layers_.size(); ++l) ForwardLayer(l);
    forward_state_ = true;
    // The output from the top layer's h.
    const Layer& top = layers_.back();
    const int64_t H = units_;
    for (int64_t n = 0; n < n_; ++n) {
      for (int64_t t = return_sequences_ ? 0 : t_ - 1; t < t_; ++t) {
        float* out = args_.dst + (return_sequences_ ? (n * t_ + t) * H : n * H);
        const int64_t col = Column(n, t);
        for (int64_t j = 0; j < H; ++j) out[j] = top.h.data()[j * ld_ + col];
      }
    }
    return absl::OkStatus();
  }

  absl::Status Backward() override {
    // Backward turns the gate activations into their gradients; a second Backward after one
    // Forward (which the Kernel interface allows) first runs that Forward again.
    if (!forward_state_) RETURN_IF_ERROR(Forward(0));
    forward_state_ = false;
    // The top layer's dh from diff_dst: every step, or the last.
    const int64_t H = units_;
    for (int64_t n = 0; n < n_; ++n) {
      for (int64_t t = return_sequences_ ? 0 : t_ - 1; t < t_; ++t) {
        const float* in = args_.diff_dst + (return_sequences_ ? (n * t_ + t) * H : n * H);
        const int64_t col = Column(n, t);
        for (int64_t j = 0; j < H; ++j) top_dh_.data()[j * ld_ + col] = in[j];
      }
    }
    for (size_t l = layers_.size(); l-- > 0;) BackwardLayer(layers_[l]);
    const Layer& bottom = layers_.front();
    if (args_.diff_src != nullptr) {
      for (int64_t n = 0; n < n_; ++n) {
        for (int64_t t = 0; t < t_; ++t) {
          const int64_t col = Column(n, t);
          for (int64_t f = 0; f < features_; ++f) {
            args_.diff_src[InputIndex(n, t, f)] = bottom.dx.data()[f * ld_ + col];
          }
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  // First sample of block k.
  int64_t BlockBegin(int k) const { return n_ * k / blocks_; }

  // The column of sample n at step t.
  int64_t Column(int64_t n, int64_t t) const {
    // The block holding n: the last k with BlockBegin(k) ≤ n.
    int k = static_cast<int>((n + 1) * blocks_ / n_);
    while (BlockBegin(k) > n) --k;
    const int64_t begin = BlockBegin(k), width = BlockBegin(k + 1) - begin;
    return begin * t_ + t * width + (n - begin);
  }

  // Where feature f of sample n at step t is in src and diff_src: (N, T, F) sequences, or
  // (N, C, T, W) images read row by row with F = C·W.
  int64_t InputIndex(int64_t n, int64_t t, int64_t f) const {
    if (channels_ == 1) return (n * t_ + t) * features_ + f;
    const int64_t w = features_ / channels_;
    return ((n * channels_ + f / w) * t_ + t) * w + f % w;
  }

  void ForwardLayer(size_t l) {
    Layer& L = layers_[l];
    const int64_t H = units_, G = 4 * units_, T = t_, D = L.d, ld = ld_;
    const auto w_at = [&L, H](int64_t g, int64_t q) {
      if (q < L.in) return L.w_ih[g * L.in + q];
      if (q < L.in + H) return L.w_hh[g * H + q - L.in];
      return L.b_ih[g] + L.b_hh[g];
    };
    float* xh = L.xh.data();
#pragma omp parallel num_threads(blocks_)
    {
#pragma omp for schedule(static)
      for (int64_t p = 0; p < Panels(G); ++p) PackPanel(p, G, D, w_at, L.w_packed.data());
      for (int k = omp_get_thread_num(); k < blocks_; k += omp_get_num_threads()) {
        const int64_t begin = BlockBegin(k), width = BlockBegin(k + 1) - begin;
        const int64_t first = begin * T, cols = width * T;
        // The block's x rows: the input's features, or the h rows of the layer below.
        if (l == 0) {
          for (int64_t n = begin; n < begin + width; ++n) {
            for (int64_t t = 0; t < T; ++t) {
              const int64_t col = first + t * width + (n - begin);
              for (int64_t f = 0; f < L.in; ++f) xh[f * ld + col] = args_.src[InputIndex(n, t, f)];
            }
          }
        } else {
          const float* below = layers_[l - 1].h.data();
          for (int64_t f = 0; f < L.in; ++f) {
            std::copy(below + f * ld + first, below + f * ld + first + cols, xh + f * ld + first);
          }
        }
        // h one step before t = 0 is zero.
        for (int64_t j = 0; j < H; ++j) {
          std::fill(xh + (L.in + j) * ld + first, xh + (L.in + j) * ld + first + width, 0.0f);
        }
        for (int64_t t = 0; t < T; ++t) {
          const int64_t col = first + t * width;
          PackedGemm(G, width, D, L.w_packed.data(), xh + col, ld, L.gates.data() + col, ld);
          ForwardCell(L.peep != nullptr, H, width, ld, t + 1 < T ? width : 0, L.peep,
                      t > 0 ? L.cells.data() + col - width : zeros_.data(), t > 0 ? ld : 0,
                      L.gates.data() + col, L.cells.data() + col,
                      L.keep_h || t + 1 == T ? L.h.data() + col : nullptr,
                      t + 1 < T ? xh + L.in * ld + col + width : nullptr);
        }
      }
    }
  }

  void BackwardLayer(Layer& L) {
    const int64_t H = units_, G = 4 * units_, T = t_, D = L.d, ld = ld_;
    const auto w_hh_t_at = [&L, H](int64_t j, int64_t g) { return L.w_hh[g * H + j]; };
#pragma omp parallel num_threads(blocks_)
    {
#pragma omp for schedule(static)
      for (int64_t p = 0; p < Panels(H); ++p) {
        PackPanel(p, H, G, w_hh_t_at, L.w_hh_t_packed.data());
      }
      for (int k = omp_get_thread_num(); k < blocks_; k += omp_get_num_threads()) {
        const int64_t begin = BlockBegin(k), width = BlockBegin(k + 1) - begin;
        const int64_t first = begin * T;
        float* dh_rec = L.dh_rec.data() + begin * H;
        float* dc = L.dc.data() + begin * H;
        float* dpeep = L.peep != nullptr ? L.dpeep_part.data() + begin * 3 * H : nullptr;
        std::fill(dh_rec, dh_rec + width * H, 0.0f);
        std::fill(dc, dc + width * H, 0.0f);
        if (dpeep != nullptr) std::fill(dpeep, dpeep + width * 3 * H, 0.0f);
        for (int64_t t = T - 1; t >= 0; --t) {
          const int64_t col = first + t * width;
          const bool dh_here = L.dh_every_step || t == T - 1;
          BackwardCell(L.peep != nullptr, H, width, ld, t > 0 ? -width : 0, L.peep,
                       L.gates.data() + col, L.cells.data() + col,
                       t > 0 ? L.cells.data() + col - width : zeros_.data(), t > 0 ? ld : 0,
                       dh_here ? L.dh + col : zeros_.data(), dh_here ? ld : 0, dh_rec, dc, dpeep);
          if (t > 0) {
            PackedGemm(H, width, G, L.w_hh_t_packed.data(), L.gates.data() + col, ld, dh_rec,
                       width);
          }
        }
      }
    }
    // The parts that are not sequential, on every thread: [dW_ih | dW_hh | db] = dG · xhᵀ in
    // one product, then copied into the gradients; dx = W_ihᵀ · dG.
    const int64_t rows = n_ * T;
    const float* dw = L.dw.data();
    Gemm('N', 'T', G, D, rows, L.gates.data(), ld, L.xh.data(), ld, L.dw.data(), D);
#pragma omp parallel for num_threads(blocks_) schedule(static)
    for (int64_t g = 0; g < G; ++g) {
      std::copy(dw + g * D, dw + g * D + L.in, L.dw_ih + g * L.in);
      std::copy(dw + g * D + L.in, dw + g * D + L.in + H, L.dw_hh + g * H);
      L.db_ih[g] = L.db_hh[g] = dw[g * D + L.in + H];
    }
    if (L.dx.size() > 0) {
      Gemm('T', 'N', L.in, rows, G, L.w_ih, L.in, L.gates.data(), ld, L.dx.data(), ld);
    }
    if (L.dpeep != nullptr) {
      // Each block's columns, then the blocks, in order: the same sum for any team of threads.
      std::fill(L.dpeep, L.dpeep + 3 * H, 0.0f);
      for (int k = 0; k < blocks_; ++k) {
        const int64_t begin = BlockBegin(k), width = BlockBegin(k + 1) - begin;
        const float* part = L.dpeep_part.data() + begin * 3 * H;
        for (int64_t r = 0; r < 3 * H; ++r) {
          float sum = 0.0f;
          for (int64_t n = 0; n < width; ++n) sum += part[r * width + n];
          L.dpeep[r] += sum;
        }
      }
    }
  }

  KernelArgs args_;
  int64_t n_ = 0, t_ = 0, features_ = 0, units_ = 0, channels_ = 1, ld_ = 0;
  int blocks_ = 1;
  bool forward_state_ = false;  // the gate activations of the last Forward are still there
  bool return_sequences_ = false, train_ = false;
  AlignedBuffer zeros_;   // a row of zeros: c before t = 0, dh where none arrives
  AlignedBuffer top_dh_;  // (H, ld): the top layer's dh, from diff_dst
  std::vector<Layer> layers_;
};

}  // namespace

bool LstmRuns(const RecurrentSpec& spec) {
  return spec.cell == RecurrentCell::kLstm && !spec.bidirectional;
}

absl::StatusOr<std::unique_ptr<Kernel>> MakeLstm(const RecurrentSpec& spec,
                                                 const KernelArgs& args) {
  if (!LstmRuns(spec)) {
    return absl::InternalError("lstm kernel: only unidirectional lstm layers run here");
  }
  for (int l = 0; l < spec.layers; ++l) {
    const std::string s = absl::StrCat("_l", l);
    for (const char* name : {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}) {
      if (args.value(name + s) == nullptr) {
        return absl::InternalError(absl::StrCat("lstm layer: no parameter ", name, s));
      }
    }
  }
  if (args.input.size() != 2 && args.input.size() != 3) {
    return absl::InternalError("lstm layer: input is neither (T, F) nor (C, H, W)");
  }
  return std::unique_ptr<Kernel>(std::make_unique<LstmKernel>(spec, args));
}

}  // namespace cajal::onednn
