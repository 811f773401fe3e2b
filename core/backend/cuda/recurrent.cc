// The device backend's recurrent layers (rnn tanh/relu, lstm with optional peepholes, gru;
// stacked, bidirectional): GEMMs for the products with the weights, recurrent_ops.h's cells
// for the rest, backpropagation through time written out step by step.
//
//   src (N, T, F) — or an image (N, C, H, W) read as T = H steps of C·W features —
//   -> layer 0 -> (T·N, D·H) -> ... -> layer L−1 -> dst: (N, T, D·H) with return_sequences,
//   else (N, D·H), the top layer's step T−1 (PyTorch's output[:, −1]).
// Parameters are PyTorch's by name and layout (layers.cc, DeclareRecurrentParams), used as
// they are: W_ih (G·H, in), W_hh (G·H, H), b_ih, b_hh (G·H), peephole (3, H).
//
// Per layer l and direction d (the reverse direction runs t = T−1 … 0), time-major:
//   G = X·W_ihᵀ + b_ih               one GEMM over all T·N rows
//   R = b_hh; per step: R_t += h_prev·W_hhᵀ, then the cell reads G_t, R_t, writes h_t, c_t
//   backward, per step in reverse: the cell gives dG_t, dR_t (dc, dh in place), then
//     dh_prev = dR_t·W_hh (+ the gru's z ⊙ dh);
//   then dW_ih = dGᵀ·X, db_ih = Σ dG, db_hh = Σ dR, dW_hh = Σ_t dR_tᵀ·h_prev(t) (one GEMM over
//   the steps that have a previous state), d peephole (PeepholeGradTerm), dX (+)= dG·W_ih.
// Saves for backward: the time-major input, every layer's output Y, and per layer and
// direction the activated gates G, R and the lstm's cell states C. All buffers are one
// allocation made when the kernel is built (Layout).
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/cuda/kernels.h"
#include "core/util/status_macros.h"

namespace cajal::device {
namespace {

CellKind CellOf(const RecurrentSpec& spec) {
  switch (spec.cell) {
    case RecurrentCell::kLstm:
      return CellKind::kLstm;
    case RecurrentCell::kGru:
      return CellKind::kGru;
    case RecurrentCell::kRnnRelu:
      return CellKind::kRnnRelu;
    default:
      return CellKind::kRnnTanh;
  }
}

struct Dims {
  int64_t n = 0, t = 0, c = 1, w = 0;  // batch, steps, input channels and width
  int64_t f0 = 0;                      // layer 0's features per step: c·w
  int64_t h = 0, gh = 0, dirs = 1, dh = 0;
  int layers = 1;
  CellKind cell = CellKind::kLstm;
  int64_t rows() const { return t * n; }
  int64_t in(int layer) const { return layer == 0 ? f0 : dh; }
};

Dims DimsOf(const RecurrentSpec& spec, const KernelArgs& a) {
  Dims d;
  d.n = a.batch;
  if (a.input.size() == 3) {
    d.c = a.input[0];
    d.t = a.input[1];
    d.w = a.input[2];
  } else {
    d.t = a.input[0];
    d.w = a.input[1];
  }
  d.f0 = d.c * d.w;
  d.cell = CellOf(spec);
  d.h = spec.units;
  d.gh = CellGates(d.cell) * d.h;
  d.dirs = spec.bidirectional ? 2 : 1;
  d.dh = d.dirs * d.h;
  d.layers = spec.layers;
  return d;
}

// Float offsets of every buffer in the kernel's one allocation.
struct Layout {
  int64_t x = 0;                 // (T·N, F0)
  std::vector<int64_t> y;        // per layer: (T·N, D·H)
  std::vector<int64_t> g, r, c;  // per layer·dirs + d: (T·N, G·H), (T·N, G·H), (T·N, H)
  int64_t dg = 0, dr = 0;        // training: (T·N, G·H); dr for the gru only
  int64_t da = 0, db = 0;        // training: (T·N, max(F0, D·H)), ping-pong
  int64_t dh = 0, dc = 0;        // training: (N, H)
  int64_t total = 0;
};

Layout LayoutOf(const Dims& d, bool train) {
  Layout l;
  int64_t at = 0;
  auto take = [&at](int64_t floats) {
    const int64_t here = at;
    at += (floats + 15) / 16 * 16;  // 64-byte aligned
    return here;
  };
  const int64_t rows = d.rows();
  l.x = take(rows * d.f0);
  for (int k = 0; k < d.layers; ++k) {
    l.y.push_back(take(rows * d.dh));
    for (int64_t dir = 0; dir < d.dirs; ++dir) {
      l.g.push_back(take(rows * d.gh));
      l.r.push_back(take(rows * d.gh));
      l.c.push_back(d.cell == CellKind::kLstm ? take(rows * d.h) : 0);
    }
  }
  if (train) {
    l.dg = take(rows * d.gh);
    l.dr = d.cell == CellKind::kGru ? take(rows * d.gh) : l.dg;
    const int64_t wide = d.f0 > d.dh ? d.f0 : d.dh;
    l.da = take(rows * wide);
    l.db = take(rows * wide);
    l.dh = take(d.n * d.h);
    l.dc = take(d.n * d.h);
  }
  l.total = at;
  return l;
}

// One layer's and direction's parameters and their gradients.
struct DirParams {
  const float *w_ih = nullptr, *w_hh = nullptr, *b_ih = nullptr, *b_hh = nullptr;
  const float* peephole = nullptr;
  float *dw_ih = nullptr, *dw_hh = nullptr, *db_ih = nullptr, *db_hh = nullptr;
  float* dpeephole = nullptr;
};

class RecurrentKernel : public Kernel {
 public:
  RecurrentKernel(DeviceOps* ops, const RecurrentSpec& spec, const KernelArgs& args)
      : ops_(ops),
        spec_(spec),
        a_(args),
        d_(DimsOf(spec, args)),
        l_(LayoutOf(d_, args.mode == Mode::kTrain)) {}

  absl::Status Init() {
    for (int k = 0; k < d_.layers; ++k) {
      for (int64_t dir = 0; dir < d_.dirs; ++dir) {
        const std::string s = absl::StrCat("_l", k, dir == 1 ? "_reverse" : "");
        DirParams p;
        p.w_ih = a_.value("weight_ih" + s), p.dw_ih = a_.grad("weight_ih" + s);
        p.w_hh = a_.value("weight_hh" + s), p.dw_hh = a_.grad("weight_hh" + s);
        p.b_ih = a_.value("bias_ih" + s), p.db_ih = a_.grad("bias_ih" + s);
        p.b_hh = a_.value("bias_hh" + s), p.db_hh = a_.grad("bias_hh" + s);
        if (spec_.peephole) {
          p.peephole = a_.value("weight_peephole" + s);
          p.dpeephole = a_.grad("weight_peephole" + s);
          if (p.peephole == nullptr) {
            return absl::InternalError(absl::StrCat("no parameter weight_peephole", s));
          }
        }
        if (p.w_ih == nullptr || p.w_hh == nullptr || p.b_ih == nullptr || p.b_hh == nullptr) {
          return absl::InternalError(absl::StrCat("the weights or biases", s, " are not bound"));
        }
        params_.push_back(p);
      }
    }
    ASSIGN_OR_RETURN(buffer_, ops_->Allocate(static_cast<size_t>(l_.total) * sizeof(float)));
    return absl::OkStatus();
  }

  absl::Status Forward(int64_t) override {
    RETURN_IF_ERROR(ops_->Run(SequenceLayoutOp{a_.src, at(l_.x), d_.n, d_.t, d_.c, d_.w, true},
                              d_.rows() * d_.f0));
    for (int k = 0; k < d_.layers; ++k) {
      for (int64_t dir = 0; dir < d_.dirs; ++dir) RETURN_IF_ERROR(ForwardDirection(k, dir));
    }
    const float* top = at(l_.y.back());
    if (spec_.return_sequences) {
      return ops_->Run(SequenceLayoutOp{top, a_.dst, d_.n, d_.t, 1, d_.dh, false},
                       d_.rows() * d_.dh);
    }
    return ops_->CopyOnDevice(a_.dst, top + (d_.t - 1) * d_.n * d_.dh,
                              static_cast<size_t>(d_.n * d_.dh) * sizeof(float));
  }

  absl::Status Backward() override {
    float* cur = at(l_.da);
    float* other = at(l_.db);
    const int64_t top = d_.rows() * d_.dh;
    if (spec_.return_sequences) {
      RETURN_IF_ERROR(
          ops_->Run(SequenceLayoutOp{a_.diff_dst, cur, d_.n, d_.t, 1, d_.dh, true}, top));
    } else {
      RETURN_IF_ERROR(ops_->Run(FillOp{cur, 0.0f}, top));
      RETURN_IF_ERROR(ops_->CopyOnDevice(cur + (d_.t - 1) * d_.n * d_.dh, a_.diff_dst,
                                         static_cast<size_t>(d_.n * d_.dh) * sizeof(float)));
    }
    for (int k = d_.layers - 1; k >= 0; --k) {
      float* dx = k > 0 || a_.diff_src != nullptr ? other : nullptr;
      for (int64_t dir = 0; dir < d_.dirs; ++dir) {
        RETURN_IF_ERROR(BackwardDirection(k, dir, cur, dx));
      }
      std::swap(cur, other);
    }
    if (a_.diff_src == nullptr) return absl::OkStatus();
    return ops_->Run(SequenceLayoutOp{cur, a_.diff_src, d_.n, d_.t, d_.c, d_.w, false},
                     d_.rows() * d_.f0);
  }

 private:
  float* at(int64_t offset) const { return buffer_.floats() + offset; }
  const float* input(int k) const { return k == 0 ? at(l_.x) : at(l_.y[k - 1]); }
  size_t slot(int k, int64_t dir) const { return static_cast<size_t>(k * d_.dirs + dir); }
  // The step processed s-th by direction dir.
  int64_t StepAt(int64_t s, int64_t dir) const { return dir == 0 ? s : d_.t - 1 - s; }

  absl::Status ForwardDirection(int k, int64_t dir) {
    const DirParams& p = params_[slot(k, dir)];
    const int64_t n = d_.n, h = d_.h, gh = d_.gh, dh = d_.dh, rows = d_.rows();
    float* g = at(l_.g[slot(k, dir)]);
    float* r = at(l_.r[slot(k, dir)]);
    float* c = at(l_.c[slot(k, dir)]);
    float* y = at(l_.y[k]) + dir * h;
    RETURN_IF_ERROR(ops_->Run(BiasOp{g, p.b_ih, gh, 1, /*add=*/false}, rows * gh));
    GemmArgs proj;  // G (T·N × G·H) += X · W_ihᵀ
    proj.trans_b = true;
    proj.m = rows, proj.n = gh, proj.k = d_.in(k);
    proj.a = input(k), proj.lda = d_.in(k);
    proj.b = p.w_ih, proj.ldb = d_.in(k);
    proj.beta = 1.0f;
    proj.c = g, proj.ldc = gh;
    RETURN_IF_ERROR(ops_->Gemm(proj));
    RETURN_IF_ERROR(ops_->Run(BiasOp{r, p.b_hh, gh, 1, /*add=*/false}, rows * gh));
    for (int64_t s = 0; s < d_.t; ++s) {
      const int64_t t = StepAt(s, dir);
      const int64_t tp = s > 0 ? StepAt(s - 1, dir) : -1;
      const float* h_prev = tp >= 0 ? y + tp * n * dh : nullptr;
      if (h_prev != nullptr) {
        GemmArgs rec;  // R_t (N × G·H) += h_prev · W_hhᵀ
        rec.trans_b = true;
        rec.m = n, rec.n = gh, rec.k = h;
        rec.a = h_prev, rec.lda = dh;
        rec.b = p.w_hh, rec.ldb = h;
        rec.beta = 1.0f;
        rec.c = r + t * n * gh, rec.ldc = gh;
        RETURN_IF_ERROR(ops_->Gemm(rec));
      }
      CellForwardOp cell;
      cell.cell = d_.cell;
      cell.units = h;
      cell.g = g + t * n * gh;
      cell.r = r + t * n * gh;
      cell.h_prev = h_prev;
      cell.h_out = y + t * n * dh;
      cell.ld_h = dh;
      if (d_.cell == CellKind::kLstm) {
        cell.c_prev = tp >= 0 ? c + tp * n * h : nullptr;
        cell.c_out = c + t * n * h;
        cell.peephole = p.peephole;
      }
      RETURN_IF_ERROR(ops_->Run(cell, n * h));
    }
    return absl::OkStatus();
  }

  // dy: the gradient of layer k's output (T·N, D·H); dx: where the gradient of its input goes
  // (accumulated over the directions), or null.
  absl::Status BackwardDirection(int k, int64_t dir, const float* dy, float* dx) {
    const DirParams& p = params_[slot(k, dir)];
    const int64_t n = d_.n, h = d_.h, gh = d_.gh, dh = d_.dh, rows = d_.rows(), in = d_.in(k);
    const bool gru = d_.cell == CellKind::kGru;
    const float* g = at(l_.g[slot(k, dir)]);
    const float* r = at(l_.r[slot(k, dir)]);
    const float* c = at(l_.c[slot(k, dir)]);
    const float* y = at(l_.y[k]) + dir * h;
    float* dg = at(l_.dg);
    float* dr = at(l_.dr);
    for (int64_t s = d_.t - 1; s >= 0; --s) {
      const int64_t t = StepAt(s, dir);
      const int64_t tp = s > 0 ? StepAt(s - 1, dir) : -1;
      CellBackwardOp cell;
      cell.cell = d_.cell;
      cell.units = h;
      cell.first = s == d_.t - 1;
      cell.g = g + t * n * gh;
      cell.r = r + t * n * gh;
      cell.h_prev = tp >= 0 ? y + tp * n * dh : nullptr;
      cell.ld_h = dh;
      if (d_.cell == CellKind::kLstm) {
        cell.c_prev = tp >= 0 ? c + tp * n * h : nullptr;
        cell.c = c + t * n * h;
        cell.peephole = p.peephole;
      }
      cell.dy = dy + t * n * dh + dir * h;
      cell.dh_rec = at(l_.dh);
      cell.dc = at(l_.dc);
      cell.dg = dg + t * n * gh;
      cell.dr = dr + t * n * gh;
      RETURN_IF_ERROR(ops_->Run(cell, n * h));
      if (s == 0) break;
      GemmArgs rec;  // dh_prev (N × H) (+)= dR_t · W_hh
      rec.m = n, rec.n = h, rec.k = gh;
      rec.a = dr + t * n * gh, rec.lda = gh;
      rec.b = p.w_hh, rec.ldb = h;
      rec.beta = gru ? 1.0f : 0.0f;
      rec.c = at(l_.dh), rec.ldc = h;
      RETURN_IF_ERROR(ops_->Gemm(rec));
    }
    RETURN_IF_ERROR(WeightGradients(k, dir, p));
    if (dx == nullptr) return absl::OkStatus();
    GemmArgs gx;  // dX (T·N × in) (+)= dG · W_ih
    gx.m = rows, gx.n = in, gx.k = gh;
    gx.a = dg, gx.lda = gh;
    gx.b = p.w_ih, gx.ldb = in;
    gx.beta = dir == 0 ? 0.0f : 1.0f;
    gx.c = dx, gx.ldc = in;
    return ops_->Gemm(gx);
  }

  absl::Status WeightGradients(int k, int64_t dir, const DirParams& p) {
    const int64_t n = d_.n, h = d_.h, gh = d_.gh, dh = d_.dh, rows = d_.rows(), in = d_.in(k);
    const float* dg = at(l_.dg);
    const float* dr = at(l_.dr);
    GemmArgs gw;  // dW_ih (G·H × in) = dGᵀ · X
    gw.trans_a = true;
    gw.m = gh, gw.n = in, gw.k = rows;
    gw.a = dg, gw.lda = gh;
    gw.b = input(k), gw.ldb = in;
    gw.c = p.dw_ih, gw.ldc = in;
    RETURN_IF_ERROR(ops_->Gemm(gw));
    RETURN_IF_ERROR(ops_->ChannelSum(ValueTerm{dg}, ReduceShape{rows, gh, 1}, 1.0f, p.db_ih));
    RETURN_IF_ERROR(ops_->ChannelSum(ValueTerm{dr}, ReduceShape{rows, gh, 1}, 1.0f, p.db_hh));
    if (d_.t == 1) {
      RETURN_IF_ERROR(ops_->Run(FillOp{p.dw_hh, 0.0f}, gh * h));
    } else {
      // The steps with a previous state pair with it: forward t ≥ 1 with t − 1, reverse
      // t ≤ T − 2 with t + 1; in time-major rows both are one contiguous block each.
      const float* y = at(l_.y[k]) + dir * h;
      GemmArgs gr;  // dW_hh (G·H × H) = Σ_t dR_tᵀ · h_prev(t)
      gr.trans_a = true;
      gr.m = gh, gr.n = h, gr.k = (d_.t - 1) * n;
      gr.a = dir == 0 ? dr + n * gh : dr, gr.lda = gh;
      gr.b = dir == 0 ? y : y + n * dh, gr.ldb = dh;
      gr.c = p.dw_hh, gr.ldc = h;
      RETURN_IF_ERROR(ops_->Gemm(gr));
    }
    if (p.peephole == nullptr) return absl::OkStatus();
    return ops_->ChannelSum(PeepholeGradTerm{dg, at(l_.c[slot(k, dir)]), n, d_.t, h, dir == 1},
                            ReduceShape{rows, 3 * h, 1}, 1.0f, p.dpeephole);
  }

  DeviceOps* ops_;
  RecurrentSpec spec_;
  KernelArgs a_;
  Dims d_;
  Layout l_;
  std::vector<DirParams> params_;  // per layer·dirs + direction
  DeviceBuffer buffer_;
};

}  // namespace

KernelOr MakeRecurrent(DeviceOps* ops, const RecurrentSpec& spec, const KernelArgs& args) {
  if (args.input.size() != 2 && args.input.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "needs a sequence (T, F) or an image (C, H, W), got ", ShapeToString(args.input)));
  }
  auto kernel = std::make_unique<RecurrentKernel>(ops, spec, args);
  RETURN_IF_ERROR(kernel->Init());
  return kernel;
}

int64_t RecurrentBytes(const RecurrentSpec& spec, const KernelArgs& args) {
  if (args.input.size() != 2 && args.input.size() != 3) return 0;
  return LayoutOf(DimsOf(spec, args), args.mode == Mode::kTrain).total *
         static_cast<int64_t>(sizeof(float));
}

}  // namespace cajal::device
