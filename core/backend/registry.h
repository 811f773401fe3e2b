// Which backend a job runs on: the one place that turns training.device into a Backend.
//
//   ASSIGN_OR_RETURN(Backend* backend, GetBackend({DeviceChoice::kAuto}));
//   // backend->name(): "gpu:0" when a CUDA device is visible, else "cpu"
//
// Backends live for the whole process and are shared by its jobs. Thread-safe.
#ifndef CAJAL_CORE_BACKEND_REGISTRY_H_
#define CAJAL_CORE_BACKEND_REGISTRY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"

namespace cajal {

enum class DeviceChoice { kAuto, kCpu, kGpu };

struct DeviceRequest {
  DeviceChoice choice = DeviceChoice::kAuto;
  // The GPU to use (kGpu, or kAuto when it picks a GPU); -1: DefaultGpu().
  int gpu = -1;
};

// kAuto: the GPU when one is visible (and this build has the CUDA backend), else the CPU.
// Errors: kFailedPrecondition for kGpu without a visible device or without the CUDA backend in
// this build (the message says which), kInvalidArgument for a gpu index out of range.
absl::StatusOr<Backend*> GetBackend(const DeviceRequest& request);

// CUDA devices this process can use (0 without the CUDA backend or a driver).
int VisibleGpuCount();
// Whether this build contains the CUDA backend.
bool HasCudaBackend();

// One GPU's name and memory, for per-GPU metrics.
struct GpuInfo {
  std::string name;  // "NVIDIA H200"
  int64_t total_bytes = 0;
  int64_t free_bytes = 0;  // free on the device now, whoever holds the rest
};
// Errors: kFailedPrecondition without the CUDA backend in this build, kInvalidArgument for a
// gpu index out of range, kInternal naming the CUDA call that failed.
absl::StatusOr<GpuInfo> GetGpuInfo(int gpu);

// The GPU that DeviceRequest::gpu = -1 means: 0 unless set. Data-parallel ranks that share a
// machine each set their own (the rank's local index modulo the visible GPUs) before any job
// is prepared.
void SetDefaultGpu(int gpu);
int DefaultGpu();

const char* DeviceChoiceName(DeviceChoice choice);  // "auto", "cpu", "gpu"

}  // namespace cajal

#endif  // CAJAL_CORE_BACKEND_REGISTRY_H_
