// The CPU backend: host memory, each layer kind dispatched to its oneDNN kernel maker, and the
// loss and optimizer loops on the host.
#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/backend/backend.h"
#include "core/backend/onednn/kernels.h"
#include "core/backend/onednn/onednn_util.h"

namespace cajal {
namespace {

// Work below this many elements runs on one thread: fork/join would cost more than it saves.
constexpr int64_t kParallelThreshold = 1 << 15;
absl::Status OutOfMemory(size_t bytes) {
  return absl::ResourceExhaustedError(
      absl::StrCat("out of memory: cannot allocate ", bytes, " bytes (",
                   absl::StrFormat("%.1f", static_cast<double>(bytes) / (1 << 20)), " MiB)"));
}

absl::StatusOr<DeviceBuffer> AllocateHostMemory(size_t bytes) {
  if (bytes == 0) return DeviceBuffer();
  // From the heap, zeroed (and so touched) here, outside any step. Large buffers used to be
  // mapped separately (zero pages on first touch): every mapping then started on a page
  // boundary, so buffers streamed together shared cache sets, and the first steps paid the
  // page faults; the 2-thread CNN was ~10 % slower that way (docs/performance.md). What cannot
  // fit is refused before this by the memory estimate; a failed allocation is still a status.
  // Round the byte size up to the alignment, as aligned_alloc requires.
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (p == nullptr) return OutOfMemory(bytes);
  std::memset(p, 0, bytes);
  return DeviceBuffer(p, bytes, [](void* q) { std::free(q); });
}

// The update of elements [begin, end), compiled for AVX-512, AVX2+FMA and the baseline and
// chosen at load time (the same machine always runs the same clone, so results stay
// reproducible there). The kind is chosen once, outside the loop, so each loop vectorizes.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void UpdateRange(
    const UpdateParams& u, float* __restrict p, const float* __restrict g, float* __restrict s0,
    float* __restrict s1, int64_t begin, int64_t end) {
  switch (u.kind) {
    case OptimizerKind::kSgd:
    case OptimizerKind::kPerceptronRule:
      for (int64_t i = begin; i < end; ++i) SgdUpdate(u, p[i], g[i]);
      break;
    case OptimizerKind::kMomentum:
      for (int64_t i = begin; i < end; ++i) MomentumUpdate(u, p[i], g[i], s0[i]);
      break;
    case OptimizerKind::kNesterov:
      for (int64_t i = begin; i < end; ++i) NesterovUpdate(u, p[i], g[i], s0[i]);
      break;
    case OptimizerKind::kRmsprop:
      for (int64_t i = begin; i < end; ++i) RmspropUpdate(u, p[i], g[i], s0[i]);
      break;
    case OptimizerKind::kAdagrad:
      for (int64_t i = begin; i < end; ++i) AdagradUpdate(u, p[i], g[i], s0[i]);
      break;
    case OptimizerKind::kAdam:
      for (int64_t i = begin; i < end; ++i) AdamUpdate(u, p[i], g[i], s0[i], s1[i]);
      break;
    case OptimizerKind::kAdadelta:
      for (int64_t i = begin; i < end; ++i) AdadeltaUpdate(u, p[i], g[i], s0[i], s1[i]);
      break;
    case OptimizerKind::kHessianFree:
      break;
  }
}

class CpuLoss : public LossKernel {
 public:
  CpuLoss(const LossConfig& config, int64_t d) : config_(config), d_(d) {}
  absl::StatusOr<LossOutput> Compute(const float* x, int64_t n, const LossTargets& targets,
                                     double grad_scale, float* grad) override {
    return ComputeLoss(config_, x, n, d_, targets, grad, grad_scale);
  }

 private:
  LossConfig config_;
  int64_t d_;
};

class OneDnnBackend : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  DeviceKind kind() const override { return DeviceKind::kCpu; }

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override { return AllocateHostMemory(bytes); }
  absl::StatusOr<DeviceBuffer> AllocateHost(size_t bytes) override {
    return AllocateHostMemory(bytes);
  }
  bool host_visible() const override { return true; }
  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    if (dst != src && bytes > 0) std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (dst != src && bytes > 0) std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }

  absl::StatusOr<std::unique_ptr<Kernel>> MakeKernel(const LayerSpec& layer,
                                                     const KernelArgs& args) override {
    // Kernel makers report oneDNN's errors as statuses; what may still escape is an allocation
    // failure of their own scratch.
    try {
      return Dispatch(layer, args);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrCat("out of memory building the ", LayerKindName(layer), " kernel"));
    } catch (const dnnl::error& e) {
      return onednn::FromDnnlError(e, LayerKindName(layer).c_str());
    }
  }

  absl::StatusOr<std::unique_ptr<LossKernel>> MakeLoss(const LossConfig& config,
                                                       int64_t /*max_batch*/, int64_t d) override {
    return std::make_unique<CpuLoss>(config, d);
  }

  int64_t KernelBytes(const LayerSpec& layer, const KernelArgs& args) const override {
    return onednn::KernelBytes(layer, args);
  }

  absl::StatusOr<double> SumOfSquares(const float* x, int64_t n) override {
    double sq = 0;
#pragma omp parallel for simd reduction(+ : sq) schedule(static) if (n >= kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) sq += static_cast<double>(x[i]) * x[i];
    return sq;
  }

  absl::Status Scale(float* x, int64_t n, float a) override {
#pragma omp parallel for simd schedule(static) if (n >= kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) x[i] *= a;
    return absl::OkStatus();
  }

  absl::Status ApplyUpdate(const UpdateParams& u, float* p, const float* g, float* s0, float* s1,
                           int64_t n) override {
    const int threads = n >= kParallelThreshold ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(threads)
    {
      // Contiguous, 16-float aligned chunks: each thread streams its own part of every buffer.
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t chunk = (n / nt + 15) / 16 * 16;
      const int64_t begin = std::min<int64_t>(n, t * chunk);
      const int64_t end = t == nt - 1 ? n : std::min<int64_t>(n, begin + chunk);
      UpdateRange(u, p, g, s0, s1, begin, end);
    }
    return absl::OkStatus();
  }

 private:
  static absl::StatusOr<std::unique_ptr<Kernel>> Dispatch(const LayerSpec& layer,
                                                          const KernelArgs& args) {
    if (const auto* d = std::get_if<DenseSpec>(&layer)) return onednn::MakeDense(*d, args);
    if (const auto* a = std::get_if<ActivationSpec>(&layer))
      return onednn::MakeActivation(*a, args);
    if (const auto* t = std::get_if<ThresholdSpec>(&layer)) return onednn::MakeThreshold(*t, args);
    if (std::holds_alternative<FlattenSpec>(layer)) return onednn::MakeFlatten(args);
    if (const auto* d = std::get_if<DropoutSpec>(&layer)) return onednn::MakeDropout(*d, args);
    if (const auto* r = std::get_if<RecurrentSpec>(&layer)) return onednn::MakeRecurrent(*r, args);
    if (const auto* c = std::get_if<Conv2dSpec>(&layer)) return onednn::MakeConv2d(*c, args);
    if (const auto* p = std::get_if<Pool2dSpec>(&layer)) return onednn::MakePool2d(*p, args);
    if (const auto* n = std::get_if<LrnSpec>(&layer)) return onednn::MakeLrn(*n, args);
    if (const auto* b = std::get_if<BatchNormSpec>(&layer)) return onednn::MakeBatchNorm(*b, args);
    return absl::UnimplementedError(
        absl::StrCat("the cpu backend cannot run ", LayerKindName(layer), " layers yet"));
  }
};

}  // namespace

Backend* CpuBackend() {
  static Backend* backend = new OneDnnBackend();
  return backend;
}

}  // namespace cajal
