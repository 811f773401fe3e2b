// The device backend's dense layer: GEMMs, weights in PyTorch's nn.Linear layout.
//
//   src (N, IN) · weight (OUT, IN)ᵀ + bias (OUT) -> dst (N, OUT)
//   backward: d weight = diff_dstᵀ · src, d bias = Σ_N diff_dst,
//             diff_src = diff_dst · weight          (only when the input needs a gradient)
// An image or sequence input is read as its flat (N, C·H·W) view. Saves: its input.
#include "absl/strings/str_cat.h"
#include "core/backend/cuda/kernels.h"
#include "core/util/status_macros.h"

namespace cajal::device {
namespace {

class DenseKernel : public Kernel {
 public:
  DenseKernel(DeviceOps* ops, const DenseSpec& spec, const KernelArgs& args)
      : ops_(ops),
        a_(args),
        n_(args.batch),
        in_(NumElements(args.input)),
        out_(spec.units),
        w_(args.value("weight")),
        dw_(args.grad("weight")),
        b_(spec.use_bias ? args.value("bias") : nullptr),
        db_(spec.use_bias ? args.grad("bias") : nullptr) {}

  absl::Status Forward(int64_t) override {
    if (b_ != nullptr) {
      RETURN_IF_ERROR(ops_->Run(BiasOp{a_.dst, b_, out_, 1, /*add=*/false}, n_ * out_));
    }
    GemmArgs g;  // dst (N × OUT) = src (N × IN) · weightᵀ [+ dst]
    g.trans_b = true;
    g.m = n_, g.n = out_, g.k = in_;
    g.a = a_.src, g.lda = in_;
    g.b = w_, g.ldb = in_;
    g.beta = b_ != nullptr ? 1.0f : 0.0f;
    g.c = a_.dst, g.ldc = out_;
    return ops_->Gemm(g);
  }

  absl::Status Backward() override {
    GemmArgs gw;  // d weight (OUT × IN) = diff_dstᵀ · src
    gw.trans_a = true;
    gw.m = out_, gw.n = in_, gw.k = n_;
    gw.a = a_.diff_dst, gw.lda = out_;
    gw.b = a_.src, gw.ldb = in_;
    gw.c = dw_, gw.ldc = in_;
    RETURN_IF_ERROR(ops_->Gemm(gw));
    if (db_ != nullptr) {
      RETURN_IF_ERROR(
          ops_->ChannelSum(ValueTerm{a_.diff_dst}, ReduceShape{n_, out_, 1}, 1.0f, db_));
    }
    if (a_.diff_src == nullptr) return absl::OkStatus();
    GemmArgs gx;  // diff_src (N × IN) = diff_dst (N × OUT) · weight (OUT × IN)
    gx.m = n_, gx.n = in_, gx.k = out_;
    gx.a = a_.diff_dst, gx.lda = out_;
    gx.b = w_, gx.ldb = in_;
    gx.c = a_.diff_src, gx.ldc = in_;
    return ops_->Gemm(gx);
  }

 private:
  DeviceOps* ops_;
  KernelArgs a_;
  int64_t n_, in_, out_;
  const float* w_;
  float* dw_;
  const float* b_;
  float* db_;
};

}  // namespace

KernelOr MakeDense(DeviceOps* ops, const DenseSpec& spec, const KernelArgs& args) {
  if (args.value("weight") == nullptr || (spec.use_bias && args.value("bias") == nullptr)) {
    return absl::InternalError("dense: its weight (or bias) is not bound");
  }
  return std::make_unique<DenseKernel>(ops, spec, args);
}

}  // namespace cajal::device
