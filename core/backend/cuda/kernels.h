// The device backend's kernel makers, one per layer kind, and what each allocates. Each
// validates what it supports, allocates every buffer it needs and returns a kernel whose
// Forward and Backward only issue DeviceOps calls.
#ifndef CAJAL_CORE_BACKEND_CUDA_KERNELS_H_
#define CAJAL_CORE_BACKEND_CUDA_KERNELS_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/backend/cuda/device_ops.h"

namespace cajal::device {

using KernelOr = absl::StatusOr<std::unique_ptr<Kernel>>;

// layers.cc
KernelOr MakeActivation(DeviceOps* ops, const ActivationSpec& spec, const KernelArgs& args);
KernelOr MakeThreshold(DeviceOps* ops, const ThresholdSpec& spec, const KernelArgs& args);
KernelOr MakeFlatten(DeviceOps* ops, const KernelArgs& args);
KernelOr MakeDropout(DeviceOps* ops, const DropoutSpec& spec, const KernelArgs& args);
KernelOr MakePool2d(DeviceOps* ops, const Pool2dSpec& spec, const KernelArgs& args);
KernelOr MakeLrn(DeviceOps* ops, const LrnSpec& spec, const KernelArgs& args);
KernelOr MakeBatchNorm(DeviceOps* ops, const BatchNormSpec& spec, const KernelArgs& args);
int64_t LayerBytes(const LayerSpec& layer, const KernelArgs& args);

// dense.cc
KernelOr MakeDense(DeviceOps* ops, const DenseSpec& spec, const KernelArgs& args);

// recurrent.cc
KernelOr MakeRecurrent(DeviceOps* ops, const RecurrentSpec& spec, const KernelArgs& args);
int64_t RecurrentBytes(const RecurrentSpec& spec, const KernelArgs& args);

// The LRN window around channel c: [c − before, c + after]. Both are (size − 1)/2, rounded
// down: the CPU backend's (oneDNN's) window for every size, so an even size covers size − 1
// channels (tests/unit/device_backend_test.cc checks it against oneDNN).
struct LrnWindow {
  int32_t before = 0, after = 0;
};
LrnWindow LrnWindowOf(int size);

}  // namespace cajal::device

#endif  // CAJAL_CORE_BACKEND_CUDA_KERNELS_H_
