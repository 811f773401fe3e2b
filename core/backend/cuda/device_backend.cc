// The device backend: memory through DeviceOps, each layer kind dispatched to its kernel
// maker, the loss and the optimizer as element operations.
#include "core/backend/cuda/device_backend.h"

#include <variant>

#include "absl/strings/str_cat.h"
#include "core/backend/cuda/host_ops.h"
#include "core/backend/cuda/kernels.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

using device::DeviceOps;

// The loss of a batch: one element operation computes every example's loss, correctness and
// gradient row on the device (loss/loss_math.h, as the CPU's ComputeLoss); the per-example
// values come back to the host and are summed there in example order.
class DeviceLoss : public LossKernel {
 public:
  DeviceLoss(DeviceOps* ops, const LossConfig& config, int64_t max_batch, int64_t d)
      : ops_(ops), config_(config), max_batch_(max_batch), d_(d) {}

  absl::Status Init() {
    const size_t n = static_cast<size_t>(max_batch_);
    ASSIGN_OR_RETURN(device_loss_, ops_->Allocate(n * sizeof(double)));
    ASSIGN_OR_RETURN(device_correct_, ops_->Allocate(n * sizeof(int32_t)));
    ASSIGN_OR_RETURN(host_loss_, ops_->AllocateHost(n * sizeof(double)));
    ASSIGN_OR_RETURN(host_correct_, ops_->AllocateHost(n * sizeof(int32_t)));
    return absl::OkStatus();
  }

  absl::StatusOr<LossOutput> Compute(const float* x, int64_t n, const LossTargets& targets,
                                     double grad_scale, float* grad) override {
    if (n > max_batch_ || n < 0) {
      return absl::InternalError(absl::StrCat(
          "loss: a batch of ", n, " examples, but the kernel was made for ", max_batch_));
    }
    auto* loss = static_cast<double*>(device_loss_.get());
    int32_t* correct = device_correct_.ints();
    RETURN_IF_ERROR(
        ops_->Run(device::LossOp{config_, x, d_, targets, grad_scale, grad, loss, correct}, n));
    RETURN_IF_ERROR(
        ops_->CopyToHost(host_loss_.get(), loss, static_cast<size_t>(n) * sizeof(double)));
    RETURN_IF_ERROR(
        ops_->CopyToHost(host_correct_.get(), correct, static_cast<size_t>(n) * sizeof(int32_t)));
    const auto* l = static_cast<const double*>(host_loss_.get());
    const int32_t* k = host_correct_.ints();
    LossOutput out;
    for (int64_t i = 0; i < n; ++i) {
      out.sum += l[i];
      out.correct += k[i];
    }
    return out;
  }

 private:
  DeviceOps* ops_;
  LossConfig config_;
  int64_t max_batch_;
  int64_t d_;
  DeviceBuffer device_loss_, device_correct_, host_loss_, host_correct_;
};

class DeviceBackend : public Backend {
 public:
  DeviceBackend(std::unique_ptr<DeviceOps> ops, std::string name)
      : ops_(std::move(ops)), name_(std::move(name)) {}

  std::string name() const override { return name_; }
  DeviceKind kind() const override { return DeviceKind::kGpu; }

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override { return ops_->Allocate(bytes); }
  absl::StatusOr<DeviceBuffer> AllocateHost(size_t bytes) override {
    return ops_->AllocateHost(bytes);
  }
  bool host_visible() const override { return false; }
  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    return ops_->CopyToDevice(dst, src, bytes);
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    return ops_->CopyToHost(dst, src, bytes);
  }
  absl::Status Synchronize() override { return ops_->Synchronize(); }
  absl::StatusOr<std::unique_ptr<BatchUpload>> MakeBatchUpload(
      const std::vector<size_t>& part_bytes) override {
    return ops_->MakeBatchUpload(part_bytes);
  }

  absl::StatusOr<std::unique_ptr<Kernel>> MakeKernel(const LayerSpec& layer,
                                                     const KernelArgs& args) override {
    DeviceOps* ops = ops_.get();
    if (const auto* d = std::get_if<DenseSpec>(&layer)) return device::MakeDense(ops, *d, args);
    if (const auto* a = std::get_if<ActivationSpec>(&layer)) {
      return device::MakeActivation(ops, *a, args);
    }
    if (const auto* t = std::get_if<ThresholdSpec>(&layer)) {
      return device::MakeThreshold(ops, *t, args);
    }
    if (std::holds_alternative<FlattenSpec>(layer)) return device::MakeFlatten(ops, args);
    if (const auto* d = std::get_if<DropoutSpec>(&layer)) return device::MakeDropout(ops, *d, args);
    if (const auto* r = std::get_if<RecurrentSpec>(&layer)) {
      return device::MakeRecurrent(ops, *r, args);
    }
    if (const auto* c = std::get_if<Conv2dSpec>(&layer)) return ops->MakeConv2d(*c, args);
    if (const auto* p = std::get_if<Pool2dSpec>(&layer)) return device::MakePool2d(ops, *p, args);
    if (const auto* n = std::get_if<LrnSpec>(&layer)) return device::MakeLrn(ops, *n, args);
    if (const auto* b = std::get_if<BatchNormSpec>(&layer)) {
      return device::MakeBatchNorm(ops, *b, args);
    }
    return absl::UnimplementedError(
        absl::StrCat("the ", name_, " backend cannot run ", LayerKindName(layer), " layers"));
  }

  absl::StatusOr<std::unique_ptr<LossKernel>> MakeLoss(const LossConfig& config, int64_t max_batch,
                                                       int64_t d) override {
    auto loss =
        std::make_unique<DeviceLoss>(ops_.get(), config, std::max<int64_t>(max_batch, 1), d);
    RETURN_IF_ERROR(loss->Init());
    return std::unique_ptr<LossKernel>(std::move(loss));
  }

  int64_t KernelBytes(const LayerSpec& layer, const KernelArgs& args) const override {
    if (const auto* c = std::get_if<Conv2dSpec>(&layer)) return ops_->Conv2dBytes(*c, args);
    if (const auto* r = std::get_if<RecurrentSpec>(&layer)) {
      return device::RecurrentBytes(*r, args);
    }
    return device::LayerBytes(layer, args);
  }

  absl::StatusOr<double> SumOfSquares(const float* x, int64_t n) override {
    return ops_->SumOfSquares(x, n);
  }
  absl::Status Scale(float* x, int64_t n, float a) override {
    return ops_->Run(device::ScaleOp{x, a}, n);
  }
  absl::Status ApplyUpdate(const UpdateParams& u, float* p, const float* g, float* s0, float* s1,
                           int64_t n) override {
    if (u.kind == OptimizerKind::kHessianFree) {
      return absl::InvalidArgumentError("hessian_free has no element-wise update");
    }
    return ops_->Run(device::UpdateOp{u, p, g, s0, s1}, n);
  }

 private:
  std::unique_ptr<DeviceOps> ops_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Backend> MakeDeviceBackend(std::unique_ptr<device::DeviceOps> ops,
                                           std::string name) {
  return std::make_unique<DeviceBackend>(std::move(ops), std::move(name));
}

std::unique_ptr<Backend> MakeEmulatedDeviceBackend() {
  return MakeDeviceBackend(std::make_unique<device::HostOps>(), "emulated-gpu");
}

}  // namespace cajal
