// Which backend a job runs on: the one place that turns training.device into a Backend.
//
//   ASSIGN_OR_RETURN(Backend* backend, GetBackend({DeviceChoice::kAuto}));
//   // backend->name(): "gpu:0" when a CUDA device is visible, else "cpu"
//
// Backends live for the whole process and are shared by its jobs. Thread-safe.
#ifndef CAJAL_CORE_BACKEND_REGISTRY_H_
#define CAJAL_CORE_BACKEND_REGISTRY_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"

namespace cajal {

enum class DeviceChoice { kAuto, kCpu, kGpu };

struct DeviceRequest {
  DeviceChoice choice = DeviceChoice::kAuto;
  // The GPU to use (kGpu, or kAuto when it picks a GPU); -1: the first visible.
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

const char* DeviceChoiceName(DeviceChoice choice);  // "auto", "cpu", "gpu"

}  // namespace cajal

#endif  // CAJAL_CORE_BACKEND_REGISTRY_H_
