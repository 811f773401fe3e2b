// The lstm layer's two CPU kernels side by side: lstm.cc's own (its GEMM tile, dnnl_sgemm and
// vectorized cells) and oneDNN's RNN primitives (rnn.cc), on the benchmark's shape by default:
// batch 64, 28 steps of 28 features, 128 units, the last step out, training (forward + backward).
//
//   lstm_kernels [--threads 2] [--batch 64] [--steps 28] [--features 28] [--units 128]
//                [--repeat 200] [--only own|onednn]
//   -> kernel=own ms_per_step=... / kernel=onednn ms_per_step=... / speedup=...
//
// A development tool for the kernel, not a comparison with PyTorch (bench/vs_torch.py lstm).
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "core/backend/onednn/kernels.h"
#include "core/tensor/tensor.h"

namespace {

using cajal::AlignedBuffer;

struct Bound {
  std::vector<AlignedBuffer> buffers;
  cajal::KernelArgs args;
};

// Buffers for one kernel; every kernel gets its own, filled with the same values.
Bound Bind(const cajal::RecurrentSpec& spec, int64_t batch, int64_t steps, int64_t features) {
  Bound b;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  auto fill = [&](int64_t count) {
    b.buffers.emplace_back(static_cast<size_t>(count));
    for (size_t i = 0; i < b.buffers.back().size(); ++i) b.buffers.back().data()[i] = u(rng);
    return b.buffers.back().data();
  };
  const int64_t h = spec.units;
  b.args.batch = batch;
  b.args.input = {steps, features};
  b.args.output = {h};
  b.args.src = fill(batch * steps * features);
  b.args.dst = fill(batch * h);
  b.args.diff_dst = fill(batch * h);
  const char* names[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"};
  const int64_t counts[] = {4 * h * features, 4 * h * h, 4 * h, 4 * h};
  for (int i = 0; i < 4; ++i) {
    float* value = fill(counts[i]);
    b.args.params.push_back({names[i], value, fill(counts[i])});
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, repeat = 200;
  const char* only = "";
  int64_t batch = 64, steps = 28, features = 28, units = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    const long v = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--threads") == 0) {
      threads = static_cast<int>(v);
    } else if (std::strcmp(argv[i], "--batch") == 0) {
      batch = v;
    } else if (std::strcmp(argv[i], "--steps") == 0) {
      steps = v;
    } else if (std::strcmp(argv[i], "--features") == 0) {
      features = v;
    } else if (std::strcmp(argv[i], "--units") == 0) {
      units = v;
    } else if (std::strcmp(argv[i], "--only") == 0) {
      only = argv[i + 1];
    } else if (std::strcmp(argv[i], "--repeat") == 0) {
      repeat = static_cast<int>(v);
    } else {
      std::fprintf(stderr,
                   "usage: lstm_kernels [--threads T] [--batch N] [--steps T] "
                   "[--features F] [--units H] [--repeat R] [--only own|onednn]\n");
      return 2;
    }
  }
  omp_set_num_threads(threads);
  cajal::RecurrentSpec spec;
  spec.cell = cajal::RecurrentCell::kLstm;
  spec.units = static_cast<int>(units);
  double ms[2] = {0, 0};
  for (int which = 0; which < 2; ++which) {
    const char* name = which == 0 ? "own" : "onednn";
    if (*only != '\0' && std::strcmp(only, name) != 0) continue;
    Bound b = Bind(spec, batch, steps, features);
    auto kernel = which == 0 ? cajal::onednn::MakeLstm(spec, b.args)
                             : cajal::onednn::MakeRecurrentPrimitives(spec, b.args);
    if (!kernel.ok()) {
      std::fprintf(stderr, "%s\n", kernel.status().ToString().c_str());
      return 1;
    }
    for (int i = 0; i < 5; ++i) {
      (void)(*kernel)->Forward(i);
      (void)(*kernel)->Backward();
    }
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < repeat; ++i) {
      (void)(*kernel)->Forward(i);
      (void)(*kernel)->Backward();
    }
    ms[which] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count() /
                repeat;
    std::printf("kernel=%s ms_per_step=%.3f\n", name, ms[which]);
  }
  if (*only != '\0') return 0;
  std::printf("speedup=%.2f threads=%d batch=%ld steps=%ld features=%ld units=%ld\n", ms[1] / ms[0],
              threads, static_cast<long>(batch), static_cast<long>(steps),
              static_cast<long>(features), static_cast<long>(units));
  return 0;
}
