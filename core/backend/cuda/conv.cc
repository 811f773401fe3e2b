// conv2d on cuDNN's convolution API (the legacy one: deprecated in cuDNN 9, still shipped and
// supported; the graph API would do the same with more code).
//
//   src (N, C, H, W) ⊛ weight (F, C/groups, K, K) + bias (F) -> dst (N, F, OH, OW)
//   cross-correlation (as PyTorch's and oneDNN's), stride, padding, dilation and groups as the
//   spec; weights in PyTorch's layout, which is cuDNN's NCHW filter layout.
//   backward: d weight (cudnnConvolutionBackwardFilter), d bias (a ChannelSum of diff_dst),
//   diff_src (cudnnConvolutionBackwardData) when the input needs a gradient.
// Algorithms come from cuDNN's heuristics (the _v7 queries; nothing is timed): the first that
// succeeds, fits kWorkspaceLimit and is deterministic, else the first that fits. The descriptor's
// math type is CUDNN_FMA_MATH: FP32 arithmetic, no TF32 tensor cores, so results compare with the
// CPU's. One workspace, the largest the chosen algorithms need, is allocated with the kernel.
// Saves for backward: its input.
#include "core/backend/cuda/conv.h"

#include <algorithm>
#include <climits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/backend/cuda/cuda_util.h"
#include "core/util/status_macros.h"

namespace cajal::cuda {
namespace {

constexpr size_t kWorkspaceLimit = size_t{256} << 20;
constexpr int kMaxAlgos = 16;

struct TensorDeleter {
  void operator()(cudnnTensorStruct* d) const { cudnnDestroyTensorDescriptor(d); }
};
struct FilterDeleter {
  void operator()(cudnnFilterStruct* d) const { cudnnDestroyFilterDescriptor(d); }
};
struct ConvDeleter {
  void operator()(cudnnConvolutionStruct* d) const { cudnnDestroyConvolutionDescriptor(d); }
};

struct Descriptors {
  std::unique_ptr<cudnnTensorStruct, TensorDeleter> x, y;
  std::unique_ptr<cudnnFilterStruct, FilterDeleter> w;
  std::unique_ptr<cudnnConvolutionStruct, ConvDeleter> conv;
};

absl::StatusOr<int> Int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("conv2d: ", what, " ", v, " exceeds cuDNN's int"));
  }
  return static_cast<int>(v);
}

absl::StatusOr<Descriptors> MakeDescriptors(const Conv2dSpec& spec, const KernelArgs& a) {
  ASSIGN_OR_RETURN(const int n, Int(a.batch, "batch"));
  ASSIGN_OR_RETURN(const int c, Int(a.input[0], "channels"));
  ASSIGN_OR_RETURN(const int h, Int(a.input[1], "height"));
  ASSIGN_OR_RETURN(const int w, Int(a.input[2], "width"));
  ASSIGN_OR_RETURN(const int oh, Int(a.output[1], "output height"));
  ASSIGN_OR_RETURN(const int ow, Int(a.output[2], "output width"));
  ASSIGN_OR_RETURN(const int count, Int(a.batch * NumElements(a.input), "input size"));
  ASSIGN_OR_RETURN(const int out_count, Int(a.batch * NumElements(a.output), "output size"));
  (void)count;
  (void)out_count;
  Descriptors d;
  cudnnTensorDescriptor_t t = nullptr;
  RETURN_IF_ERROR(CudnnStatus(cudnnCreateTensorDescriptor(&t), "cudnnCreateTensorDescriptor"));
  d.x.reset(t);
  RETURN_IF_ERROR(CudnnStatus(cudnnCreateTensorDescriptor(&t), "cudnnCreateTensorDescriptor"));
  d.y.reset(t);
  cudnnFilterDescriptor_t f = nullptr;
  RETURN_IF_ERROR(CudnnStatus(cudnnCreateFilterDescriptor(&f), "cudnnCreateFilterDescriptor"));
  d.w.reset(f);
  cudnnConvolutionDescriptor_t cv = nullptr;
  RETURN_IF_ERROR(
      CudnnStatus(cudnnCreateConvolutionDescriptor(&cv), "cudnnCreateConvolutionDescriptor"));
  d.conv.reset(cv);
  RETURN_IF_ERROR(CudnnStatus(
      cudnnSetTensor4dDescriptor(d.x.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w),
      "cudnnSetTensor4dDescriptor"));
  RETURN_IF_ERROR(CudnnStatus(cudnnSetTensor4dDescriptor(d.y.get(), CUDNN_TENSOR_NCHW,
                                                         CUDNN_DATA_FLOAT, n, spec.filters, oh, ow),
                              "cudnnSetTensor4dDescriptor"));
  RETURN_IF_ERROR(CudnnStatus(
      cudnnSetFilter4dDescriptor(d.w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, spec.filters,
                                 c / spec.groups, spec.kernel, spec.kernel),
      "cudnnSetFilter4dDescriptor"));
  RETURN_IF_ERROR(CudnnStatus(
      cudnnSetConvolution2dDescriptor(d.conv.get(), spec.padding, spec.padding, spec.stride,
                                      spec.stride, spec.dilation, spec.dilation,
                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
      "cudnnSetConvolution2dDescriptor"));
  RETURN_IF_ERROR(CudnnStatus(cudnnSetConvolutionGroupCount(d.conv.get(), spec.groups),
                              "cudnnSetConvolutionGroupCount"));
  RETURN_IF_ERROR(CudnnStatus(cudnnSetConvolutionMathType(d.conv.get(), CUDNN_FMA_MATH),
                              "cudnnSetConvolutionMathType"));
  int dims[4] = {0, 0, 0, 0};
  RETURN_IF_ERROR(
      CudnnStatus(cudnnGetConvolution2dForwardOutputDim(d.conv.get(), d.x.get(), d.w.get(),
                                                        &dims[0], &dims[1], &dims[2], &dims[3]),
                  "cudnnGetConvolution2dForwardOutputDim"));
  if (dims[0] != n || dims[1] != spec.filters || dims[2] != oh || dims[3] != ow) {
    return absl::InternalError(absl::StrCat("conv2d: cuDNN computes an output of (", dims[1], ", ",
                                            dims[2], ", ", dims[3], ") where the network has ",
                                            ShapeToString(a.output)));
  }
  return d;
}

// The first heuristic choice that succeeded, fits the limit and is deterministic; else the
// first that succeeded and fits.
template <class Perf>
absl::StatusOr<Perf> Choose(const Perf* perf, int count, const char* what) {
  const Perf* fallback = nullptr;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kWorkspaceLimit) continue;
    if (perf[i].determinism == CUDNN_DETERMINISTIC) return perf[i];
    if (fallback == nullptr) fallback = &perf[i];
  }
  if (fallback != nullptr) return *fallback;
  return absl::UnimplementedError(absl::StrCat("conv2d: cuDNN offers no ", what,
                                               " algorithm for this configuration within ",
                                               kWorkspaceLimit >> 20, " MiB of workspace"));
}

struct Algorithms {
  cudnnConvolutionFwdAlgo_t forward{};
  cudnnConvolutionBwdDataAlgo_t backward_data{};
  cudnnConvolutionBwdFilterAlgo_t backward_filter{};
  size_t workspace = 0;
};

absl::StatusOr<Algorithms> ChooseAlgorithms(cudnnHandle_t h, const Descriptors& d, bool train,
                                            bool data_gradient) {
  Algorithms a;
  int returned = 0;
  cudnnConvolutionFwdAlgoPerf_t fwd[kMaxAlgos];
  RETURN_IF_ERROR(
      CudnnStatus(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.get(), d.w.get(), d.conv.get(),
                                                         d.y.get(), kMaxAlgos, &returned, fwd),
                  "cudnnGetConvolutionForwardAlgorithm_v7"));
  ASSIGN_OR_RETURN(const cudnnConvolutionFwdAlgoPerf_t f, Choose(fwd, returned, "forward"));
  a.forward = f.algo;
  a.workspace = f.memory;
  if (!train) return a;
  cudnnConvolutionBwdFilterAlgoPerf_t filter[kMaxAlgos];
  RETURN_IF_ERROR(CudnnStatus(
      cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.get(), d.y.get(), d.conv.get(),
                                                    d.w.get(), kMaxAlgos, &returned, filter),
      "cudnnGetConvolutionBackwardFilterAlgorithm_v7"));
  ASSIGN_OR_RETURN(const cudnnConvolutionBwdFilterAlgoPerf_t bf,
                   Choose(filter, returned, "weight-gradient"));
  a.backward_filter = bf.algo;
  a.workspace = std::max(a.workspace, bf.memory);
  if (!data_gradient) return a;
  cudnnConvolutionBwdDataAlgoPerf_t data[kMaxAlgos];
  RETURN_IF_ERROR(
      CudnnStatus(cudnnGetConvolutionBackwardDataAlgorithm_v7(
                      h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), kMaxAlgos, &returned, data),
                  "cudnnGetConvolutionBackwardDataAlgorithm_v7"));
  ASSIGN_OR_RETURN(const cudnnConvolutionBwdDataAlgoPerf_t bd,
                   Choose(data, returned, "input-gradient"));
  a.backward_data = bd.algo;
  a.workspace = std::max(a.workspace, bd.memory);
  return a;
}

class CudnnConvKernel : public Kernel {
 public:
  CudnnConvKernel(int device, device::DeviceOps* ops, const Conv2dSpec& spec,
                  const KernelArgs& args, Descriptors d, const Algorithms& algos)
      : device_(device), ops_(ops), spec_(spec), a_(args), d_(std::move(d)), algos_(algos) {}

  absl::Status Init() {
    w_ = a_.value("weight");
    if (w_ == nullptr || (spec_.use_bias && a_.value("bias") == nullptr)) {
      return absl::InternalError("conv2d: its weight (or bias) is not bound");
    }
    ASSIGN_OR_RETURN(workspace_, ops_->Allocate(algos_.workspace));
    return absl::OkStatus();
  }

  absl::Status Forward(int64_t) override {
    ASSIGN_OR_RETURN(cudnnHandle_t h, Handle());
    const float one = 1.0f, zero = 0.0f;
    RETURN_IF_ERROR(
        CudnnStatus(cudnnConvolutionForward(h, &one, d_.x.get(), a_.src, d_.w.get(), w_,
                                            d_.conv.get(), algos_.forward, workspace_.get(),
                                            algos_.workspace, &zero, d_.y.get(), a_.dst),
                    "cudnnConvolutionForward"));
    if (!spec_.use_bias) return absl::OkStatus();
    const int64_t plane = a_.output[1] * a_.output[2];
    return ops_->Run(device::BiasOp{a_.dst, a_.value("bias"), spec_.filters, plane, true},
                     a_.batch * NumElements(a_.output));
  }

  absl::Status Backward() override {
    ASSIGN_OR_RETURN(cudnnHandle_t h, Handle());
    const float one = 1.0f, zero = 0.0f;
    RETURN_IF_ERROR(CudnnStatus(
        cudnnConvolutionBackwardFilter(h, &one, d_.x.get(), a_.src, d_.y.get(), a_.diff_dst,
                                       d_.conv.get(), algos_.backward_filter, workspace_.get(),
                                       algos_.workspace, &zero, d_.w.get(), a_.grad("weight")),
        "cudnnConvolutionBackwardFilter"));
    if (spec_.use_bias) {
      const int64_t plane = a_.output[1] * a_.output[2];
      RETURN_IF_ERROR(ops_->ChannelSum(device::ValueTerm{a_.diff_dst},
                                       device::ReduceShape{a_.batch, spec_.filters, plane}, 1.0f,
                                       a_.grad("bias")));
    }
    if (a_.diff_src == nullptr) return absl::OkStatus();
    return CudnnStatus(
        cudnnConvolutionBackwardData(h, &one, d_.w.get(), w_, d_.y.get(), a_.diff_dst,
                                     d_.conv.get(), algos_.backward_data, workspace_.get(),
                                     algos_.workspace, &zero, d_.x.get(), a_.diff_src),
        "cudnnConvolutionBackwardData");
  }

 private:
  // The calling thread's handle, bound to its stream.
  absl::StatusOr<cudnnHandle_t> Handle() {
    ASSIGN_OR_RETURN(ThreadContext * c, Context(device_));
    return Cudnn(c);
  }

  int device_;
  device::DeviceOps* ops_;
  Conv2dSpec spec_;
  KernelArgs a_;
  Descriptors d_;
  Algorithms algos_;
  const float* w_ = nullptr;
  DeviceBuffer workspace_;
};

absl::StatusOr<Algorithms> Plan(int device, const KernelArgs& args, const Descriptors& d) {
  ASSIGN_OR_RETURN(ThreadContext * c, Context(device));
  ASSIGN_OR_RETURN(cudnnHandle_t h, Cudnn(c));
  return ChooseAlgorithms(h, d, args.mode == Mode::kTrain, args.diff_src != nullptr);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> MakeCudnnConv2d(int device, device::DeviceOps* ops,
                                                        const Conv2dSpec& spec,
                                                        const KernelArgs& args) {
  if (args.input.size() != 3 || args.output.size() != 3) {
    return absl::InvalidArgumentError("conv2d needs an image input (C, H, W)");
  }
  ASSIGN_OR_RETURN(Descriptors d, MakeDescriptors(spec, args));
  ASSIGN_OR_RETURN(const Algorithms algos, Plan(device, args, d));
  auto kernel = std::make_unique<CudnnConvKernel>(device, ops, spec, args, std::move(d), algos);
  RETURN_IF_ERROR(kernel->Init());
  return kernel;
}

int64_t CudnnConv2dBytes(int device, const Conv2dSpec& spec, const KernelArgs& args) {
  if (args.input.size() != 3 || args.output.size() != 3) return 0;
  absl::StatusOr<Descriptors> d = MakeDescriptors(spec, args);
  if (!d.ok()) return 0;
  absl::StatusOr<Algorithms> algos = Plan(device, args, *d);
  return algos.ok() ? static_cast<int64_t>(algos->workspace) : 0;
}

}  // namespace cajal::cuda
