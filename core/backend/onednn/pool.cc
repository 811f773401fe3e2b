// Max and average pooling on oneDNN.
//
//   src (N, C, H, W) -> dst (N, C, OH, OW), OH = (H + 2·padding − kernel)/stride + 1 (floor, as
//   PyTorch's default ceil_mode=False), windows may overlap (stride < kernel).
//   max: padding counts as −∞; backward routes each diff_dst to its window's arg max.
//   avg: padding counts as zeros and every window divides by kernel² (PyTorch's default
//        count_include_pad=True; oneDNN's pooling_avg_include_padding). With floor sizes no
//        window reaches past the padding, so the two agree at the borders too.
//   Saves for backward: max pooling, the forward_training workspace (the arg max indices);
//   average pooling, nothing.
//
// oneDNN 2.6's jit pooling runs only on channel-blocked layouts; on plain NCHW it picks
// `simple_nchw`, a scalar loop about 30× slower than a reorder to nChw8c/16c and back (measured
// on the DESIGN.md CNN's pools). So the kernel pools a kernel-owned blocked copy when a jit
// implementation exists for one, with reorder steps on either side, and pools the plain
// buffers otherwise.
#include <string>

#include "core/backend/onednn/kernels.h"
#include "core/backend/onednn/onednn_util.h"

namespace cajal::onednn {
namespace {

using dnnl::memory;

memory::desc Tagged(const memory::dims& dims, memory::format_tag tag) {
  return memory::desc(dims, memory::data_type::f32, tag);
}

bool IsJit(const dnnl::primitive_desc_base& pd) {
  return std::string(pd.impl_info_str()).find("jit") != std::string::npos;
}

void PushReorder(const memory& from, const memory& to, std::vector<Step>* steps) {
  steps->push_back({dnnl::reorder(from, to), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}});
}

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> MakePool2d(const Pool2dSpec& spec, const KernelArgs& args) {
  const memory::dims src_dims = BatchDims(args.batch, args.input);
  const memory::dims dst_dims = BatchDims(args.batch, args.output);
  const memory::desc user_src_md = PlainDesc(src_dims);
  const memory::desc user_dst_md = PlainDesc(dst_dims);
  const memory::dim stride = spec.stride > 0 ? spec.stride : spec.kernel;
  const memory::dims strides = {stride, stride};
  const memory::dims kernel_dims = {spec.kernel, spec.kernel};
  const memory::dims pad = {spec.padding, spec.padding};
  const dnnl::algorithm alg =
      spec.max ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_include_padding;
  const bool train = args.mode == Mode::kTrain;
  auto kernel = std::make_unique<PrimitiveKernel>("pooling");
  const auto prop = train ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  try {
    // {N, C, H, W} -> {N, C, OH, OW}, on the first layout with a jit implementation.
    memory::desc src_md = user_src_md, dst_md = user_dst_md;
    dnnl::pooling_forward::primitive_desc fwd_pd(
        dnnl::pooling_forward::desc(prop, alg, src_md, dst_md, strides, kernel_dims, pad, pad),
        Engine());
    for (memory::format_tag tag : {memory::format_tag::nChw16c, memory::format_tag::nChw8c}) {
      if (IsJit(fwd_pd)) break;
      const dnnl::pooling_forward::primitive_desc blocked(
          dnnl::pooling_forward::desc(prop, alg, Tagged(src_dims, tag), Tagged(dst_dims, tag),
                                      strides, kernel_dims, pad, pad),
          Engine());
      if (!IsJit(blocked)) continue;
      fwd_pd = blocked;
      src_md = Tagged(src_dims, tag);
      dst_md = Tagged(dst_dims, tag);
    }
    const bool staged = src_md != user_src_md;
    const memory user_src = Wrap(user_src_md, args.src);
    const memory user_dst = Wrap(user_dst_md, args.dst);
    memory src = user_src, dst = user_dst;
    if (staged) {
      src = memory(src_md, Engine());
      dst = memory(dst_md, Engine());
      kernel->owned.insert(kernel->owned.end(), {src, dst});
      PushReorder(user_src, src, &kernel->forward);
    }
    Step fwd{dnnl::pooling_forward(fwd_pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}};
    // Max pooling in training keeps the arg max of every window for backward.
    const memory workspace = AddWorkspace(fwd_pd, train, kernel.get(), &fwd);
    kernel->forward.push_back(std::move(fwd));
    if (staged) PushReorder(dst, user_dst, &kernel->forward);
    if (!train || args.diff_src == nullptr) return kernel;

    // {N, C, OH, OW} -> {N, C, H, W}
    const dnnl::pooling_backward::primitive_desc bwd_pd(
        dnnl::pooling_backward::desc(alg, src_md, dst_md, strides, kernel_dims, pad, pad), Engine(),
        fwd_pd);
    const memory user_diff_dst = Wrap(user_dst_md, args.diff_dst);
    const memory user_diff_src = Wrap(user_src_md, args.diff_src);
    memory diff_dst = user_diff_dst, diff_src = user_diff_src;
    if (staged) {
      // The forward's blocked buffers are free again by now: reuse them.
      diff_dst = dst;
      diff_src = src;
      PushReorder(user_diff_dst, diff_dst, &kernel->backward);
    }
    Step bwd{dnnl::pooling_backward(bwd_pd),
             {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src}}};
    if (workspace) bwd.args[DNNL_ARG_WORKSPACE] = workspace;
    kernel->backward.push_back(std::move(bwd));
    if (staged) PushReorder(diff_src, user_diff_src, &kernel->backward);
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, spec.max ? "max_pool2d" : "avg_pool2d");
  }
  return kernel;
}

}  // namespace cajal::onednn
