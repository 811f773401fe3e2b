// The practical FP32 peak of this machine: a 2048³ row-major dnnl_sgemm, best of `repeat`
// timed runs after one warm-up, with the given OpenMP threads.
//
//   sgemm_peak [--threads 2] [--n 2048] [--repeat 5]
//   -> sgemm_gflops=218.4 threads=2 n=2048
//
// bench/vs_torch.py runs it in the same session as the throughput runs and reports each side's
// achieved GFLOP/s as a share of this number.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "oneapi/dnnl/dnnl.h"

int main(int argc, char** argv) {
  int threads = 2, n = 2048, repeat = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const int v = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--threads") == 0) {
      threads = v;
    } else if (std::strcmp(argv[i], "--n") == 0) {
      n = v;
    } else if (std::strcmp(argv[i], "--repeat") == 0) {
      repeat = v;
    } else {
      std::fprintf(stderr, "usage: sgemm_peak [--threads T] [--n N] [--repeat R]\n");
      return 2;
    }
  }
  if (threads < 1 || n < 1 || repeat < 1) {
    std::fprintf(stderr, "sgemm_peak: --threads, --n and --repeat must be >= 1\n");
    return 2;
  }
  omp_set_num_threads(threads);
  const size_t count = static_cast<size_t>(n) * n;
  std::vector<float> a(count), b(count), c(count);
  for (size_t i = 0; i < count; ++i) {
    a[i] = static_cast<float>(i % 13) * 0.01f;
    b[i] = static_cast<float>(i % 7) * 0.02f;
  }
  double best = 1e30;
  for (int r = 0; r <= repeat; ++r) {  // run 0 warms up
    const auto t0 = std::chrono::steady_clock::now();
    if (dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n) !=
        dnnl_success) {
      std::fprintf(stderr, "sgemm_peak: dnnl_sgemm failed\n");
      return 1;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0 && s < best) best = s;
  }
  std::printf("sgemm_gflops=%.1f threads=%d n=%d\n", 2.0 * n * n * n / best / 1e9, threads, n);
  return 0;
}
