// The CUDA backend's plumbing: statuses from CUDA, cuBLAS and cuDNN return codes, and each
// host thread's CUDA state for a device. Included only by the CUDA backend's sources.
#ifndef CAJAL_CORE_BACKEND_CUDA_CUDA_UTIL_H_
#define CAJAL_CORE_BACKEND_CUDA_CUDA_UTIL_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cajal::cuda {

// OK, or an error naming `call` and CUDA's message: kResourceExhausted for an allocation that
// failed (out of device or pinned memory), kFailedPrecondition when there is no usable driver
// or device, kInternal otherwise. Clears CUDA's last (non-sticky) error.
absl::Status CudaStatus(cudaError_t error, const char* call);
// The same for cuBLAS (CUBLAS_STATUS_ALLOC_FAILED: kResourceExhausted) and cuDNN (its
// allocation failures: kResourceExhausted; the message adds cudnnGetLastErrorString's).
absl::Status CublasStatus(cublasStatus_t status, const char* call);
absl::Status CudnnStatus(cudnnStatus_t status, const char* call);

// cuBLAS, loaded (dlopen of libcublas.so.<major>) when the first GPU context is made rather
// than linked: linked, its cuBLASLt dependency's start-up costs ~0.9 s at every start of every
// process of a build with the CUDA backend, GPU or not (measured here with
// `LD_PRELOAD=libcublasLt.so.13 /bin/true`: 0.91 s against 0.00), which every CPU job and
// every `cajal` command would pay. The functions the backend calls:
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasGetStatusName) status_name = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};
// Loaded once per process; kFailedPrecondition naming the library when it cannot be.
absl::StatusOr<const CublasApi*> Cublas();

// One host thread's CUDA state for one device: where that thread's device work is ordered.
// Made on the thread's first use of the device, destroyed when the thread ends.
struct ThreadContext {
  int device = 0;
  cudaStream_t stream = nullptr;       // kernels, GEMMs, convolutions, copies
  cudaStream_t copy_stream = nullptr;  // batch uploads (BatchUpload)
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;    // made by Cudnn() on first use
  double* partials = nullptr;       // device: SumOfSquares' per-block sums
  double* host_partials = nullptr;  // pinned
  ~ThreadContext();
};

// The number of per-block sums SumOfSquares reduces on the host.
inline constexpr int kSquareBlocks = 256;

// Makes `device` the calling thread's current device and returns the thread's context for it.
absl::StatusOr<ThreadContext*> Context(int device);
// The context's cuDNN handle, made (and bound to its stream) on first use.
absl::StatusOr<cudnnHandle_t> Cudnn(ThreadContext* context);

}  // namespace cajal::cuda

#endif  // CAJAL_CORE_BACKEND_CUDA_CUDA_UTIL_H_
