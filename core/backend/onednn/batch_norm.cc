// Batch normalization on oneDNN, per channel for images and per feature for flat inputs.
//
//   src (N, C, H, W) or (N, C) -> dst, same shape:
//     dst = scale[c] · (src − mean[c]) / √(var[c] + epsilon) + shift[c]
//   Training: mean and var are the batch's (population variance over N·H·W values), and after
//   each forward the running statistics move towards them:
//     running_mean = momentum·running_mean + (1 − momentum)·mean
//     running_var  = momentum·running_var  + (1 − momentum)·var·m/(m − 1),   m = N·H·W
//   i.e. PyTorch's update with its momentum = 1 − ours, including its unbiased running variance
//   (with m = 1 the biased one, which is then 0). Evaluation normalizes with the running
//   statistics (use_global_stats) and changes nothing.
//   Saves for backward: its input and the batch mean and variance.
// Parameters (DeclareParams order): scale, shift (trainable; use_scale | use_shift), then
// running_mean and running_var, buffers the optimizer skips and model files keep.
#include "absl/strings/str_cat.h"
#include "core/backend/onednn/kernels.h"
#include "core/backend/onednn/onednn_util.h"
#include "core/util/status_macros.h"

namespace cajal::onednn {
namespace {

using dnnl::memory;

class BatchNormKernel : public PrimitiveKernel {
 public:
  BatchNormKernel(float momentum, int64_t per_channel, const KernelArgs& args)
      : momentum_(momentum),
        unbias_(per_channel > 1 ? static_cast<float>(per_channel) / (per_channel - 1) : 1.0f),
        channels_(args.input[0]),
        running_mean_(args.value("running_mean")),
        running_var_(args.value("running_var")) {}

  absl::Status Forward(int64_t step) override {
    RETURN_IF_ERROR(PrimitiveKernel::Forward(step));
    if (batch_mean_ == nullptr) return absl::OkStatus();  // evaluation
    const float m = momentum_;
    for (int64_t c = 0; c < channels_; ++c) {
      running_mean_[c] = m * running_mean_[c] + (1 - m) * batch_mean_[c];
      running_var_[c] = m * running_var_[c] + (1 - m) * batch_var_[c] * unbias_;
    }
    return absl::OkStatus();
  }

  // The batch statistics the forward primitive writes (training only).
  void set_batch_stats(const float* mean, const float* var) {
    batch_mean_ = mean;
    batch_var_ = var;
  }

 private:
  float momentum_;
  float unbias_;
  int64_t channels_;
  float* running_mean_;
  float* running_var_;
  const float* batch_mean_ = nullptr;
  const float* batch_var_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> MakeBatchNorm(const BatchNormSpec& spec,
                                                      const KernelArgs& args) {
  if (!(spec.momentum >= 0.0f && spec.momentum <= 1.0f) || !(spec.epsilon > 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_norm momentum must be in [0, 1] and epsilon > 0, got ", spec.momentum,
                     " and ", spec.epsilon));
  }
  if (args.mode == Mode::kTrain && args.sync_batch_norm != nullptr) {
    return MakeSyncBatchNorm(spec, args);
  }
  const memory::desc md = PlainDesc(BatchDims(args.batch, args.input));
  const memory::desc stat_md = PlainDesc({args.input[0]});
  const int64_t per_channel = args.batch * NumElements(args.input) / args.input[0];
  const bool train = args.mode == Mode::kTrain;
  using flags = dnnl::normalization_flags;
  const flags affine = flags::use_scale | flags::use_shift;
  auto kernel = std::make_unique<BatchNormKernel>(spec.momentum, per_channel, args);
  try {
    const dnnl::batch_normalization_forward::primitive_desc fwd_pd(
        dnnl::batch_normalization_forward::desc(
            train ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference, md,
            spec.epsilon, train ? affine : affine | flags::use_global_stats),
        Engine());
    const memory src = Wrap(md, args.src);
    const memory scale = Wrap(stat_md, args.value("scale"));
    const memory shift = Wrap(stat_md, args.value("shift"));
    memory mean, var;
    if (train) {
      mean = memory(fwd_pd.mean_desc(), Engine());
      var = memory(fwd_pd.variance_desc(), Engine());
      kernel->owned.push_back(mean);
      kernel->owned.push_back(var);
      kernel->set_batch_stats(static_cast<float*>(mean.get_data_handle()),
                              static_cast<float*>(var.get_data_handle()));
    } else {
      mean = Wrap(stat_md, args.value("running_mean"));
      var = Wrap(stat_md, args.value("running_var"));
    }
    kernel->forward.push_back({dnnl::batch_normalization_forward(fwd_pd),
                               {{DNNL_ARG_SRC, src},
                                {DNNL_ARG_DST, Wrap(md, args.dst)},
                                {DNNL_ARG_SCALE, scale},
                                {DNNL_ARG_SHIFT, shift},
                                {DNNL_ARG_MEAN, mean},
                                {DNNL_ARG_VARIANCE, var}}});
    if (!train) return kernel;

    // The scale and shift gradients need the full backward even when the input needs none.
    memory diff_src;
    if (args.diff_src != nullptr) {
      diff_src = Wrap(md, args.diff_src);
    } else {
      diff_src = memory(md, Engine());
      kernel->owned.push_back(diff_src);
    }
    const dnnl::batch_normalization_backward::primitive_desc bwd_pd(
        dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, md, md, spec.epsilon,
                                                 affine),
        Engine(), fwd_pd);
    kernel->backward.push_back({dnnl::batch_normalization_backward(bwd_pd),
                                {{DNNL_ARG_SRC, src},
                                 {DNNL_ARG_MEAN, mean},
                                 {DNNL_ARG_VARIANCE, var},
                                 {DNNL_ARG_DIFF_DST, Wrap(md, args.diff_dst)},
                                 {DNNL_ARG_SCALE, scale},
                                 {DNNL_ARG_SHIFT, shift},
                                 {DNNL_ARG_DIFF_SRC, diff_src},
                                 {DNNL_ARG_DIFF_SCALE, Wrap(stat_md, args.grad("scale"))},
                                 {DNNL_ARG_DIFF_SHIFT, Wrap(stat_md, args.grad("shift"))}}});
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, "batch_norm");
  }
  return kernel;
}

}  // namespace cajal::onednn
