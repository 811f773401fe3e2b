// Local response normalization across channels on oneDNN, in the AlexNet paper's convention.
//
//   src (N, C, H, W) -> dst, same shape:
//     dst[c] = src[c] / (k + alpha · Σ_{c' ∈ window(c)} src[c']²)^beta,
//     window(c) = [c − (size−1)/2, c + (size−1)/2] clipped to [0, C) for odd sizes (the usual
//     case, and the one PyTorch agrees on; even sizes take oneDNN's window).
//   Saves for backward: its input and, when the implementation has one, the workspace.
//
// The spec's alpha is the paper's (Krizhevsky et al. 2012, §3.3: k=2, n=5, alpha=1e-4,
// beta=0.75), which is not divided by the size. oneDNN divides its alpha by local_size, as
// Caffe and PyTorch's nn.LocalResponseNorm do, so the kernel passes alpha·size (see docs/cnn.md).
#include "core/backend/onednn/kernels.h"
#include "core/backend/onednn/onednn_util.h"

namespace cajal::onednn {

using dnnl::memory;

absl::StatusOr<std::unique_ptr<Kernel>> MakeLrn(const LrnSpec& spec, const KernelArgs& args) {
  const memory::desc md = PlainDesc(BatchDims(args.batch, args.input));
  const auto alg = dnnl::algorithm::lrn_across_channels;
  const float alpha = spec.alpha * static_cast<float>(spec.size);  // oneDNN divides by size
  const bool train = args.mode == Mode::kTrain;
  auto kernel = std::make_unique<PrimitiveKernel>("lrn");
  try {
    const dnnl::lrn_forward::primitive_desc fwd_pd(
        dnnl::lrn_forward::desc(
            train ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference, alg, md,
            spec.size, alpha, spec.beta, spec.k),
        Engine());
    const memory src = Wrap(md, args.src);
    Step fwd{dnnl::lrn_forward(fwd_pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, Wrap(md, args.dst)}}};
    const memory workspace = AddWorkspace(fwd_pd, train, kernel.get(), &fwd);
    kernel->forward.push_back(std::move(fwd));
    if (!train || args.diff_src == nullptr) return kernel;

    // The C++ 2.6 API takes (data, diff_data); the C API the reverse.
    const dnnl::lrn_backward::primitive_desc bwd_pd(
        dnnl::lrn_backward::desc(alg, md, md, spec.size, alpha, spec.beta, spec.k), Engine(),
        fwd_pd);
    Step bwd{dnnl::lrn_backward(bwd_pd),
             {{DNNL_ARG_SRC, src},
              {DNNL_ARG_DIFF_DST, Wrap(md, args.diff_dst)},
              {DNNL_ARG_DIFF_SRC, Wrap(md, args.diff_src)}}};
    if (workspace) bwd.args[DNNL_ARG_WORKSPACE] = workspace;
    kernel->backward.push_back(std::move(bwd));
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, "lrn");
  }
  return kernel;
}

}  // namespace cajal::onednn
