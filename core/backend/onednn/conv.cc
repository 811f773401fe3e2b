// 2-D convolution on oneDNN.
//
//   src (N, IC, H, W) ⋆ weights (OC, IC/groups, K, K) + bias (OC) -> dst (N, OC, OH, OW),
//   OH = (H + 2·padding − dilation·(K − 1) − 1)/stride + 1 (floor), likewise OW.
//   backward: diff_weights, diff_bias from src and diff_dst; diff_src from diff_dst and weights
//             (only when the input needs a gradient).
//   Saves for backward: its input (in the primitive's layout when that differs).
//
// The contract with the other kernels is plain NCHW, and the parameter store keeps PyTorch's
// OIHW weights (groups: the same buffer read as GOIHW, (G, OC/G, IC/G, K, K)). Inside, every
// primitive picks its own layouts (format_tag::any); a reorder step converts between the plain
// buffers and kernel-owned blocked copies only where a primitive chose a layout that differs.
// The weights are reordered at every forward (the optimizer changes them between steps), and
// backward-data reuses that copy when it wants the same layout.
#include "core/backend/onednn/kernels.h"
#include "core/backend/onednn/onednn_util.h"

namespace cajal::onednn {
namespace {

using dnnl::memory;

memory::desc AnyDesc(const memory::dims& dims) {
  return memory::desc(dims, memory::data_type::f32, memory::format_tag::any);
}

// `user` itself when the primitive wants its layout, else a kernel-owned memory of `want`.
memory Staged(const memory& user, const memory::desc& want, PrimitiveKernel* kernel) {
  if (user.get_desc() == want) return user;
  kernel->owned.emplace_back(want, Engine());
  return kernel->owned.back();
}

// Appends a reorder from `from` to `to` unless they are the same memory.
void ReorderIfStaged(const memory& from, const memory& to, std::vector<Step>* steps) {
  if (from.get() == to.get()) return;
  steps->push_back({dnnl::reorder(from, to), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}});
}

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> MakeConv2d(const Conv2dSpec& spec, const KernelArgs& args) {
  const memory::dim n = args.batch;
  const memory::dim ic = args.input[0];
  const memory::dim oc = spec.filters;
  const memory::dim g = spec.groups;
  const memory::dim k = spec.kernel;
  const memory::dims src_dims = BatchDims(n, args.input);
  const memory::dims dst_dims = BatchDims(n, args.output);
  // Groups: the same OIHW buffer read as (G, OC/G, IC/G, K, K).
  const memory::dims w_dims =
      g == 1 ? memory::dims{oc, ic, k, k} : memory::dims{g, oc / g, ic / g, k, k};
  const memory::dims strides = {spec.stride, spec.stride};
  // oneDNN counts dilation from 0 (no gaps); PyTorch and the spec from 1.
  const memory::dims dilates = {spec.dilation - 1, spec.dilation - 1};
  const memory::dims pad = {spec.padding, spec.padding};
  const bool bias = spec.use_bias;
  const memory::desc b_md = bias ? PlainDesc({oc}) : memory::desc();
  const auto direct = dnnl::algorithm::convolution_direct;
  auto kernel = std::make_unique<PrimitiveKernel>("conv2d");
  PrimitiveKernel* kp = kernel.get();
  try {
    const memory user_src = Wrap(PlainDesc(src_dims), args.src);
    const memory user_dst = Wrap(PlainDesc(dst_dims), args.dst);
    const memory user_w = Wrap(PlainDesc(w_dims), args.value("weight"));
    const dnnl::prop_kind prop = args.mode == Mode::kTrain ? dnnl::prop_kind::forward_training
                                                           : dnnl::prop_kind::forward_inference;
    // {N, IC, H, W} -> {N, OC, OH, OW}
    const dnnl::convolution_forward::primitive_desc fwd_pd(
        dnnl::convolution_forward::desc(prop, direct, AnyDesc(src_dims), AnyDesc(w_dims), b_md,
                                        AnyDesc(dst_dims), strides, dilates, pad, pad),
        Engine());
    const memory src = Staged(user_src, fwd_pd.src_desc(), kp);
    const memory w = Staged(user_w, fwd_pd.weights_desc(), kp);
    const memory dst = Staged(user_dst, fwd_pd.dst_desc(), kp);
    ReorderIfStaged(user_src, src, &kp->forward);
    ReorderIfStaged(user_w, w, &kp->forward);
    Step fwd{dnnl::convolution_forward(fwd_pd),
             {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}}};
    if (bias) fwd.args[DNNL_ARG_BIAS] = Wrap(b_md, args.value("bias"));
    kp->forward.push_back(std::move(fwd));
    ReorderIfStaged(dst, user_dst, &kp->forward);
    if (args.mode == Mode::kEval) return kernel;

    // Backward: {N, OC, OH, OW} -> diff weights {OC, IC/G, K, K}, diff bias {OC} and, when the
    // input needs it, diff src {N, IC, H, W}.
    const memory user_diff_dst = Wrap(PlainDesc(dst_dims), args.diff_dst);
    // With fewer than 8 input channels per group a channel-blocked src would be mostly padding
    // (the CNN's first conv: 1 channel padded to 8); there the plain layouts run oneDNN's
    // gemm-based backward-weights, measured 1.8× faster, and need no reorders.
    const bool few_channels = ic / g < 8;
    auto bwd_desc = [&](const memory::dims& dims) {
      return few_channels ? PlainDesc(dims) : AnyDesc(dims);
    };
    const dnnl::convolution_backward_weights::primitive_desc bwd_w_pd(
        dnnl::convolution_backward_weights::desc(direct, bwd_desc(src_dims), bwd_desc(w_dims), b_md,
                                                 bwd_desc(dst_dims), strides, dilates, pad, pad),
        Engine(), fwd_pd);
    // The forward's copy of src is still current at backward; reuse it when the layout agrees.
    memory bwd_src =
        bwd_w_pd.src_desc() == src.get_desc() ? src : Staged(user_src, bwd_w_pd.src_desc(), kp);
    const memory diff_dst = Staged(user_diff_dst, bwd_w_pd.diff_dst_desc(), kp);
    const memory user_diff_w = Wrap(PlainDesc(w_dims), args.grad("weight"));
    const memory diff_w = Staged(user_diff_w, bwd_w_pd.diff_weights_desc(), kp);
    if (bwd_src.get() != src.get()) ReorderIfStaged(user_src, bwd_src, &kp->backward);
    ReorderIfStaged(user_diff_dst, diff_dst, &kp->backward);
    Step bwd_w{
        dnnl::convolution_backward_weights(bwd_w_pd),
        {{DNNL_ARG_SRC, bwd_src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, diff_w}}};
    if (bias) bwd_w.args[DNNL_ARG_DIFF_BIAS] = Wrap(b_md, args.grad("bias"));
    kp->backward.push_back(std::move(bwd_w));
    ReorderIfStaged(diff_w, user_diff_w, &kp->backward);

    if (args.diff_src != nullptr) {
      const dnnl::convolution_backward_data::primitive_desc bwd_d_pd(
          dnnl::convolution_backward_data::desc(direct, AnyDesc(src_dims), AnyDesc(w_dims),
                                                AnyDesc(dst_dims), strides, dilates, pad, pad),
          Engine(), fwd_pd);
      // The forward reordered this step's weights; reuse that copy when the layout agrees.
      const memory bwd_w_mem =
          bwd_d_pd.weights_desc() == w.get_desc() ? w : Staged(user_w, bwd_d_pd.weights_desc(), kp);
      const memory bwd_diff_dst = bwd_d_pd.diff_dst_desc() == diff_dst.get_desc()
                                      ? diff_dst
                                      : Staged(user_diff_dst, bwd_d_pd.diff_dst_desc(), kp);
      const memory user_diff_src = Wrap(PlainDesc(src_dims), args.diff_src);
      const memory diff_src = Staged(user_diff_src, bwd_d_pd.diff_src_desc(), kp);
      if (bwd_w_mem.get() != w.get()) ReorderIfStaged(user_w, bwd_w_mem, &kp->backward);
      if (bwd_diff_dst.get() != diff_dst.get()) {
        ReorderIfStaged(user_diff_dst, bwd_diff_dst, &kp->backward);
      }
      kp->backward.push_back({dnnl::convolution_backward_data(bwd_d_pd),
                              {{DNNL_ARG_DIFF_DST, bwd_diff_dst},
                               {DNNL_ARG_WEIGHTS, bwd_w_mem},
                               {DNNL_ARG_DIFF_SRC, diff_src}}});
      ReorderIfStaged(diff_src, user_diff_src, &kp->backward);
    }
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, "conv2d");
  }
  return kernel;
}

}  // namespace cajal::onednn
