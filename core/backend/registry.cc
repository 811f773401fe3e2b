#include "core/backend/registry.h"

#include <atomic>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

#if CAJAL_HAVE_CUDA
#include "core/backend/cuda/cuda_backend.h"
#endif

namespace cajal {

bool HasCudaBackend() { return CAJAL_HAVE_CUDA != 0; }

int VisibleGpuCount() {
#if CAJAL_HAVE_CUDA
  return cuda::VisibleDeviceCount();
#else
  return 0;
#endif
}

namespace {
std::atomic<int> default_gpu{0};
}  // namespace

void SetDefaultGpu(int gpu) { default_gpu.store(gpu); }
int DefaultGpu() { return default_gpu.load(); }

absl::StatusOr<GpuInfo> GetGpuInfo(int gpu) {
#if CAJAL_HAVE_CUDA
  return cuda::GetGpuInfo(gpu);
#else
  (void)gpu;
  return absl::FailedPreconditionError("this build of cajal has no CUDA backend: no GPU info");
#endif
}

const char* DeviceChoiceName(DeviceChoice choice) {
  switch (choice) {
    case DeviceChoice::kCpu:
      return "cpu";
    case DeviceChoice::kGpu:
      return "gpu";
    default:
      return "auto";
  }
}

absl::StatusOr<Backend*> GetBackend(const DeviceRequest& request) {
  if (request.choice == DeviceChoice::kCpu) return CpuBackend();
  const int gpus = VisibleGpuCount();
  if (gpus == 0) {
    if (request.choice == DeviceChoice::kAuto) return CpuBackend();
    if (!HasCudaBackend()) {
      return absl::FailedPreconditionError(
          "training.device: gpu, but this build of cajal has no CUDA backend (build with "
          "CAJAL_CUDA=ON where nvcc is installed), or use device: cpu or auto");
    }
    return absl::FailedPreconditionError(
        "training.device: gpu, but no CUDA device is visible to this process (no driver, no "
        "GPU, or CUDA_VISIBLE_DEVICES hides them); use device: cpu or auto");
  }
  const int index = request.gpu < 0 ? DefaultGpu() : request.gpu;
  if (index >= gpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpu ", index, " does not exist: ", gpus, " visible"));
  }
#if CAJAL_HAVE_CUDA
  return cuda::GetBackend(index);
#else
  return absl::InternalError("unreachable: GPUs visible without a CUDA backend");
#endif
}

}  // namespace cajal
