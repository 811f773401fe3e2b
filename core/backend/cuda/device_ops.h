// The operations the device backend (device_backend.h) computes with: memory and copies, a
// row-major GEMM, element operations (element_ops.h), per-channel sums, and the convolution.
// The CUDA backend implements them on a GPU (cuda_ops.cc: cudaMalloc, cuBLAS, our kernels,
// cuDNN); HostOps (host_ops.h) implements them on the CPU with plain loops, so every layer
// algorithm of the CUDA backend — the order of its GEMMs and element operations, their
// offsets, strides and transposes — runs and is checked by the CPU tests.
//
//   GemmArgs g;                       // y (n × units) = x (n × in) · wᵀ, w (units × in)
//   g.trans_b = true;
//   g.m = n, g.n = units, g.k = in;
//   g.a = x, g.lda = in, g.b = w, g.ldb = in, g.c = y, g.ldc = units;
//   RETURN_IF_ERROR(ops.Gemm(g));
//   RETURN_IF_ERROR(ops.Run(BiasOp{y, b, /*channels=*/units, /*inner=*/1, /*add=*/true},
//                           n * units));
//
// Ordering: compute calls run in the order they are made (one CUDA stream per host thread),
// asynchronously to the host; CopyToHost, CopyToDevice, SumOfSquares and Synchronize wait.
// Errors name the library call that failed; running out of device memory is
// kResourceExhausted.
#ifndef CAJAL_CORE_BACKEND_CUDA_DEVICE_OPS_H_
#define CAJAL_CORE_BACKEND_CUDA_DEVICE_OPS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/backend/cuda/element_ops.h"

namespace cajal::device {

// C (m × n) = alpha·op(A)·op(B) + beta·C, every matrix row-major with the given leading
// dimension (row stride): op(A) is m × k (A stored k × m when trans_a), op(B) is k × n.
struct GemmArgs {
  bool trans_a = false;
  bool trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float beta = 0.0f;
  float* c = nullptr;
  int64_t ldc = 0;
};

class DeviceOps {
 public:
  virtual ~DeviceOps() = default;

  // ---- Memory (Backend's contract: zero-filled, kResourceExhausted when it does not fit).
  virtual absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) = 0;
  virtual absl::StatusOr<DeviceBuffer> AllocateHost(size_t bytes) = 0;
  virtual absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual absl::Status CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  // Device to device, in order with the compute calls, without waiting.
  virtual absl::Status CopyOnDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual absl::Status Synchronize() = 0;
  virtual absl::StatusOr<std::unique_ptr<BatchUpload>> MakeBatchUpload(
      const std::vector<size_t>& part_bytes) = 0;

  // ---- Compute.
  virtual absl::Status Gemm(const GemmArgs& g) = 0;
  // op(i) for every i in [0, n).
  virtual absl::Status Run(const ElementOp& op, int64_t n) = 0;
  // out[c] = alpha·Σ term(idx, c) over the shape's elements of channel c (written, not
  // accumulated), summed in double.
  virtual absl::Status ChannelSum(const ReduceTerm& term, const ReduceShape& shape, float alpha,
                                  float* out) = 0;
  // Σ x[i]² in double, as a host value.
  virtual absl::StatusOr<double> SumOfSquares(const float* x, int64_t n) = 0;

  // ---- Library layers. kUnimplemented where the implementation has none (HostOps).
  virtual absl::StatusOr<std::unique_ptr<Kernel>> MakeConv2d(const Conv2dSpec& spec,
                                                             const KernelArgs& args) = 0;
  // What MakeConv2d would allocate (its workspace), without allocating it.
  virtual int64_t Conv2dBytes(const Conv2dSpec& spec, const KernelArgs& args) const = 0;
};

}  // namespace cajal::device

#endif  // CAJAL_CORE_BACKEND_CUDA_DEVICE_OPS_H_
