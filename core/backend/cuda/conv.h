// The CUDA backend's convolution on cuDNN (conv.cc).
#ifndef CAJAL_CORE_BACKEND_CUDA_CONV_H_
#define CAJAL_CORE_BACKEND_CUDA_CONV_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/backend/cuda/device_ops.h"

namespace cajal::cuda {

// A conv2d kernel on GPU `device`; `ops` runs its bias steps.
absl::StatusOr<std::unique_ptr<Kernel>> MakeCudnnConv2d(int device, device::DeviceOps* ops,
                                                        const Conv2dSpec& spec,
                                                        const KernelArgs& args);
// The workspace MakeCudnnConv2d would allocate (cuDNN's heuristics, no allocation); 0 when the
// query fails (MakeCudnnConv2d then reports why).
int64_t CudnnConv2dBytes(int device, const Conv2dSpec& spec, const KernelArgs& args);

}  // namespace cajal::cuda

#endif  // CAJAL_CORE_BACKEND_CUDA_CONV_H_
