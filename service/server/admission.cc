#include "service/server/admission.h"

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

// The items of an estimate on one side: the host's memory, or the device's.
MemoryEstimate Part(const MemoryEstimate& e, bool device) {
  MemoryEstimate part;
  part.parameters = e.parameters;
  for (const MemoryItem& item : e.items) {
    if (item.device != device) continue;
    part.items.push_back(item);
    (device ? part.device_bytes : part.host_bytes) += item.bytes;
  }
  return part;
}

}  // namespace

bool Admission::NeedsGpu(const JobConfig& config) const {
  return config.device == DeviceChoice::kGpu ||
         (config.device == DeviceChoice::kAuto && options_.gpus > 0);
}

absl::StatusOr<Admitted> Admission::Estimate(const JobConfig& config) const {
  const bool gpu = NeedsGpu(config);
  Backend* backend = CpuBackend();
  if (gpu) {
    ASSIGN_OR_RETURN(backend, GetBackend({DeviceChoice::kGpu, 0}));
  }
  ASSIGN_OR_RETURN(MemoryEstimate estimate,
                   EstimateMemory(config, {backend, /*ranks=*/1, /*include_runtime=*/false}));
  const int64_t host_bytes = estimate.host_bytes;
  return Admitted{std::move(estimate), Demand{host_bytes, gpu}};
}

absl::Status Admission::CheckCapacity(const Admitted& admitted) const {
  const MemoryEstimate& estimate = admitted.estimate;
  if (absl::Status s = CheckBudget(Part(estimate, /*device=*/false), options_.capacity); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("too large for this server: ", s.message()));
  }
  if (admitted.demand.gpu && estimate.device_bytes > 0) {
    // The smallest GPU's memory: the job may be given any of them.
    MemoryBudget device{INT64_MAX, ""};
    for (int g = 0; g < options_.gpus; ++g) {
      absl::StatusOr<GpuInfo> info = options_.gpu_info(g);
      if (!info.ok() || info->total_bytes / 10 * 9 >= device.bytes) continue;
      device = {info->total_bytes / 10 * 9,
                absl::StrCat("GPU ", g, " (", info->name, ") has ", FormatBytes(info->total_bytes),
                             ", less 10%")};
    }
    if (absl::Status s = CheckBudget(Part(estimate, /*device=*/true), device); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("too large for this server's GPUs: ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status Admission::CheckNow(const Admitted& admitted, int64_t reserved) const {
  const MemoryBudget now = options_.live();
  int64_t could = options_.capacity.bytes;
  if (now.bytes < INT64_MAX) {
    const int64_t free_now = std::max<int64_t>(0, now.bytes - kRuntimeBaselineBytes);
    could = std::min(could, free_now + std::max<int64_t>(0, reserved));
  }
  const MemoryBudget live{could, absl::StrCat("what this server could give a job now: ", now.source,
                                              ", less its baseline, with its ",
                                              "running jobs' memory counted as free")};
  if (absl::Status s = CheckBudget(Part(admitted.estimate, /*device=*/false), live); !s.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("not enough memory is free on this server now: ", s.message(),
                     "; or retry when other work on the machine has ended"));
  }
  return absl::OkStatus();
}

MemoryBudget DefaultJobMemory() {
  MemoryBudget budget = ProcessMemoryBudget();
  if (budget.bytes == INT64_MAX) return budget;
  return {std::max<int64_t>(0, budget.bytes - kRuntimeBaselineBytes),
          absl::StrCat(budget.source, " when cajald started, less its own baseline of ",
                       FormatBytes(kRuntimeBaselineBytes))};
}

}  // namespace cajal
