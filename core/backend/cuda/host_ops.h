// DeviceOps on the CPU: an emulation of the device, for testing the device backend's layer
// algorithms without a GPU. Memory is host memory (64-byte aligned, zero-filled), copies are
// memcpy, the GEMM is a plain triple loop summing in double, element operations and channel
// sums are loops over the same functors the CUDA kernels run. Batch uploads rotate through two
// sets of host buffers as the CUDA ones do. No convolution (the CUDA backend's runs on cuDNN):
// MakeConv2d is kUnimplemented.
//
// Slow by design (no threads, no blocking); for tests of small shapes.
#ifndef CAJAL_CORE_BACKEND_CUDA_HOST_OPS_H_
#define CAJAL_CORE_BACKEND_CUDA_HOST_OPS_H_

#include "core/backend/cuda/device_ops.h"

namespace cajal::device {

class HostOps : public DeviceOps {
 public:
  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override;
  absl::StatusOr<DeviceBuffer> AllocateHost(size_t bytes) override { return Allocate(bytes); }
  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override;
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override;
  absl::Status CopyOnDevice(void* dst, const void* src, size_t bytes) override;
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::StatusOr<std::unique_ptr<BatchUpload>> MakeBatchUpload(
      const std::vector<size_t>& part_bytes) override;

  absl::Status Gemm(const GemmArgs& g) override;
  absl::Status Run(const ElementOp& op, int64_t n) override;
  absl::Status ChannelSum(const ReduceTerm& term, const ReduceShape& shape, float alpha,
                          float* out) override;
  absl::StatusOr<double> SumOfSquares(const float* x, int64_t n) override;

  absl::StatusOr<std::unique_ptr<Kernel>> MakeConv2d(const Conv2dSpec& spec,
                                                     const KernelArgs& args) override;
  int64_t Conv2dBytes(const Conv2dSpec&, const KernelArgs&) const override { return 0; }
};

// Checks a GEMM's sizes and leading dimensions (shared with the CUDA implementation):
// kInvalidArgument naming the bad value.
absl::Status CheckGemm(const GemmArgs& g);

}  // namespace cajal::device

#endif  // CAJAL_CORE_BACKEND_CUDA_HOST_OPS_H_
