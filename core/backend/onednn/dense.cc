// Dense layer on oneDNN's inner product.
//
//   src (N, IC) · weights (OC, IC)ᵀ + bias (OC) -> dst (N, OC)
//   backward: diff_src = diff_dst · weights            (only when the input needs a gradient)
//             diff_weights = diff_dstᵀ · src, diff_bias = Σ_N diff_dst
// An image or sequence input is read as its flat (N, C·H·W) view. Weights are kept in the
// plain (OC, IC) layout PyTorch's nn.Linear uses, so the parameter store needs no reorders.
#include "core/backend/onednn/kernels.h"
#include "core/backend/onednn/onednn_util.h"

namespace cajal::onednn {

using dnnl::memory;
namespace ip = dnnl;

absl::StatusOr<std::unique_ptr<Kernel>> MakeDense(const DenseSpec& spec, const KernelArgs& args) {
  const memory::dim n = args.batch;
  const memory::dim in = NumElements(args.input);
  const memory::dim out = spec.units;
  const memory::desc src_md = PlainDesc({n, in});
  const memory::desc dst_md = PlainDesc({n, out});
  const memory::desc w_md = PlainDesc({out, in});
  const memory::desc b_md = PlainDesc({out});
  const bool bias = spec.use_bias;
  auto kernel = std::make_unique<PrimitiveKernel>("dense");
  const dnnl::prop_kind prop = args.mode == Mode::kTrain ? dnnl::prop_kind::forward_training
                                                         : dnnl::prop_kind::forward_inference;
  try {
    const auto fwd_desc = bias ? ip::inner_product_forward::desc(prop, src_md, w_md, b_md, dst_md)
                               : ip::inner_product_forward::desc(prop, src_md, w_md, dst_md);
    const ip::inner_product_forward::primitive_desc fwd_pd(fwd_desc, Engine());
    const memory src = Wrap(src_md, args.src);
    const memory dst = Wrap(dst_md, args.dst);
    const memory w = Wrap(w_md, args.value("weight"));
    Step fwd{ip::inner_product_forward(fwd_pd),
             {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}}};
    if (bias) fwd.args[DNNL_ARG_BIAS] = Wrap(b_md, args.value("bias"));
    kernel->forward.push_back(std::move(fwd));
    if (args.mode == Mode::kEval) return kernel;

    const memory diff_dst = Wrap(dst_md, args.diff_dst);
    // Weights first: it reads diff_dst before the data gradient, which is independent.
    const auto bwd_w_desc =
        bias ? ip::inner_product_backward_weights::desc(src_md, w_md, b_md, dst_md)
             : ip::inner_product_backward_weights::desc(src_md, w_md, dst_md);
    const ip::inner_product_backward_weights::primitive_desc bwd_w_pd(bwd_w_desc, Engine(), fwd_pd);
    Step bwd_w{ip::inner_product_backward_weights(bwd_w_pd),
               {{DNNL_ARG_SRC, src},
                {DNNL_ARG_DIFF_DST, diff_dst},
                {DNNL_ARG_DIFF_WEIGHTS, Wrap(w_md, args.grad("weight"))}}};
    if (bias) bwd_w.args[DNNL_ARG_DIFF_BIAS] = Wrap(b_md, args.grad("bias"));
    kernel->backward.push_back(std::move(bwd_w));

    if (args.diff_src != nullptr) {
      const ip::inner_product_backward_data::desc bwd_d_desc(src_md, w_md, dst_md);
      const ip::inner_product_backward_data::primitive_desc bwd_d_pd(bwd_d_desc, Engine(), fwd_pd);
      kernel->backward.push_back({ip::inner_product_backward_data(bwd_d_pd),
                                  {{DNNL_ARG_DIFF_DST, diff_dst},
                                   {DNNL_ARG_WEIGHTS, w},
                                   {DNNL_ARG_DIFF_SRC, Wrap(src_md, args.diff_src)}}});
    }
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, "dense");
  }
  return kernel;
}

}  // namespace cajal::onednn
