// CAJAL_HD marks element-wise math that both the CPU code and the CUDA kernels run: compiled
// by nvcc it is __host__ __device__, by the host compiler a plain inline function. Headers
// that use it include nothing but the C++ standard library, so nvcc can compile them.
#ifndef CAJAL_CORE_UTIL_HD_H_
#define CAJAL_CORE_UTIL_HD_H_

#if defined(__CUDACC__)
#define CAJAL_HD __host__ __device__ __forceinline__
#else
#define CAJAL_HD inline
#endif

#endif  // CAJAL_CORE_UTIL_HD_H_
