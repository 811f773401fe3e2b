// The CUDA backend's entry points for the device registry (backend/registry.cc) and the NCCL
// collective. No CUDA header is included here: registry.cc is compiled by the host compiler
// alone, in every build.
//
// Built only with CAJAL_HAVE_CUDA (CMake's CAJAL_CUDA, docs/gpu.md). The binary links the CUDA
// runtime, cuBLAS and cuDNN but never the driver library, so it starts on machines without a
// driver or GPU: VisibleDeviceCount() is then 0 and every job runs on the CPU.
#ifndef CAJAL_CORE_BACKEND_CUDA_CUDA_BACKEND_H_
#define CAJAL_CORE_BACKEND_CUDA_CUDA_BACKEND_H_

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/backend/registry.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*

namespace cajal::cuda {

// CUDA devices this process can use; 0 when cudaGetDeviceCount fails (no driver, no device,
// CUDA_VISIBLE_DEVICES empty). Asked once per process.
int VisibleDeviceCount();

// The backend of visible GPU `index` ("gpu:<index>"), made on first use and kept for the
// process; thread-safe. kFailedPrecondition when the device cannot be used (the message
// carries CUDA's), kInvalidArgument for an index out of range.
absl::StatusOr<Backend*> GetBackend(int index);

// The device's name and memory (cudaGetDeviceProperties, cudaMemGetInfo). Makes the device's
// context in this process when it has none.
absl::StatusOr<GpuInfo> GetGpuInfo(int index);

// The stream on which the calling thread's work for GPU `index` runs, in order (kernels,
// copies, cuBLAS and cuDNN calls): the NCCL collective enqueues its reductions behind it.
absl::StatusOr<CUstream_st*> ThreadStream(int index);

}  // namespace cajal::cuda

#endif  // CAJAL_CORE_BACKEND_CUDA_CUDA_BACKEND_H_
