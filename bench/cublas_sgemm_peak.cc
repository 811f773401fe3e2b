// cublas_sgemm_peak: the FP32 GEMM peak of a GPU, for bench/gpu_bench.py to report the
// networks' achieved GFLOP/s against (as bench/sgemm_peak does for the CPU).
//
//   build/bin/cublas_sgemm_peak [--size 8192] [--repeat 10] [--device 0]
//   -> sgemm_gflops=51234.5 size=8192 device="NVIDIA H200"
//
// cublasSgemm in CUBLAS_DEFAULT_MATH (FP32 arithmetic, no TF32: the CUDA backend's setting) on
// size³ matrices of random values, timed with CUDA events after two warm-up products; the best
// of `repeat` products. Exits 1 with a message when there is no GPU.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

bool Check(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "cublas_sgemm_peak: %s: %s\n", call, cudaGetErrorString(e));
  return false;
}

bool Check(cublasStatus_t s, const char* call) {
  if (s == CUBLAS_STATUS_SUCCESS) return true;
  std::fprintf(stderr, "cublas_sgemm_peak: %s: %s\n", call, cublasGetStatusString(s));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  int size = 8192, repeat = 10, device = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--size") == 0) size = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--device") == 0) device = std::atoi(argv[i + 1]);
  }
  if (size <= 0 || repeat <= 0) {
    std::fprintf(stderr, "usage: cublas_sgemm_peak [--size N] [--repeat R] [--device D]\n");
    return 2;
  }
  if (!Check(cudaSetDevice(device), "cudaSetDevice")) return 1;
  cudaDeviceProp prop;
  if (!Check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties")) return 1;
  const size_t n = static_cast<size_t>(size) * size;
  std::vector<float> host(n);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : host) v = u(rng);
  float *a = nullptr, *b = nullptr, *c = nullptr;
  if (!Check(cudaMalloc(reinterpret_cast<void**>(&a), n * sizeof(float)), "cudaMalloc") ||
      !Check(cudaMalloc(reinterpret_cast<void**>(&b), n * sizeof(float)), "cudaMalloc") ||
      !Check(cudaMalloc(reinterpret_cast<void**>(&c), n * sizeof(float)), "cudaMalloc")) {
    return 1;
  }
  if (!Check(cudaMemcpy(a, host.data(), n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy") ||
      !Check(cudaMemcpy(b, host.data(), n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy")) {
    return 1;
  }
  cublasHandle_t handle = nullptr;
  if (!Check(cublasCreate(&handle), "cublasCreate")) return 1;
  if (!Check(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode")) return 1;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  const float one = 1.0f, zero = 0.0f;
  float best_ms = 1e30f;
  for (int r = 0; r < repeat + 2; ++r) {
    cudaEventRecord(start);
    if (!Check(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, size, size, size, &one, a, size, b,
                           size, &zero, c, size),
               "cublasSgemm")) {
      return 1;
    }
    cudaEventRecord(stop);
    if (!Check(cudaEventSynchronize(stop), "cudaEventSynchronize")) return 1;
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (r >= 2 && ms < best_ms) best_ms = ms;  // the first two warm up
  }
  const double gflops = 2.0 * size * static_cast<double>(size) * size / (best_ms * 1e-3) / 1e9;
  std::printf("sgemm_gflops=%.1f size=%d device=\"%s\"\n", gflops, size, prop.name);
  cublasDestroy(handle);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return 0;
}
