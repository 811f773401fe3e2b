// The CUDA kernels of kernels.cu, as plain host functions (callable from code the host
// compiler builds). Each enqueues its work on `stream` and returns the launch's error.
#ifndef CAJAL_CORE_BACKEND_CUDA_LAUNCH_H_
#define CAJAL_CORE_BACKEND_CUDA_LAUNCH_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/backend/cuda/element_ops.h"

namespace cajal::cuda {

// op(i) for every i in [0, n), one GPU thread per index (a grid-stride loop).
cudaError_t LaunchElementOp(const device::ElementOp& op, int64_t n, cudaStream_t stream);

// out[c] = alpha·Σ term(idx, c) over channel c's elements of `shape`: one block per channel,
// summed in double, written as float.
cudaError_t LaunchChannelSum(const device::ReduceTerm& term, const device::ReduceShape& shape,
                             float alpha, float* out, cudaStream_t stream);

// partials[b] = Σ x[i]² over block b's share of x, for b < blocks, in double.
cudaError_t LaunchSumOfSquares(const float* x, int64_t n, double* partials, int blocks,
                               cudaStream_t stream);

}  // namespace cajal::cuda

#endif  // CAJAL_CORE_BACKEND_CUDA_LAUNCH_H_
