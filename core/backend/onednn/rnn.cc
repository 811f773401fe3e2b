// Recurrent layers (rnn, lstm, gru) on oneDNN's RNN primitives (unidirectional lstms run on
// lstm.cc's kernel instead); backpropagation through time
// runs inside the primitives (one forward_training call over all T steps, one backward call).
//
//   src (N, T, F) -> layer 0 -> (N, T, H·D) -> ... -> layer L−1 -> (N, T, H·D)   D = 2 if bidir.
//   return_sequences: dst is the top layer's (N, T, H·D); else dst (N, H·D) is its step T−1.
//   For a bidirectional layer that is PyTorch's output[:, -1]: the forward direction after the
//   whole sequence, and the reverse direction after reading x_{T−1} only.
// An image (N, C, H, W) is read as H steps of C·W features: (N, H, W) as it is when C = 1,
// through a reorder to (N, H, C, W) otherwise. Data tensors use oneDNN's `ntc` tag, which is
// the Network's row-major (N, T, F), so no copy runs for them.
//
// One primitive per stacked layer (L = 1 each), so every layer may have its own input width;
// their outputs and gradients are kernel-owned buffers. The initial states are zero (a zero
// memory::desc), and the final states are not produced.
//
// Parameters stay in the ParamStore in PyTorch's layout (layers.cc, DeclareRecurrentParams), and
// every step converts them:
//   weights (G·H, in) row-major is oneDNN's `ldgoi` for one layer and direction; reorders copy
//     it, gate run by gate run, into the forward primitive's weights (`any`, ldigo-like) and
//     the backward primitive's (`any`, ldgoi-like), and the diff weights back.
//   gate order: lstm i, f, g, o = oneDNN i, f, c̃, o; rnn has one gate; PyTorch's gru r, z, n
//     maps to oneDNN's lbr_gru u(=z), r, o(=n), so its first two gates swap.
//   bias: oneDNN has one per gate, b = b_ih + b_hh; lbr_gru has four "gates" u, r, o, u' with
//     B_u = b_iz + b_hz, B_r = b_ir + b_hr, B_o = b_in, B_u' = b_hn (PyTorch's
//     n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)) is oneDNN's linear-before-reset GRU).
//     Gradients: d b_ih = d b_hh = d B per gate, except the gru's n gate: d b_in = d B_o,
//     d b_hn = d B_u'.
//   peephole (3, H) rows i, f, o: oneDNN's ldgo peephole weights as they are.
// oneDNN's backward accumulates into its diff weights, so they are zeroed before each backward.
//
// Saves for backward: the workspace of every layer's forward_training call, its input and output.
#include <algorithm>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/onednn/kernels.h"
#include "core/backend/onednn/onednn_util.h"
#include "core/util/status_macros.h"

namespace cajal::onednn {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;

memory::desc Desc(const memory::dims& dims, Tag tag) {
  return memory::desc(dims, memory::data_type::f32, tag);
}

// oneDNN gates [first, first + count) hold PyTorch's gates [torch_first, torch_first + count).
struct GateRun {
  int first;
  int torch_first;
  int count;
};

struct Cell {
  RecurrentCell kind;
  int gates;       // in the weights
  int bias_gates;  // 4 for lbr_gru (u, r, o, u')
  std::vector<GateRun> runs;
};

Cell CellOf(RecurrentCell kind) {
  switch (kind) {
    case RecurrentCell::kLstm:
      return {kind, 4, 4, {{0, 0, 4}}};
    case RecurrentCell::kGru:
      return {kind, 3, 4, {{0, 1, 1}, {1, 0, 1}, {2, 2, 1}}};
    default:
      return {kind, 1, 1, {{0, 0, 1}}};
  }
}

// The PyTorch gate held by oneDNN gate g (g < cell.gates).
int TorchGate(const Cell& cell, int g) {
  for (const GateRun& r : cell.runs) {
    if (g >= r.first && g < r.first + r.count) return r.torch_first + g - r.first;
  }
  return g;
}

// One operation of a pass: a primitive, or a small host loop that runs after the stream drains.
using Op = std::function<void(dnnl::stream&)>;

Op Exec(Step step) {
  return
      [s = std::move(step)](dnnl::stream& stream) mutable { s.primitive.execute(stream, s.args); };
}

Op Host(std::function<void()> f) {
  return [f = std::move(f)](dnnl::stream& stream) {
    stream.wait();
    f();
  };
}

Op Reorder(const memory& from, const memory& to) {
  return Exec({dnnl::reorder(from, to), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}});
}

Op Zero(const memory& m) {
  return Host([m] { std::memset(m.get_data_handle(), 0, m.get_desc().get_size()); });
}

class RnnKernel : public Kernel {
 public:
  RnnKernel() : stream_(Engine()) {}
  absl::Status Forward(int64_t /*step*/) override { return Run(forward); }
  absl::Status Backward() override { return Run(backward); }

  std::vector<Op> forward;
  std::vector<Op> backward;
  std::vector<AlignedBuffer> buffers;  // zero-initialized host scratch

  float* Own(int64_t count) {
    buffers.emplace_back(static_cast<size_t>(count));
    return buffers.back().data();
  }

 private:
  absl::Status Run(std::vector<Op>& ops) {
    try {
      for (Op& op : ops) op(stream_);
      stream_.wait();
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN failed running a recurrent layer: ", e.what(),
                                              " (status ", e.status, ")"));
    }
    return absl::OkStatus();
  }
  dnnl::stream stream_;
};

// The forward (and, in training, backward) primitive descriptors of one layer.
struct LayerPds {
  dnnl::rnn_primitive_desc_base fwd;
  dnnl::rnn_primitive_desc_base bwd;
};

// Data, state and bias descriptors of one layer; weights are chosen by the primitive.
struct LayerDescs {
  memory::desc src, dst, bias, peephole;  // peephole: zero desc when unused
  memory::dims wl, wi;                    // weights dims {1, D, in, G, H} and {1, D, H, G, H}
};

LayerPds BuildPds(const Cell& cell, bool train, dnnl::rnn_direction dir, const LayerDescs& d) {
  const memory::desc none;
  const dnnl::prop_kind prop =
      train ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  // Training lets oneDNN pick (padded) weight layouts; inference asks for plain ldigo so no
  // packed format appears.
  const Tag fwd_tag = train ? Tag::any : Tag::ldigo;
  const memory::desc wl = Desc(d.wl, fwd_tag), wi = Desc(d.wi, fwd_tag);
  const memory::desc bwl = Desc(d.wl, Tag::any), bwi = Desc(d.wi, Tag::any);
  LayerPds pds;
  switch (cell.kind) {
    case RecurrentCell::kLstm: {
      const dnnl::lstm_forward::primitive_desc f(
          dnnl::lstm_forward::desc(prop, dir, d.src, none, none, wl, wi, d.peephole, none, d.bias,
                                   d.dst, none, none),
          Engine());
      pds.fwd = f;
      if (train) {
        pds.bwd = dnnl::lstm_backward::primitive_desc(
            dnnl::lstm_backward::desc(dnnl::prop_kind::backward, dir, d.src, none, none, bwl, bwi,
                                      d.peephole, none, d.bias, d.dst, none, none, d.src, none,
                                      none, bwl, bwi, d.peephole, none, d.bias, d.dst, none, none),
            Engine(), f);
      }
      break;
    }
    case RecurrentCell::kGru: {
      const dnnl::lbr_gru_forward::primitive_desc f(
          dnnl::lbr_gru_forward::desc(prop, dir, d.src, none, wl, wi, d.bias, d.dst, none),
          Engine());
      pds.fwd = f;
      if (train) {
        pds.bwd = dnnl::lbr_gru_backward::primitive_desc(
            dnnl::lbr_gru_backward::desc(dnnl::prop_kind::backward, dir, d.src, none, bwl, bwi,
                                         d.bias, d.dst, none, d.src, none, bwl, bwi, d.bias, d.dst,
                                         none),
            Engine(), f);
      }
      break;
    }
    default: {
      const dnnl::algorithm act = cell.kind == RecurrentCell::kRnnRelu
                                      ? dnnl::algorithm::eltwise_relu
                                      : dnnl::algorithm::eltwise_tanh;
      const dnnl::vanilla_rnn_forward::primitive_desc f(
          dnnl::vanilla_rnn_forward::desc(prop, act, dir, d.src, none, wl, wi, d.bias, d.dst, none),
          Engine());
      pds.fwd = f;
      if (train) {
        pds.bwd = dnnl::vanilla_rnn_backward::primitive_desc(
            dnnl::vanilla_rnn_backward::desc(dnnl::prop_kind::backward, act, dir, d.src, none, bwl,
                                             bwi, d.bias, d.dst, none, d.src, none, bwl, bwi,
                                             d.bias, d.dst, none),
            Engine(), f);
      }
      break;
    }
  }
  return pds;
}

// Weights of the primitive must be a plain strided layout, so that one direction and gate run
// is a sub-memory.
absl::Status CheckStrided(const memory::desc& md, const char* what) {
  if (md.data.format_kind != dnnl_blocked || md.data.format_desc.blocking.inner_nblks != 0) {
    return absl::InternalError(
        absl::StrCat("oneDNN chose a blocked layout for the recurrent ", what));
  }
  return absl::OkStatus();
}

// Copies one direction's PyTorch-layout matrix (G·H, in) at `param` into direction `dir` of the
// oneDNN weights `dnn` (dims {1, D, in, G, H}), or back when `to_param`, gate run by gate run.
void AddWeightReorders(const Cell& cell, const memory& dnn, float* param, int dir, bool to_param,
                       std::vector<Op>* ops) {
  const memory::dims dims = dnn.get_desc().dims();
  const memory::dim in = dims[2], h = dims[4];
  const memory::desc torch = Desc({1, 1, in, cell.gates, h}, Tag::ldgoi);
  for (const GateRun& r : cell.runs) {
    const memory t(torch.submemory_desc({1, 1, in, r.count, h}, {0, 0, 0, r.torch_first, 0}),
                   Engine(), param);
    const memory o(dnn.get_desc().submemory_desc({1, 1, in, r.count, h}, {0, dir, 0, r.first, 0}),
                   Engine(), dnn.get_data_handle());
    ops->push_back(to_param ? Reorder(o, t) : Reorder(t, o));
  }
}

// One direction's parameters (and gradients) in the ParamStore.
struct DirectionParams {
  float* w_ih;
  float* w_hh;
  float* b_ih;
  float* b_hh;
  float* peephole;  // null without peepholes
};

// The values (or gradients) of stacked layer l, direction dir, by their PyTorch names.
DirectionParams ParamsOf(const KernelArgs& args, int l, int dir, bool peephole, bool grads) {
  const std::string s = absl::StrCat("_l", l, dir == 1 ? "_reverse" : "");
  auto get = [&](const char* name) {
    return grads ? args.grad(absl::StrCat(name, s)) : args.value(absl::StrCat(name, s));
  };
  return {get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"),
          peephole ? get("weight_peephole") : nullptr};
}

// oneDNN's per-gate bias from PyTorch's two biases, and the peepholes, for every direction:
// bias (D, bias_gates, H), peephole (D, 3, H) or null.
void FoldBiases(const Cell& cell, int64_t h, const std::vector<DirectionParams>& values,
                float* bias, float* peephole) {
  const bool lbr = cell.kind == RecurrentCell::kGru;
  for (size_t dir = 0; dir < values.size(); ++dir) {
    const DirectionParams& v = values[dir];
    float* b = bias + dir * cell.bias_gates * h;
    for (int g = 0; g < cell.gates; ++g) {
      const int64_t tg = TorchGate(cell, g) * h;
      const bool hh = !(lbr && g == 2);  // b_hn goes to u' instead
      for (int64_t i = 0; i < h; ++i) b[g * h + i] = v.b_ih[tg + i] + (hh ? v.b_hh[tg + i] : 0.0f);
    }
    if (lbr) std::copy(v.b_hh + 2 * h, v.b_hh + 3 * h, b + 3 * h);
    if (peephole != nullptr) std::copy(v.peephole, v.peephole + 3 * h, peephole + dir * 3 * h);
  }
}

// The inverse for gradients: both PyTorch biases get the gate's bias gradient, except the
// gru's n gate (d b_in = dB_o, d b_hn = dB_u').
void SplitBiasGradients(const Cell& cell, int64_t h, const float* dbias, const float* dpeephole,
                        const std::vector<DirectionParams>& grads) {
  const bool lbr = cell.kind == RecurrentCell::kGru;
  for (size_t dir = 0; dir < grads.size(); ++dir) {
    const DirectionParams& g = grads[dir];
    const float* b = dbias + dir * cell.bias_gates * h;
    for (int gate = 0; gate < cell.gates; ++gate) {
      const int64_t tg = TorchGate(cell, gate) * h;
      const float* hh = lbr && gate == 2 ? b + 3 * h : b + gate * h;
      std::copy(b + gate * h, b + (gate + 1) * h, g.b_ih + tg);
      std::copy(hh, hh + h, g.b_hh + tg);
    }
    if (dpeephole != nullptr) {
      std::copy(dpeephole + dir * 3 * h, dpeephole + (dir + 1) * 3 * h, g.peephole);
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> MakeRecurrent(const RecurrentSpec& spec,
                                                      const KernelArgs& args) {
  return LstmRuns(spec) ? MakeLstm(spec, args) : MakeRecurrentPrimitives(spec, args);
}

absl::StatusOr<std::unique_ptr<Kernel>> MakeRecurrentPrimitives(const RecurrentSpec& spec,
                                                                const KernelArgs& args) {
  const bool train = args.mode == Mode::kTrain;
  const Cell cell = CellOf(spec.cell);
  const bool image = args.input.size() == 3;
  const memory::dim n = args.batch;
  const memory::dim t = image ? args.input[1] : args.input[0];
  const memory::dim features = image ? args.input[0] * args.input[2] : args.input[1];
  const memory::dim h = spec.units;
  const int dirs = spec.bidirectional ? 2 : 1;
  const memory::dim hd = h * dirs;
  const bool peephole = spec.peephole && spec.cell == RecurrentCell::kLstm;
  const size_t per_direction = peephole ? 5 : 4;
  if (args.params.size() != per_direction * dirs * spec.layers) {
    return absl::InternalError("recurrent layer: parameter count does not match its spec");
  }
  const dnnl::rnn_direction direction = spec.bidirectional
                                            ? dnnl::rnn_direction::bidirectional_concat
                                            : dnnl::rnn_direction::unidirectional_left2right;
  auto kernel = std::make_unique<RnnKernel>();
  std::vector<Op>& fwd_ops = kernel->forward;
  // Backward ops are collected per layer, top first, then concatenated.
  std::vector<std::vector<Op>> bwd_layers(spec.layers);
  try {
    // Layer 0's input as ntc {T, N, F}. A multi-channel image is reordered to (N, H, C, W).
    const float* src0 = args.src;
    const memory::dims image_dims =
        image ? memory::dims{n, args.input[0], args.input[1], args.input[2]} : memory::dims{};
    const bool transpose = image && args.input[0] > 1;
    float* transposed_diff = nullptr;
    if (transpose) {
      float* buf = kernel->Own(n * t * features);
      fwd_ops.push_back(Reorder(Wrap(Desc(image_dims, Tag::abcd), args.src),
                                Wrap(Desc(image_dims, Tag::acbd), buf)));
      src0 = buf;
      if (train && args.diff_src != nullptr) transposed_diff = kernel->Own(n * t * features);
    }

    const float* layer_src = src0;
    // Layer l's output gradient; layer l + 1's backward writes it as its diff_src_layer.
    std::vector<float*> layer_diff_dst(spec.layers);
    for (int l = 0; l < spec.layers; ++l) {
      const bool top = l == spec.layers - 1;
      const memory::dim in = l == 0 ? features : hd;
      LayerDescs d;
      d.src = Desc({t, n, in}, Tag::ntc);
      d.dst = Desc({t, n, hd}, Tag::ntc);
      d.bias = Desc({1, dirs, cell.bias_gates, h}, Tag::ldgo);
      if (peephole) d.peephole = Desc({1, dirs, 3, h}, Tag::ldgo);
      d.wl = {1, dirs, in, cell.gates, h};
      d.wi = {1, dirs, h, cell.gates, h};
      const LayerPds pds = BuildPds(cell, train, direction, d);

      float* dst = top && spec.return_sequences ? args.dst : kernel->Own(n * t * hd);
      const memory src_mem = Wrap(d.src, layer_src);
      const memory dst_mem = Wrap(d.dst, dst);
      const memory wl(pds.fwd.weights_layer_desc(), Engine());
      const memory wi(pds.fwd.weights_iter_desc(), Engine());
      RETURN_IF_ERROR(CheckStrided(wl.get_desc(), "input weights"));
      RETURN_IF_ERROR(CheckStrided(wi.get_desc(), "hidden weights"));
      const memory bias = Wrap(d.bias, kernel->Own(dirs * cell.bias_gates * h));
      const memory peep = peephole ? Wrap(d.peephole, kernel->Own(dirs * 3 * h)) : memory();

      // Forward: convert the parameters, then run the layer.
      std::vector<DirectionParams> values, grads;
      for (int dir = 0; dir < dirs; ++dir) {
        values.push_back(ParamsOf(args, l, dir, peephole, /*grads=*/false));
        grads.push_back(ParamsOf(args, l, dir, peephole, /*grads=*/true));
        AddWeightReorders(cell, wl, values[dir].w_ih, dir, /*to_param=*/false, &fwd_ops);
        AddWeightReorders(cell, wi, values[dir].w_hh, dir, /*to_param=*/false, &fwd_ops);
      }
      fwd_ops.push_back(Host([cell, h, values, b = static_cast<float*>(bias.get_data_handle()),
                              p = peephole ? static_cast<float*>(peep.get_data_handle())
                                           : nullptr] { FoldBiases(cell, h, values, b, p); }));
      Step step{dnnl::primitive(pds.fwd),
                {{DNNL_ARG_SRC_LAYER, src_mem},
                 {DNNL_ARG_WEIGHTS_LAYER, wl},
                 {DNNL_ARG_WEIGHTS_ITER, wi},
                 {DNNL_ARG_BIAS, bias},
                 {DNNL_ARG_DST_LAYER, dst_mem}}};
      if (peephole) step.args[DNNL_ARG_WEIGHTS_PEEPHOLE] = peep;
      memory workspace;
      if (train) {
        workspace = memory(pds.fwd.workspace_desc(), Engine());
        step.args[DNNL_ARG_WORKSPACE] = workspace;
      }
      fwd_ops.push_back(Exec(std::move(step)));
      if (top && !spec.return_sequences) {
        // dst (N, H·D) = step T−1 of the layer's output.
        fwd_ops.push_back(Reorder(Wrap(d.dst.submemory_desc({1, n, hd}, {t - 1, 0, 0}), dst),
                                  Wrap(Desc({1, n, hd}, Tag::tnc), args.dst)));
      }
      layer_src = dst;
      if (!train) continue;

      // Backward of this layer: gradient buffers first.
      const float* diff_dst = nullptr;
      std::vector<Op>& ops = bwd_layers[spec.layers - 1 - l];
      if (top && spec.return_sequences) {
        diff_dst = args.diff_dst;
      } else if (top) {
        // Zero except step T−1, which receives diff_dst each backward; the primitive only
        // reads it, so the zeros stay.
        float* last = kernel->Own(n * t * hd);
        ops.push_back(Reorder(Wrap(Desc({1, n, hd}, Tag::tnc), args.diff_dst),
                              Wrap(d.dst.submemory_desc({1, n, hd}, {t - 1, 0, 0}), last)));
        diff_dst = last;
      } else {
        layer_diff_dst[l] = kernel->Own(n * t * hd);
        diff_dst = layer_diff_dst[l];
      }
      // Layer 0 writes the input gradient (scratch when none is wanted); layer l > 0 writes
      // layer l − 1's output gradient.
      float* diff_src = l > 0 ? layer_diff_dst[l - 1] : transpose ? transposed_diff : args.diff_src;
      if (diff_src == nullptr) diff_src = kernel->Own(n * t * features);

      const memory bwl(pds.bwd.weights_layer_desc(), Engine());
      const memory bwi(pds.bwd.weights_iter_desc(), Engine());
      const memory dwl(pds.bwd.diff_weights_layer_desc(), Engine());
      const memory dwi(pds.bwd.diff_weights_iter_desc(), Engine());
      for (const memory* m : {&bwl, &bwi, &dwl, &dwi}) {
        RETURN_IF_ERROR(CheckStrided(m->get_desc(), "backward weights"));
      }
      const memory dbias = Wrap(d.bias, kernel->Own(dirs * cell.bias_gates * h));
      const memory dpeep = peephole ? Wrap(d.peephole, kernel->Own(dirs * 3 * h)) : memory();
      for (int dir = 0; dir < dirs; ++dir) {
        AddWeightReorders(cell, bwl, values[dir].w_ih, dir, /*to_param=*/false, &ops);
        AddWeightReorders(cell, bwi, values[dir].w_hh, dir, /*to_param=*/false, &ops);
      }
      // The primitive accumulates into its diff weights.
      ops.push_back(Zero(dwl));
      ops.push_back(Zero(dwi));
      ops.push_back(Zero(dbias));
      if (peephole) ops.push_back(Zero(dpeep));
      Step bstep{dnnl::primitive(pds.bwd),
                 {{DNNL_ARG_SRC_LAYER, src_mem},
                  {DNNL_ARG_WEIGHTS_LAYER, bwl},
                  {DNNL_ARG_WEIGHTS_ITER, bwi},
                  {DNNL_ARG_BIAS, bias},
                  {DNNL_ARG_DST_LAYER, dst_mem},
                  {DNNL_ARG_WORKSPACE, workspace},
                  {DNNL_ARG_DIFF_DST_LAYER, Wrap(d.dst, diff_dst)},
                  {DNNL_ARG_DIFF_SRC_LAYER, Wrap(d.src, diff_src)},
                  {DNNL_ARG_DIFF_WEIGHTS_LAYER, dwl},
                  {DNNL_ARG_DIFF_WEIGHTS_ITER, dwi},
                  {DNNL_ARG_DIFF_BIAS, dbias}}};
      if (peephole) {
        bstep.args[DNNL_ARG_WEIGHTS_PEEPHOLE] = peep;
        bstep.args[DNNL_ARG_DIFF_WEIGHTS_PEEPHOLE] = dpeep;
      }
      ops.push_back(Exec(std::move(bstep)));
      for (int dir = 0; dir < dirs; ++dir) {
        AddWeightReorders(cell, dwl, grads[dir].w_ih, dir, /*to_param=*/true, &ops);
        AddWeightReorders(cell, dwi, grads[dir].w_hh, dir, /*to_param=*/true, &ops);
      }
      ops.push_back(Host([cell, h, grads, db = static_cast<float*>(dbias.get_data_handle()),
                          dp = peephole ? static_cast<float*>(dpeep.get_data_handle()) : nullptr] {
        SplitBiasGradients(cell, h, db, dp, grads);
      }));
      if (l == 0 && transpose && transposed_diff != nullptr) {
        ops.push_back(Reorder(Wrap(Desc(image_dims, Tag::acbd), transposed_diff),
                              Wrap(Desc(image_dims, Tag::abcd), args.diff_src)));
      }
    }
    for (std::vector<Op>& ops : bwd_layers) {
      for (Op& op : ops) kernel->backward.push_back(std::move(op));
    }
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, LayerKindName(LayerSpec(spec)).c_str());
  }
  return kernel;
}

}  // namespace cajal::onednn
