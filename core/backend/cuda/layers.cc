// The device backend's layers made of element operations: activations, threshold, flatten,
// dropout, pooling, LRN and batch norm. Each opens with its shape contract; the math is in
// element_ops.h.
#include <functional>
#include <memory>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "core/backend/cuda/kernels.h"
#include "core/util/status_macros.h"

namespace cajal::device {
namespace {

int64_t Count(const KernelArgs& args, const Shape& shape) {
  return args.batch * NumElements(shape);
}

// Layers without state: a forward and a backward function over the bound buffers.
class FunctionKernel : public Kernel {
 public:
  using Pass = std::function<absl::Status(int64_t step)>;
  FunctionKernel(Pass forward, Pass backward)
      : forward_(std::move(forward)), backward_(std::move(backward)) {}
  absl::Status Forward(int64_t step) override { return forward_(step); }
  absl::Status Backward() override { return backward_ ? backward_(0) : absl::OkStatus(); }

 private:
  Pass forward_;
  Pass backward_;
};

EltwiseKind EltwiseOf(Activation kind) {
  switch (kind) {
    case Activation::kSigmoid:
      return EltwiseKind::kSigmoid;
    case Activation::kTanh:
      return EltwiseKind::kTanh;
    case Activation::kRelu:
      return EltwiseKind::kRelu;
    case Activation::kLeakyRelu:
      return EltwiseKind::kLeakyRelu;
    default:
      return EltwiseKind::kLinear;
  }
}

// The channel layout of prelu's slopes over (outer, channels, inner): dimension 1 of an image,
// the features of flat inputs and of sequences (T, F).
ReduceShape PreluShape(const KernelArgs& args) {
  const Shape& in = args.input;
  ReduceShape s;
  if (in.size() == 2) {
    s.outer = args.batch * in[0];
    s.channels = in[1];
  } else {
    s.outer = args.batch;
    s.channels = in[0];
    s.inner = NumElements(in) / in[0];
  }
  return s;
}

// src (N, ...) -> dst, same shape.
KernelOr MakeEltwise(DeviceOps* ops, const ActivationSpec& spec, const KernelArgs& a) {
  const int64_t n = Count(a, a.input);
  const EltwiseKind kind = EltwiseOf(spec.kind);
  const float slope = kind == EltwiseKind::kLeakyRelu ? spec.slope : 0.0f;
  const float* saved = EltwiseBackwardUsesOutput(kind, slope) ? a.dst : a.src;
  return std::make_unique<FunctionKernel>(
      [=](int64_t) {
        return ops->Run(EltwiseForwardOp{kind, slope, a.src, a.dst}, n);
      },
      [=](int64_t) {
        if (a.diff_src == nullptr) return absl::OkStatus();
        return ops->Run(EltwiseBackwardOp{kind, slope, saved, a.diff_dst, a.diff_src}, n);
      });
}

// src (N, ..., D) -> dst, softmax over the last dimension. Saves: dst.
KernelOr MakeSoftmax(DeviceOps* ops, const KernelArgs& a) {
  const int64_t d = a.input.back();
  const int64_t rows = Count(a, a.input) / d;
  return std::make_unique<FunctionKernel>(
      [=](int64_t) {
        return ops->Run(SoftmaxForwardOp{a.src, a.dst, d}, rows);
      },
      [=](int64_t) {
        if (a.diff_src == nullptr) return absl::OkStatus();
        return ops->Run(SoftmaxBackwardOp{a.dst, a.diff_dst, a.diff_src, d}, rows);
      });
}

// src (N, ...) -> dst with a learned slope per channel ("slope"). Saves: src.
KernelOr MakePrelu(DeviceOps* ops, const KernelArgs& a) {
  const int64_t n = Count(a, a.input);
  const ReduceShape s = PreluShape(a);
  const float* w = a.value("slope");
  float* dw = a.grad("slope");
  if (w == nullptr) return absl::InternalError("prelu: no parameter named slope is bound");
  return std::make_unique<FunctionKernel>(
      [=](int64_t) {
        return ops->Run(PreluForwardOp{a.src, w, a.dst, s.channels, s.inner}, n);
      },
      [=](int64_t) -> absl::Status {
        RETURN_IF_ERROR(ops->ChannelSum(PreluSlopeGradTerm{a.src, a.diff_dst}, s, 1.0f, dw));
        if (a.diff_src == nullptr) return absl::OkStatus();
        return ops->Run(PreluBackwardDataOp{a.src, w, a.diff_dst, a.diff_src, s.channels, s.inner},
                        n);
      });
}

absl::Status CopyBack(DeviceOps* ops, const KernelArgs& a, int64_t n) {
  if (a.diff_src == nullptr) return absl::OkStatus();
  return ops->CopyOnDevice(a.diff_src, a.diff_dst, static_cast<size_t>(n) * sizeof(float));
}

// Max or average pooling, (N, C, H, W) -> (N, C, OH, OW). Saves (max, training): the arg max
// of every window (int32, one per output).
class PoolKernel : public Kernel {
 public:
  PoolKernel(DeviceOps* ops, const PoolGeometry& g, bool max, const KernelArgs& a)
      : ops_(ops), g_(g), max_(max), a_(a) {}
  absl::Status Init() {
    if (max_ && a_.mode == Mode::kTrain) {
      ASSIGN_OR_RETURN(argmax_, ops_->Allocate(static_cast<size_t>(outputs()) * sizeof(int32_t)));
    }
    return absl::OkStatus();
  }
  absl::Status Forward(int64_t) override {
    return ops_->Run(PoolForwardOp{g_, max_, a_.src, a_.dst, argmax_.ints()}, outputs());
  }
  absl::Status Backward() override {
    if (a_.diff_src == nullptr) return absl::OkStatus();
    return ops_->Run(PoolBackwardOp{g_, max_, a_.diff_dst, argmax_.ints(), a_.diff_src},
                     g_.planes * g_.h * g_.w);
  }

 private:
  int64_t outputs() const { return g_.planes * g_.oh * g_.ow; }
  DeviceOps* ops_;
  PoolGeometry g_;
  bool max_;
  KernelArgs a_;
  DeviceBuffer argmax_;
};

// LRN across channels, (N, C, H, W) -> same. Saves (training): s = k + alpha·Σ x² per element.
class LrnKernel : public Kernel {
 public:
  LrnKernel(DeviceOps* ops, const LrnGeometry& g, const KernelArgs& a) : ops_(ops), g_(g), a_(a) {}
  absl::Status Init() {
    if (a_.mode == Mode::kTrain) {
      ASSIGN_OR_RETURN(s_, ops_->Allocate(static_cast<size_t>(count()) * sizeof(float)));
    }
    return absl::OkStatus();
  }
  absl::Status Forward(int64_t) override {
    return ops_->Run(LrnForwardOp{g_, a_.src, a_.dst, s_.floats()}, count());
  }
  absl::Status Backward() override {
    if (a_.diff_src == nullptr) return absl::OkStatus();
    return ops_->Run(LrnBackwardOp{g_, a_.src, s_.floats(), a_.diff_dst, a_.diff_src}, count());
  }

 private:
  int64_t count() const { return Count(a_, a_.input); }
  DeviceOps* ops_;
  LrnGeometry g_;
  KernelArgs a_;
  DeviceBuffer s_;
};

// Batch norm over (N, C, ...) per channel (flat inputs: per feature), as the CPU backend's
// (onednn/batch_norm.cc): batch statistics (population variance) in training, moving the
// running ones; the running ones in evaluation. Saves: src, the batch mean and 1/√(var + ε).
class BatchNormKernel : public Kernel {
 public:
  BatchNormKernel(DeviceOps* ops, const BatchNormSpec& spec, const KernelArgs& a)
      : ops_(ops), spec_(spec), a_(a) {
    shape_.outer = a.batch;
    shape_.channels = a.input[0];
    shape_.inner = NumElements(a.input) / a.input[0];
  }
  absl::Status Init() {
    for (const char* name : {"scale", "shift", "running_mean", "running_var"}) {
      if (a_.value(name) == nullptr) {
        return absl::InternalError(absl::StrCat("batch_norm: no parameter named ", name));
      }
    }
    ASSIGN_OR_RETURN(stats_, ops_->Allocate(3 * static_cast<size_t>(channels()) * sizeof(float)));
    return absl::OkStatus();
  }

  absl::Status Forward(int64_t) override {
    const int64_t c = channels();
    const float* mean = a_.value("running_mean");
    if (a_.mode == Mode::kTrain) {
      const float inv_m = 1.0f / static_cast<float>(per_channel());
      RETURN_IF_ERROR(ops_->ChannelSum(ValueTerm{a_.src}, shape_, inv_m, batch_mean()));
      RETURN_IF_ERROR(
          ops_->ChannelSum(CenteredSquareTerm{a_.src, batch_mean()}, shape_, inv_m, batch_var()));
      RETURN_IF_ERROR(ops_->Run(BnInvStdOp{batch_var(), inv(), spec_.epsilon}, c));
      mean = batch_mean();
    } else {
      RETURN_IF_ERROR(ops_->Run(BnInvStdOp{a_.value("running_var"), inv(), spec_.epsilon}, c));
    }
    RETURN_IF_ERROR(ops_->Run(BnNormalizeOp{a_.src, a_.dst, mean, inv(), a_.value("scale"),
                                            a_.value("shift"), c, shape_.inner},
                              Count(a_, a_.input)));
    if (a_.mode == Mode::kEval) return absl::OkStatus();
    const int64_t m = per_channel();
    const float unbias = m > 1 ? static_cast<float>(m) / static_cast<float>(m - 1) : 1.0f;
    return ops_->Run(BnRunningOp{a_.value("running_mean"), a_.value("running_var"), batch_mean(),
                                 batch_var(), spec_.momentum, unbias},
                     c);
  }

  absl::Status Backward() override {
    float* dscale = a_.grad("scale");
    float* dshift = a_.grad("shift");
    RETURN_IF_ERROR(ops_->ChannelSum(ValueTerm{a_.diff_dst}, shape_, 1.0f, dshift));
    RETURN_IF_ERROR(ops_->ChannelSum(BnScaleGradTerm{a_.src, a_.diff_dst, batch_mean(), inv()},
                                     shape_, 1.0f, dscale));
    if (a_.diff_src == nullptr) return absl::OkStatus();
    const float inv_m = 1.0f / static_cast<float>(per_channel());
    return ops_->Run(BnBackwardDataOp{a_.src, a_.diff_dst, batch_mean(), inv(), a_.value("scale"),
                                      dscale, dshift, a_.diff_src, inv_m, channels(), shape_.inner},
                     Count(a_, a_.input));
  }

 private:
  int64_t channels() const { return shape_.channels; }
  int64_t per_channel() const { return shape_.outer * shape_.inner; }
  float* batch_mean() const { return stats_.floats(); }
  float* batch_var() const { return stats_.floats() + channels(); }
  float* inv() const { return stats_.floats() + 2 * channels(); }

  DeviceOps* ops_;
  BatchNormSpec spec_;
  KernelArgs a_;
  ReduceShape shape_;
  DeviceBuffer stats_;  // batch mean, batch variance, 1/√(var + ε): C each
};

PoolGeometry PoolGeometryOf(const Pool2dSpec& spec, const KernelArgs& a) {
  PoolGeometry g;
  g.planes = a.batch * a.input[0];
  g.h = a.input[1];
  g.w = a.input[2];
  g.oh = a.output[1];
  g.ow = a.output[2];
  g.kernel = spec.kernel;
  g.stride = spec.stride > 0 ? spec.stride : spec.kernel;
  g.pad = spec.padding;
  return g;
}

}  // namespace

LrnWindow LrnWindowOf(int size) {
  LrnWindow w;
  w.before = (size - 1) / 2;
  w.after = (size - 1) / 2;
  return w;
}

KernelOr MakeActivation(DeviceOps* ops, const ActivationSpec& spec, const KernelArgs& args) {
  switch (spec.kind) {
    case Activation::kSoftmax:
      return MakeSoftmax(ops, args);
    case Activation::kPrelu:
      return MakePrelu(ops, args);
    default:
      return MakeEltwise(ops, spec, args);
  }
}

// src (N, ...) -> dst: 1 where src > threshold, else 0; backward passes diff_dst through.
KernelOr MakeThreshold(DeviceOps* ops, const ThresholdSpec& spec, const KernelArgs& a) {
  const int64_t n = Count(a, a.input);
  const float t = spec.threshold;
  return std::make_unique<FunctionKernel>(
      [=](int64_t) {
        return ops->Run(ThresholdOp{a.src, a.dst, t}, n);
      },
      [=](int64_t) { return CopyBack(ops, a, n); });
}

// (N, C, H, W) -> (N, C·H·W): the same bytes.
KernelOr MakeFlatten(DeviceOps* ops, const KernelArgs& a) {
  const int64_t n = Count(a, a.input);
  return std::make_unique<FunctionKernel>(
      [=](int64_t) {
        return ops->CopyOnDevice(a.dst, a.src, static_cast<size_t>(n) * sizeof(float));
      },
      [=](int64_t) { return CopyBack(ops, a, n); });
}

// Inverted dropout with the CPU backend's masks (util/counter_rng.h): the forward pass of step
// s draws from (seed, layer, s); the backward pass draws the same mask again.
KernelOr MakeDropout(DeviceOps* ops, const DropoutSpec& spec, const KernelArgs& a) {
  if (!(spec.rate >= 0.0f && spec.rate < 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dropout rate must be in [0, 1), got ", spec.rate));
  }
  const int64_t n = Count(a, a.input);
  const float rate = spec.rate;
  const bool identity = a.mode == Mode::kEval || rate == 0.0f;
  auto key = std::make_shared<uint64_t>(0);
  return std::make_unique<FunctionKernel>(
      [=](int64_t step) {
        if (identity) {
          return ops->CopyOnDevice(a.dst, a.src, static_cast<size_t>(n) * sizeof(float));
        }
        *key = StreamKey(a.seed, static_cast<uint64_t>(a.layer), static_cast<uint64_t>(step));
        return ops->Run(DropoutOp{a.src, a.dst, *key, rate}, n);
      },
      [=](int64_t) {
        if (a.diff_src == nullptr) return absl::OkStatus();
        if (identity) return CopyBack(ops, a, n);
        return ops->Run(DropoutOp{a.diff_dst, a.diff_src, *key, rate}, n);
      });
}

KernelOr MakePool2d(DeviceOps* ops, const Pool2dSpec& spec, const KernelArgs& args) {
  auto kernel = std::make_unique<PoolKernel>(ops, PoolGeometryOf(spec, args), spec.max, args);
  RETURN_IF_ERROR(kernel->Init());
  return kernel;
}

KernelOr MakeLrn(DeviceOps* ops, const LrnSpec& spec, const KernelArgs& args) {
  LrnGeometry g;
  g.channels = args.input[0];
  g.plane = args.input[1] * args.input[2];
  const LrnWindow w = LrnWindowOf(spec.size);
  g.before = w.before;
  g.after = w.after;
  g.alpha = spec.alpha;
  g.beta = spec.beta;
  g.k = spec.k;
  auto kernel = std::make_unique<LrnKernel>(ops, g, args);
  RETURN_IF_ERROR(kernel->Init());
  return kernel;
}

KernelOr MakeBatchNorm(DeviceOps* ops, const BatchNormSpec& spec, const KernelArgs& args) {
  if (!(spec.momentum >= 0.0f && spec.momentum <= 1.0f) || !(spec.epsilon > 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_norm momentum must be in [0, 1] and epsilon > 0, got ", spec.momentum,
                     " and ", spec.epsilon));
  }
  if (args.sync_batch_norm != nullptr) {
    return absl::UnimplementedError(
        "training.sync_batch_norm is not supported on the gpu backend yet; train without it or "
        "on the cpu");
  }
  auto kernel = std::make_unique<BatchNormKernel>(ops, spec, args);
  RETURN_IF_ERROR(kernel->Init());
  return kernel;
}

int64_t LayerBytes(const LayerSpec& layer, const KernelArgs& args) {
  const bool train = args.mode == Mode::kTrain;
  if (const auto* p = std::get_if<Pool2dSpec>(&layer)) {
    return p->max && train ? Count(args, args.output) * static_cast<int64_t>(sizeof(int32_t)) : 0;
  }
  if (std::holds_alternative<LrnSpec>(layer)) {
    return train ? Count(args, args.input) * static_cast<int64_t>(sizeof(float)) : 0;
  }
  if (std::holds_alternative<BatchNormSpec>(layer)) {
    return 3 * args.input[0] * static_cast<int64_t>(sizeof(float));
  }
  return 0;
}

}  // namespace cajal::device
