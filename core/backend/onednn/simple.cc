// Layers that need no oneDNN primitive: threshold (TLU), flatten and dropout.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/backend/activation_math.h"
#include "core/backend/onednn/kernels.h"
#include "core/backend/onednn/onednn_util.h"
#include "core/util/counter_rng.h"

namespace cajal::onednn {
namespace {

// src (N, ...) -> dst: 1 where src > threshold, else 0. Backward passes diff_dst through
// unchanged (the straight-through rule that gives Rosenblatt's update; see ThresholdSpec).
class ThresholdKernel : public Kernel {
 public:
  ThresholdKernel(float threshold, const KernelArgs& args)
      : threshold_(threshold), args_(args), count_(args.batch * NumElements(args.input)) {}
  absl::Status Forward(int64_t) override {
    const float* src = args_.src;
    float* dst = args_.dst;
    for (int64_t i = 0; i < count_; ++i) dst[i] = ThresholdForward(src[i], threshold_);
    return absl::OkStatus();
  }
  absl::Status Backward() override {
    if (args_.diff_src != nullptr) {
      std::memcpy(args_.diff_src, args_.diff_dst, count_ * sizeof(float));
    }
    return absl::OkStatus();
  }

 private:
  float threshold_;
  KernelArgs args_;
  int64_t count_;
};

// (N, C, H, W) -> (N, C·H·W): the same bytes.
class CopyKernel : public Kernel {
 public:
  explicit CopyKernel(const KernelArgs& args)
      : args_(args), count_(args.batch * NumElements(args.input)) {}
  absl::Status Forward(int64_t) override {
    std::memcpy(args_.dst, args_.src, count_ * sizeof(float));
    return absl::OkStatus();
  }
  absl::Status Backward() override {
    if (args_.diff_src != nullptr) {
      std::memcpy(args_.diff_src, args_.diff_dst, count_ * sizeof(float));
    }
    return absl::OkStatus();
  }

 private:
  KernelArgs args_;
  int64_t count_;
};

// Inverted dropout: in training, dst = src · mask with mask ∈ {0, 1/(1 − rate)} drawn from
// (seed, layer, step, index) by the counter-based generator (util/counter_rng.h) the CUDA
// backend draws from too, so a step is reproducible on either; saves the mask for backward.
class DropoutKernel : public Kernel {
 public:
  DropoutKernel(float rate, const KernelArgs& args)
      : rate_(rate),
        args_(args),
        count_(args.batch * NumElements(args.input)),
        mask_(args.mode == Mode::kTrain ? count_ : 0) {}
  absl::Status Forward(int64_t step) override {
    if (args_.mode == Mode::kEval || rate_ == 0.0f) {
      std::memcpy(args_.dst, args_.src, count_ * sizeof(float));
      return absl::OkStatus();
    }
    const uint64_t key =
        StreamKey(args_.seed, static_cast<uint64_t>(args_.layer), static_cast<uint64_t>(step));
    for (int64_t i = 0; i < count_; ++i) {
      mask_[i] = DropoutScale(key, static_cast<uint64_t>(i), rate_);
      args_.dst[i] = args_.src[i] * mask_[i];
    }
    return absl::OkStatus();
  }
  absl::Status Backward() override {
    if (args_.diff_src == nullptr) return absl::OkStatus();
    if (rate_ == 0.0f) {
      std::memcpy(args_.diff_src, args_.diff_dst, count_ * sizeof(float));
      return absl::OkStatus();
    }
    for (int64_t i = 0; i < count_; ++i) args_.diff_src[i] = args_.diff_dst[i] * mask_[i];
    return absl::OkStatus();
  }

 private:
  float rate_;
  KernelArgs args_;
  int64_t count_;
  std::vector<float> mask_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> MakeThreshold(const ThresholdSpec& spec,
                                                      const KernelArgs& args) {
  return std::make_unique<ThresholdKernel>(spec.threshold, args);
}

absl::StatusOr<std::unique_ptr<Kernel>> MakeFlatten(const KernelArgs& args) {
  return std::make_unique<CopyKernel>(args);
}

absl::StatusOr<std::unique_ptr<Kernel>> MakeDropout(const DropoutSpec& spec,
                                                    const KernelArgs& args) {
  if (!(spec.rate >= 0.0f && spec.rate < 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dropout rate must be in [0, 1), got ", spec.rate));
  }
  return std::make_unique<DropoutKernel>(spec.rate, args);
}

}  // namespace cajal::onednn
