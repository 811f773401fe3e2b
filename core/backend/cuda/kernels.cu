// The CUDA backend's own kernels: one generic element kernel instantiated for every element
// operation (element_ops.h), a per-channel sum, and the blocks of a sum of squares. The math
// lives in the functors, which the CPU tests run too; what is here is only how GPU threads
// walk the indices.
#include <algorithm>
#include <variant>

#include "core/backend/cuda/launch.h"

namespace cajal::cuda {
namespace {

constexpr int kThreads = 256;
// Grid-stride loops cover any n with at most this many blocks.
constexpr int64_t kMaxBlocks = 1 << 16;

int BlocksFor(int64_t n) {
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
}

template <class Op>
__global__ void ForEachKernel(Op op, int64_t n) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    op(i);
  }
}

// Sums partial[0, kThreads) into partial[0]; every thread of the block must call it.
__device__ void BlockSum(double* partial) {
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
}

template <class Term>
__global__ void ChannelSumKernel(Term term, device::ReduceShape shape, float alpha, float* out) {
  __shared__ double partial[kThreads];
  const int64_t count = shape.outer * shape.inner;
  for (int64_t c = blockIdx.x; c < shape.channels; c += gridDim.x) {
    double sum = 0;
    for (int64_t j = threadIdx.x; j < count; j += kThreads) {
      const int64_t o = j / shape.inner, s = j % shape.inner;
      sum += term((o * shape.channels + c) * shape.inner + s, c);
    }
    partial[threadIdx.x] = sum;
    BlockSum(partial);
    if (threadIdx.x == 0) out[c] = static_cast<float>(alpha * partial[0]);
    __syncthreads();  // partial is reused for the next channel
  }
}

__global__ void SumOfSquaresKernel(const float* x, int64_t n, double* partials) {
  __shared__ double partial[kThreads];
  double sum = 0;
  const int64_t stride = static_cast<int64_t>(kThreads) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    sum += static_cast<double>(x[i]) * x[i];
  }
  partial[threadIdx.x] = sum;
  BlockSum(partial);
  if (threadIdx.x == 0) partials[blockIdx.x] = partial[0];
}

}  // namespace

cudaError_t LaunchElementOp(const device::ElementOp& op, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  return std::visit(
      [&](const auto& f) {
        ForEachKernel<<<BlocksFor(n), kThreads, 0, stream>>>(f, n);
        return cudaGetLastError();
      },
      op);
}

cudaError_t LaunchChannelSum(const device::ReduceTerm& term, const device::ReduceShape& shape,
                             float alpha, float* out, cudaStream_t stream) {
  if (shape.channels <= 0) return cudaSuccess;
  const int blocks = static_cast<int>(std::min<int64_t>(shape.channels, kMaxBlocks));
  return std::visit(
      [&](const auto& t) {
        ChannelSumKernel<<<blocks, kThreads, 0, stream>>>(t, shape, alpha, out);
        return cudaGetLastError();
      },
      term);
}

cudaError_t LaunchSumOfSquares(const float* x, int64_t n, double* partials, int blocks,
                               cudaStream_t stream) {
  SumOfSquaresKernel<<<blocks, kThreads, 0, stream>>>(x, n, partials);
  return cudaGetLastError();
}

}  // namespace cajal::cuda
