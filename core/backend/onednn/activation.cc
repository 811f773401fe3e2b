// Activations on oneDNN: eltwise (linear, sigmoid, tanh, relu, leaky_relu), PReLU, softmax.
//
//   src (N, ...) -> dst (N, ...), same shape.
//   Saves for backward: dst for sigmoid, tanh, relu and leaky_relu with slope >= 0 (the
//   *_use_dst_for_bwd algorithms); src for linear, leaky_relu with a negative slope and prelu;
//   dst for softmax (over the last dimension).
#include "core/backend/onednn/kernels.h"
#include "core/backend/onednn/onednn_util.h"

namespace cajal::onednn {
namespace {

using dnnl::algorithm;
using dnnl::memory;

struct EltwiseAlg {
  algorithm alg;
  float alpha;
  float beta;
  bool use_dst;
};

EltwiseAlg EltwiseFor(const ActivationSpec& spec) {
  switch (spec.kind) {
    case Activation::kSigmoid:
      return {algorithm::eltwise_logistic_use_dst_for_bwd, 0, 0, true};
    case Activation::kTanh:
      return {algorithm::eltwise_tanh_use_dst_for_bwd, 0, 0, true};
    case Activation::kRelu:
      return {algorithm::eltwise_relu_use_dst_for_bwd, 0, 0, true};
    case Activation::kLeakyRelu:
      // With a negative slope the sign of dst no longer tells the sign of src.
      if (spec.slope >= 0) return {algorithm::eltwise_relu_use_dst_for_bwd, spec.slope, 0, true};
      return {algorithm::eltwise_relu, spec.slope, 0, false};
    default:
      return {algorithm::eltwise_linear, 1, 0, false};
  }
}

dnnl::prop_kind ForwardProp(Mode mode) {
  return mode == Mode::kTrain ? dnnl::prop_kind::forward_training
                              : dnnl::prop_kind::forward_inference;
}

// The input gradient, or kernel-owned scratch when the input needs none (prelu still computes
// it alongside the slope gradient).
memory DiffSrc(const memory::desc& md, const KernelArgs& args, PrimitiveKernel* kernel) {
  if (args.diff_src != nullptr) return Wrap(md, args.diff_src);
  kernel->owned.emplace_back(md, Engine());
  return kernel->owned.back();
}

absl::StatusOr<std::unique_ptr<Kernel>> MakeEltwise(const ActivationSpec& spec,
                                                    const KernelArgs& args) {
  const memory::desc md = PlainDesc(BatchDims(args.batch, args.input));
  const EltwiseAlg e = EltwiseFor(spec);
  auto kernel = std::make_unique<PrimitiveKernel>("activation");
  try {
    const dnnl::eltwise_forward::primitive_desc fwd_pd(
        dnnl::eltwise_forward::desc(ForwardProp(args.mode), e.alg, md, e.alpha, e.beta), Engine());
    const memory src = Wrap(md, args.src);
    const memory dst = Wrap(md, args.dst);
    kernel->forward.push_back(
        {dnnl::eltwise_forward(fwd_pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}});
    if (args.mode == Mode::kEval || args.diff_src == nullptr) return kernel;
    const dnnl::eltwise_backward::primitive_desc bwd_pd(
        dnnl::eltwise_backward::desc(e.alg, md, md, e.alpha, e.beta), Engine(), fwd_pd);
    kernel->backward.push_back({dnnl::eltwise_backward(bwd_pd),
                                {{e.use_dst ? DNNL_ARG_DST : DNNL_ARG_SRC, e.use_dst ? dst : src},
                                 {DNNL_ARG_DIFF_DST, Wrap(md, args.diff_dst)},
                                 {DNNL_ARG_DIFF_SRC, Wrap(md, args.diff_src)}}});
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, "activation");
  }
  return kernel;
}

absl::StatusOr<std::unique_ptr<Kernel>> MakeSoftmax(const KernelArgs& args) {
  const memory::dims dims = BatchDims(args.batch, args.input);
  const memory::desc md = PlainDesc(dims);
  const int axis = static_cast<int>(dims.size()) - 1;
  auto kernel = std::make_unique<PrimitiveKernel>("softmax");
  try {
    const dnnl::softmax_v2_forward::primitive_desc fwd_pd(
        dnnl::softmax_v2_forward::desc(ForwardProp(args.mode), algorithm::softmax_accurate, md, md,
                                       axis),
        Engine());
    const memory dst = Wrap(md, args.dst);
    kernel->forward.push_back({dnnl::softmax_v2_forward(fwd_pd),
                               {{DNNL_ARG_SRC, Wrap(md, args.src)}, {DNNL_ARG_DST, dst}}});
    if (args.mode == Mode::kEval || args.diff_src == nullptr) return kernel;
    const dnnl::softmax_v2_backward::primitive_desc bwd_pd(
        dnnl::softmax_v2_backward::desc(algorithm::softmax_accurate, md, md, md, axis), Engine(),
        fwd_pd);
    kernel->backward.push_back({dnnl::softmax_v2_backward(bwd_pd),
                                {{DNNL_ARG_DST, dst},
                                 {DNNL_ARG_DIFF_DST, Wrap(md, args.diff_dst)},
                                 {DNNL_ARG_DIFF_SRC, Wrap(md, args.diff_src)}}});
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, "softmax");
  }
  return kernel;
}

// PReLU: dst = src > 0 ? src : slope[c] · src, one slope per channel (dimension 1).
absl::StatusOr<std::unique_ptr<Kernel>> MakePrelu(const KernelArgs& args) {
  const memory::dims dims = BatchDims(args.batch, args.input);
  const memory::desc md = PlainDesc(dims);
  // Slopes broadcast over every dimension but the channel one: {1, C, 1, ...}, or {1, 1, F}
  // for sequences (T, F).
  memory::dims wdims(dims.size(), 1);
  if (dims.size() == 3 && args.input.size() == 2) {
    wdims[2] = dims[2];
  } else {
    wdims[1] = dims[1];
  }
  const memory::desc w_md = PlainDesc(wdims);
  auto kernel = std::make_unique<PrimitiveKernel>("prelu");
  try {
    const dnnl::prelu_forward::primitive_desc fwd_pd(
        dnnl::prelu_forward::desc(ForwardProp(args.mode), md, w_md), Engine());
    const memory src = Wrap(md, args.src);
    const memory w = Wrap(w_md, args.value("slope"));
    kernel->forward.push_back(
        {dnnl::prelu_forward(fwd_pd),
         {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, Wrap(md, args.dst)}}});
    if (args.mode == Mode::kEval) return kernel;
    const dnnl::prelu_backward::primitive_desc bwd_pd(
        dnnl::prelu_backward::desc(md, w_md, md, w_md), Engine(), fwd_pd);
    kernel->backward.push_back({dnnl::prelu_backward(bwd_pd),
                                {{DNNL_ARG_SRC, src},
                                 {DNNL_ARG_WEIGHTS, w},
                                 {DNNL_ARG_DIFF_DST, Wrap(md, args.diff_dst)},
                                 {DNNL_ARG_DIFF_SRC, DiffSrc(md, args, kernel.get())},
                                 {DNNL_ARG_DIFF_WEIGHTS, Wrap(w_md, args.grad("slope"))}}});
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, "prelu");
  }
  return kernel;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> MakeActivation(const ActivationSpec& spec,
                                                       const KernelArgs& args) {
  switch (spec.kind) {
    case Activation::kSoftmax:
      return MakeSoftmax(args);
    case Activation::kPrelu:
      return MakePrelu(args);
    default:
      return MakeEltwise(spec, args);
  }
}

}  // namespace cajal::onednn
