// The lstm layer of our own, for unidirectional stacks (with or without peepholes), on
// dnnl_sgemm and vectorized loops. Bidirectional lstms, rnns and grus run on oneDNN's RNN
// primitives (rnn.cc); the two paths compute the same function (tests/unit/lstm_kernel_test.cc).
//
// Why: oneDNN 2.6's LSTM primitive is a reference implementation on AVX2 machines and gains
// little from a second thread. Here the threads never wait on each other inside the
// recurrence: the batch is cut into one contiguous block of samples per thread, and each thread
// runs the whole recurrence (forward, then backward) of its block with single-threaded GEMMs.
// The weight gradients and the input gradient, which are not sequential, run afterwards as
// GEMMs over all N·T rows on every thread.
//
// Per layer, with x (N, T, in), h (N, T, H), everything row-major and batch-major, the input,
// the previous output and a constant 1 side by side in xh[:, t] = [x[:, t], h[:, t−1], 1]
// (width D = in + H + 1) and the weights beside each other in W = [W_ih | W_hh | b_ih + b_hh]:
//   forward   per t:  G = xh[:, t] · Wᵀ                        (per block: one GEMM per step)
//                     i = σ(G_i + p_i ⊙ c_{t−1})   f = σ(G_f + p_f ⊙ c_{t−1})   g = tanh(G_g)
//                     c_t = f ⊙ c_{t−1} + i ⊙ g    o = σ(G_o + p_o ⊙ c_t)      h_t = o ⊙ tanh(c_t)
//   backward  per t, from T−1: dh = dh_out[:, t] + dG[:, t+1] · W_hh, then the gate gradients
//             dG[:, t]; afterwards [dW_ih | dW_hh | db]ᵀ = xhᵀ · dG and dx = dG · W_ih.
// Gates i, f, g, o are in PyTorch's order and layout (the ParamStore's); db_ih = db_hh = db.
// Peepholes (3, H) rows i, f, o, as oneDNN defines them (o sees c_t); the cells are compiled
// with and without them. The states start at zero.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "core/backend/onednn/kernels.h"
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

// One sample's step: pre-activations g (4H) in, gate activations out; the cell c, tanh(c) and
// h written. peep (3H; read only with kPeephole), c_prev (H; zeros at t = 0).
template <bool kPeephole>
__attribute__((always_inline)) inline void ForwardCellBody(
    int64_t units, const float* __restrict peep, const float* __restrict c_prev,
    float* __restrict g, float* __restrict c, float* __restrict tc, float* __restrict h) {
  float* __restrict gi = g;
  float* __restrict gf = g + units;
  float* __restrict gg = g + 2 * units;
  float* __restrict go = g + 3 * units;
  for (int64_t j = 0; j < units; ++j) {
    const float cp = c_prev[j];
    const float ai = kPeephole ? gi[j] + peep[j] * cp : gi[j];
    const float af = kPeephole ? gf[j] + peep[units + j] * cp : gf[j];
    // σ(a) = 1 / (1 + e^{−a}) and tanh(a) = (e^{2a} − 1) / (e^{2a} + 1): i, f and g share one
    // division, o and tanh(c) another (1/x = y·z / (x·y·z)); divisions are the loop's slowest
    // instructions.
    const float pi = 1.0f + Exp(-Clamp(ai, kSigmoidBound));
    const float pf = 1.0f + Exp(-Clamp(af, kSigmoidBound));
    const float eg = Exp(2.0f * Clamp(gg[j], kTanhBound));
    const float pg = eg + 1.0f;
    const float r = 1.0f / (pi * pf * pg);
    const float i = pf * pg * r;
    const float f = pi * pg * r;
    const float cand = (eg - 1.0f) * pi * pf * r;
    const float cell = f * cp + i * cand;
    const float ao = kPeephole ? go[j] + peep[2 * units + j] * cell : go[j];
    const float po = 1.0f + Exp(-Clamp(ao, kSigmoidBound));
    const float ec = Exp(2.0f * Clamp(cell, kTanhBound));
    const float pc = ec + 1.0f;
    const float s = 1.0f / (po * pc);
    const float o = pc * s;
    const float t = (ec - 1.0f) * po * s;
    gi[j] = i;
    gf[j] = f;
    gg[j] = cand;
    go[j] = o;
    c[j] = cell;
    tc[j] = t;
    h[j] = o * t;
  }
}

// One sample's step backward. dh_out: the gradient arriving from above (zeros when none),
// dh_rec: from step t + 1 through W_hh. dc: in, the cell gradient from t + 1; out, the one for
// t − 1. Writes the pre-activation gradients dg (4H); with kPeephole adds the peephole
// gradients to dpeep (3H).
template <bool kPeephole>
__attribute__((always_inline)) inline void BackwardCellBody(
    int64_t units, const float* __restrict peep, const float* __restrict g,
    const float* __restrict c, const float* __restrict tc, const float* __restrict c_prev,
    const float* __restrict dh_out, const float* __restrict dh_rec, float* __restrict dc,
    float* __restrict dg, float* __restrict dpeep) {
  for (int64_t j = 0; j < units; ++j) {
    const float i = g[j], f = g[units + j], cand = g[2 * units + j], o = g[3 * units + j];
    const float cp = c_prev[j], t = tc[j];
    const float dh = dh_out[j] + dh_rec[j];
    const float d_o = dh * t * o * (1.0f - o);
    float dcell = dh * o * (1.0f - t * t) + dc[j];
    if (kPeephole) dcell += d_o * peep[2 * units + j];
    const float d_i = dcell * cand * i * (1.0f - i);
    const float d_f = dcell * cp * f * (1.0f - f);
    const float d_g = dcell * i * (1.0f - cand * cand);
    dc[j] = kPeephole ? dcell * f + d_i * peep[j] + d_f * peep[units + j] : dcell * f;
    dg[j] = d_i;
    dg[units + j] = d_f;
    dg[2 * units + j] = d_g;
    dg[3 * units + j] = d_o;
    if (kPeephole) {
      dpeep[j] += d_i * cp;
      dpeep[units + j] += d_f * cp;
      dpeep[2 * units + j] += d_o * c[j];
    }
  }
}

// The cells compiled for each instruction set, with and without peepholes.
CAJAL_CLONES void ForwardCell(bool peephole, int64_t units, const float* peep, const float* c_prev,
                              float* g, float* c, float* tc, float* h) {
  if (peephole) {
    ForwardCellBody<true>(units, peep, c_prev, g, c, tc, h);
  } else {
    ForwardCellBody<false>(units, peep, c_prev, g, c, tc, h);
  }
}

CAJAL_CLONES void BackwardCell(bool peephole, int64_t units, const float* peep, const float* g,
                               const float* c, const float* tc, const float* c_prev,
                               const float* dh_out, const float* dh_rec, float* dc, float* dg,
                               float* dpeep) {
  if (peephole) {
    BackwardCellBody<true>(units, peep, g, c, tc, c_prev, dh_out, dh_rec, dc, dg, dpeep);
  } else {
    BackwardCellBody<false>(units, peep, g, c, tc, c_prev, dh_out, dh_rec, dc, dg, dpeep);
  }
}

// Row-major C = op(A) · op(B) (+ C when beta = 1), single- or multi-threaded as the caller's
// OpenMP context allows (dnnl_sgemm runs on one thread inside a parallel region).
void Gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

struct Layer {
  int64_t in = 0;
  int64_t d = 0;                                  // width of xh and W: in + H + 1, padded
  const float* x = nullptr;                       // (N, T, in)
  const float *w_ih, *w_hh, *b_ih, *b_hh, *peep;  // peep null without peepholes
  float *dw_ih, *dw_hh, *db_ih, *db_hh, *dpeep;   // dpeep null without peepholes
  AlignedBuffer w;                         // (4H, D): [W_ih | W_hh | b_ih + b_hh], D = in + H + 1
  AlignedBuffer gates, cells, tanh_cells;  // (N, T, 4H), (N, T, H), (N, T, H)
  AlignedBuffer xh;                        // (N, T, D): xh[:, t] = [x[:, t], h[:, t − 1], 1]
  float* h = nullptr;                      // (N, T, H)
  AlignedBuffer own_h;
  // Training only.
  AlignedBuffer dgates;            // (N, T, 4H)
  AlignedBuffer dw_t;              // (D, 4H)
  AlignedBuffer dh_rec;            // (N, H)
  AlignedBuffer dc;                // (N, H)
  AlignedBuffer dpeep_part;        // (blocks, 3H); peepholes only
  const float* dh_seq = nullptr;   // (N, T, H) gradient of h, or
  const float* dh_last = nullptr;  // (N, H) gradient of h[:, T − 1] only
  float* dx = nullptr;             // (N, T, in) input gradient; null: not wanted
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
    zeros_ = AlignedBuffer(static_cast<size_t>(units_));
    const int64_t rows = n_ * t_;
    const float* x = args.src;
    if (channels_ > 1) {
      transposed_ = AlignedBuffer(static_cast<size_t>(rows * features_));
      x = transposed_.data();
      if (train_ && args.diff_src != nullptr) {
        transposed_diff_ = AlignedBuffer(static_cast<size_t>(rows * features_));
      }
    }
    const size_t per_layer = spec.peephole ? 5 : 4;
    layers_.resize(static_cast<size_t>(spec.layers));
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      const bool top = l + 1 == layers_.size();
      L.in = l == 0 ? features_ : units_;
      L.x = l == 0 ? x : layers_[l - 1].h;
      const size_t base = l * per_layer;
      L.w_ih = args.params[base];
      L.w_hh = args.params[base + 1];
      L.b_ih = args.params[base + 2];
      L.b_hh = args.params[base + 3];
      L.peep = spec.peephole ? args.params[base + 4] : nullptr;
      // Rows of xh and W padded to 16 floats (a cache line): dnnl_sgemm runs faster on them.
      const int64_t d = (L.in + units_ + 1 + 15) / 16 * 16;
      L.d = d;
      L.w = AlignedBuffer(static_cast<size_t>(4 * units_ * d));
      L.gates = AlignedBuffer(static_cast<size_t>(rows * 4 * units_));
      L.cells = AlignedBuffer(static_cast<size_t>(rows * units_));
      L.tanh_cells = AlignedBuffer(static_cast<size_t>(rows * units_));
      L.xh = AlignedBuffer(static_cast<size_t>(rows * d));  // zeros: h at t = −1
      for (int64_t r = 0; r < rows; ++r) L.xh.data()[r * d + L.in + units_] = 1.0f;
      if (top && return_sequences_) {
        L.h = args.dst;
      } else {
        L.own_h = AlignedBuffer(static_cast<size_t>(rows * units_));
        L.h = L.own_h.data();
      }
      if (!train_) continue;
      L.dw_ih = args.grads[base];
      L.dw_hh = args.grads[base + 1];
      L.db_ih = args.grads[base + 2];
      L.db_hh = args.grads[base + 3];
      L.dpeep = spec.peephole ? args.grads[base + 4] : nullptr;
      L.dgates = AlignedBuffer(static_cast<size_t>(rows * 4 * units_));
      L.dw_t = AlignedBuffer(static_cast<size_t>(d * 4 * units_));
      L.dh_rec = AlignedBuffer(static_cast<size_t>(n_ * units_));
      L.dc = AlignedBuffer(static_cast<size_t>(n_ * units_));
      if (spec.peephole) L.dpeep_part = AlignedBuffer(static_cast<size_t>(n_ * 3 * units_));
    }
    if (!train_) return;
    // Gradients flowing down: the top layer's from the caller, layer l − 1's from layer l.
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      if (l + 1 == layers_.size()) {
        (return_sequences_ ? L.dh_seq : L.dh_last) = args.diff_dst;
      } else {
        below_grads_.emplace_back(static_cast<size_t>(rows * units_));
        L.dh_seq = below_grads_.back().data();
        layers_[l + 1].dx = below_grads_.back().data();
      }
    }
    layers_[0].dx = channels_ > 1 ? transposed_diff_.data() : args.diff_src;
    if (args.diff_src == nullptr) layers_[0].dx = nullptr;
  }

  void Forward(int64_t /*step*/) override {
    if (channels_ > 1) Transpose(args_.src, transposed_.data(), /*to_rows=*/true);
    for (Layer& L : layers_) ForwardLayer(L);
    if (!return_sequences_) {
      const Layer& top = layers_.back();
      for (int64_t n = 0; n < n_; ++n) {
        std::memcpy(args_.dst + n * units_, top.h + (n * t_ + t_ - 1) * units_,
                    sizeof(float) * units_);
      }
    }
  }

  void Backward() override {
    for (size_t l = layers_.size(); l-- > 0;) BackwardLayer(layers_[l]);
    if (channels_ > 1 && args_.diff_src != nullptr) {
      Transpose(transposed_diff_.data(), args_.diff_src, /*to_rows=*/false);
    }
  }

 private:
  // Image (N, C, H, W) <-> rows (N, H, C·W).
  void Transpose(const float* from, float* to, bool to_rows) const {
    const int64_t w = features_ / channels_;
    for (int64_t n = 0; n < n_; ++n) {
      for (int64_t c = 0; c < channels_; ++c) {
        for (int64_t r = 0; r < t_; ++r) {
          const int64_t image = ((n * channels_ + c) * t_ + r) * w;
          const int64_t rows = (n * t_ + r) * features_ + c * w;
          if (to_rows) {
            std::memcpy(to + rows, from + image, sizeof(float) * w);
          } else {
            std::memcpy(to + image, from + rows, sizeof(float) * w);
          }
        }
      }
    }
  }

  // Samples [begin, end) of block k of `blocks`.
  int64_t BlockBegin(int k, int blocks) const { return n_ * k / blocks; }

  // One block of samples per thread; the peephole partial sums are sized for n_ blocks.
  int Blocks() const { return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), n_)); }

  void ForwardLayer(Layer& L) {
    const int64_t H = units_, G = 4 * units_, T = t_, D = L.d;
    // W = [W_ih | W_hh | b_ih + b_hh]
    float* w = L.w.data();
    for (int64_t g = 0; g < G; ++g) {
      std::copy(L.w_ih + g * L.in, L.w_ih + (g + 1) * L.in, w + g * D);
      std::copy(L.w_hh + g * H, L.w_hh + (g + 1) * H, w + g * D + L.in);
      w[g * D + L.in + H] = L.b_ih[g] + L.b_hh[g];
    }
    const int blocks = Blocks();
#pragma omp parallel num_threads(blocks)
    {
      const int team = omp_get_num_threads(), k = omp_get_thread_num();
      const int64_t begin = BlockBegin(k, team), end = BlockBegin(k + 1, team);
      float* xh = L.xh.data();
      for (int64_t row = begin * T; row < end * T; ++row) {
        std::copy(L.x + row * L.in, L.x + (row + 1) * L.in, xh + row * D);
      }
      for (int64_t t = 0; t < T && end > begin; ++t) {
        Gemm('N', 'T', end - begin, G, D, xh + (begin * T + t) * D, T * D, w, D, 0.0f,
             L.gates.data() + (begin * T + t) * G, T * G);
        for (int64_t n = begin; n < end; ++n) {
          const int64_t row = n * T + t;
          float* h = L.h + row * H;
          ForwardCell(
              L.peep != nullptr, H, L.peep, t > 0 ? L.cells.data() + (row - 1) * H : zeros_.data(),
              L.gates.data() + row * G, L.cells.data() + row * H, L.tanh_cells.data() + row * H, h);
          if (t + 1 < T) std::copy(h, h + H, xh + (row + 1) * D + L.in);
        }
      }
    }
  }

  void BackwardLayer(Layer& L) {
    const int64_t H = units_, G = 4 * units_, T = t_, D = L.d;
    const float* w = L.w.data();
    const int blocks = Blocks();
    // One partial peephole gradient per block, summed in block order afterwards.
    if (L.peep != nullptr) L.dpeep_part.Zero();
#pragma omp parallel num_threads(blocks)
    {
      const int team = omp_get_num_threads(), k = omp_get_thread_num();
      const int64_t begin = BlockBegin(k, team), end = BlockBegin(k + 1, team);
      float* dpeep = L.peep != nullptr ? L.dpeep_part.data() + k * 3 * H : nullptr;
      std::fill(L.dh_rec.data() + begin * H, L.dh_rec.data() + end * H, 0.0f);
      std::fill(L.dc.data() + begin * H, L.dc.data() + end * H, 0.0f);
      for (int64_t t = T - 1; t >= 0; --t) {
        for (int64_t n = begin; n < end; ++n) {
          const int64_t row = n * T + t;
          const float* dh_out = zeros_.data();
          if (L.dh_seq != nullptr) {
            dh_out = L.dh_seq + row * H;
          } else if (t == T - 1) {
            dh_out = L.dh_last + n * H;
          }
          BackwardCell(L.peep != nullptr, H, L.peep, L.gates.data() + row * G,
                       L.cells.data() + row * H, L.tanh_cells.data() + row * H,
                       t > 0 ? L.cells.data() + (row - 1) * H : zeros_.data(), dh_out,
                       L.dh_rec.data() + n * H, L.dc.data() + n * H, L.dgates.data() + row * G,
                       dpeep);
        }
        if (t > 0 && end > begin) {
          Gemm('N', 'N', end - begin, H, G, L.dgates.data() + (begin * T + t) * G, T * G, w + L.in,
               D, 0.0f, L.dh_rec.data() + begin * H, H);
        }
      }
    }
    // The parts that are not sequential, on every thread. [dW_ih | dW_hh | db]ᵀ = xhᵀ · dG in one
    // product (the transposed one runs slower in dnnl_sgemm), then scattered into the gradients.
    const int64_t rows = n_ * T;
    float* dwt = L.dw_t.data();
    Gemm('T', 'N', D, G, rows, L.xh.data(), D, L.dgates.data(), G, 0.0f, dwt, G);
    for (int64_t i = 0; i < L.in; ++i) {
      for (int64_t g = 0; g < G; ++g) L.dw_ih[g * L.in + i] = dwt[i * G + g];
    }
    for (int64_t i = 0; i < H; ++i) {
      for (int64_t g = 0; g < G; ++g) L.dw_hh[g * H + i] = dwt[(L.in + i) * G + g];
    }
    const float* db = dwt + (L.in + H) * G;
    std::copy(db, db + G, L.db_ih);
    std::copy(db, db + G, L.db_hh);
    if (L.dx != nullptr) {
      Gemm('N', 'N', rows, L.in, G, L.dgates.data(), G, w, D, 0.0f, L.dx, L.in);
    }
    if (L.dpeep != nullptr) {
      std::fill(L.dpeep, L.dpeep + 3 * H, 0.0f);
      for (int k = 0; k < blocks; ++k) {
        const float* part = L.dpeep_part.data() + k * 3 * H;
        for (int64_t j = 0; j < 3 * H; ++j) L.dpeep[j] += part[j];
      }
    }
  }

  KernelArgs args_;
  int64_t n_ = 0, t_ = 0, features_ = 0, units_ = 0, channels_ = 1;
  bool return_sequences_ = false, train_ = false;
  AlignedBuffer zeros_;
  AlignedBuffer transposed_, transposed_diff_;
  std::vector<Layer> layers_;
  std::vector<AlignedBuffer> below_grads_;
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
  const size_t per_layer = spec.peephole ? 5 : 4;
  if (args.params.size() != per_layer * spec.layers) {
    return absl::InternalError("lstm layer: parameter count does not match its spec");
  }
  if (args.input.size() != 2 && args.input.size() != 3) {
    return absl::InternalError("lstm layer: input is neither (T, F) nor (C, H, W)");
  }
  return std::unique_ptr<Kernel>(std::make_unique<LstmKernel>(spec, args));
}

}  // namespace cajal::onednn
