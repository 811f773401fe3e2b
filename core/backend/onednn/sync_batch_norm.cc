// Synchronized batch normalization (training.sync_batch_norm in data-parallel training): the
// batch statistics are those of every rank's examples together, so N ranks of batch B
// normalize as one process of batch N·B does. oneDNN's primitive computes statistics of its
// own batch only, so this kernel is plain loops with two reductions over the collective.
//
//   src (N, C, H, W) or (N, C) -> dst, per channel c over m = N·H·W values on this rank and
//   M = Σ m over the ranks:
//     forward   mean = Σ x / M, var = Σ x² / M − mean² (sums reduced), x̂ = (x − mean)/√(var+ε),
//               y = scale·x̂ + shift; running statistics as the unsynchronized kernel updates
//               them (var·M/(M − 1) for the running variance)
//     backward  dscale = Σ dy·x̂, dshift = Σ dy over this rank's values (the gradient reducer
//               sums the ranks' parameter gradients); the sums over all ranks G1 = Σ dy and
//               G2 = Σ dy·x̂ give dx = scale/√(var+ε) · (dy − G1/M − x̂·G2/M)
//   Saves for backward: its input, the mean and 1/√(var+ε).
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/onednn/kernels.h"
#include "core/collective/collective.h"
#include "core/util/status_macros.h"

namespace cajal::onednn {
namespace {

class SyncBatchNormKernel : public Kernel {
 public:
  SyncBatchNormKernel(const BatchNormSpec& spec, const KernelArgs& args)
      : spec_(spec),
        args_(args),
        n_(args.batch),
        c_(args.input[0]),
        hw_(NumElements(args.input) / args.input[0]),
        mean_(static_cast<size_t>(c_)),
        inv_std_(static_cast<size_t>(c_)),
        sums_(static_cast<size_t>(2 * c_ + 1)) {}

  absl::Status Forward(int64_t /*step*/) override {
    const float* x = args_.src;
    std::fill(sums_.begin(), sums_.end(), 0.0);
    for (int64_t n = 0; n < n_; ++n) {
      for (int64_t c = 0; c < c_; ++c) {
        const float* p = x + (n * c_ + c) * hw_;
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < hw_; ++i) {
          s += p[i];
          s2 += static_cast<double>(p[i]) * p[i];
        }
        sums_[c] += s;
        sums_[c_ + c] += s2;
      }
    }
    sums_[2 * c_] = static_cast<double>(n_ * hw_);
    RETURN_IF_ERROR(args_.sync_batch_norm->AllReduceSum(sums_.data(), 2 * c_ + 1));
    const double m = sums_[2 * c_];
    const float* scale = args_.value("scale");
    const float* shift = args_.value("shift");
    float* running_mean = args_.value("running_mean");
    float* running_var = args_.value("running_var");
    const float mom = spec_.momentum;
    for (int64_t c = 0; c < c_; ++c) {
      const double mean = sums_[c] / m;
      const double var = std::max(0.0, sums_[c_ + c] / m - mean * mean);
      mean_[c] = static_cast<float>(mean);
      inv_std_[c] = static_cast<float>(1.0 / std::sqrt(var + spec_.epsilon));
      const double unbiased = m > 1 ? var * m / (m - 1) : var;
      running_mean[c] = mom * running_mean[c] + (1 - mom) * static_cast<float>(mean);
      running_var[c] = mom * running_var[c] + (1 - mom) * static_cast<float>(unbiased);
    }
    for (int64_t n = 0; n < n_; ++n) {
      for (int64_t c = 0; c < c_; ++c) {
        const int64_t at = (n * c_ + c) * hw_;
        const float a = scale[c] * inv_std_[c];
        const float b = shift[c] - a * mean_[c];
        for (int64_t i = 0; i < hw_; ++i) args_.dst[at + i] = a * x[at + i] + b;
      }
    }
    return absl::OkStatus();
  }

  absl::Status Backward() override {
    const float* x = args_.src;
    const float* dy = args_.diff_dst;
    std::fill(sums_.begin(), sums_.end(), 0.0);
    for (int64_t n = 0; n < n_; ++n) {
      for (int64_t c = 0; c < c_; ++c) {
        const int64_t at = (n * c_ + c) * hw_;
        double g1 = 0, g2 = 0;
        for (int64_t i = 0; i < hw_; ++i) {
          const double xhat = (x[at + i] - mean_[c]) * inv_std_[c];
          g1 += dy[at + i];
          g2 += dy[at + i] * xhat;
        }
        sums_[c] += g1;
        sums_[c_ + c] += g2;
      }
    }
    // This rank's parameter gradients; the gradient reducer sums them over the ranks.
    float* dscale = args_.grad("scale");
    float* dshift = args_.grad("shift");
    for (int64_t c = 0; c < c_; ++c) {
      dshift[c] = static_cast<float>(sums_[c]);
      dscale[c] = static_cast<float>(sums_[c_ + c]);
    }
    if (args_.diff_src == nullptr) return absl::OkStatus();
    sums_[2 * c_] = static_cast<double>(n_ * hw_);
    RETURN_IF_ERROR(args_.sync_batch_norm->AllReduceSum(sums_.data(), 2 * c_ + 1));
    const double m = sums_[2 * c_];
    const float* scale = args_.value("scale");
    for (int64_t c = 0; c < c_; ++c) {
      const float k = scale[c] * inv_std_[c];
      const float g1 = static_cast<float>(sums_[c] / m);
      const float g2 = static_cast<float>(sums_[c_ + c] / m);
      for (int64_t n = 0; n < n_; ++n) {
        const int64_t at = (n * c_ + c) * hw_;
        for (int64_t i = 0; i < hw_; ++i) {
          const float xhat = (x[at + i] - mean_[c]) * inv_std_[c];
          args_.diff_src[at + i] = k * (dy[at + i] - g1 - xhat * g2);
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  BatchNormSpec spec_;
  KernelArgs args_;
  int64_t n_, c_, hw_;
  std::vector<float> mean_, inv_std_;
  std::vector<double> sums_;  // per channel Σ, Σ², and the count; reused for the gradients
};

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> MakeSyncBatchNorm(const BatchNormSpec& spec,
                                                          const KernelArgs& args) {
  if (args.mode != Mode::kTrain || args.sync_batch_norm == nullptr) {
    return absl::InternalError("synchronized batch norm: training with a collective only");
  }
  for (const char* name : {"scale", "shift", "running_mean", "running_var"}) {
    if (args.value(name) == nullptr) {
      return absl::InternalError(absl::StrCat("batch_norm: no parameter ", name));
    }
  }
  return std::unique_ptr<Kernel>(std::make_unique<SyncBatchNormKernel>(spec, args));
}

}  // namespace cajal::onednn
