// Resource admission at submit: what a job is estimated to need (core/train/memory.h), computed
// before anything is allocated, and whether this server could ever, or could now, give it.
//
//   Admission admission({FlagBudget(8'000'000'000, "--max_job_memory"), ProcessMemoryBudget,
//                        /*gpus=*/0});
//   ASSIGN_OR_RETURN(Admitted a, admission.Estimate(config));
//   RETURN_IF_ERROR(admission.CheckCapacity(a));        // never fits: kInvalidArgument
//   RETURN_IF_ERROR(admission.CheckNow(a, /*reserved=*/running_jobs_bytes));  // kResourceExhausted
//
// The capacity is the memory the server's jobs may use together: --max_job_memory, or what the
// process could use when it started less the server's own baseline. A job over it could never
// run here. The live budget is what the process could give a job now if none of its own jobs
// were running: the process's budget now (cgroup memory.max or MemAvailable, less 10%) with
// the running jobs' reservations added back, and never above the capacity. A job over it
// cannot run now for reasons outside this server (other processes hold the memory): the client
// should retry later. A job within both waits in the queue (job_queue.h) until running jobs
// leave room for it.
//
// On a GPU the estimate's device part is checked against the smallest GPU's memory (one job
// per GPU, so there is no sum to keep), its host part against the capacity as above.
//
// Thread-safe (const after construction; `live` and `gpu_info` must be thread-safe).
#ifndef CAJAL_SERVICE_SERVER_ADMISSION_H_
#define CAJAL_SERVICE_SERVER_ADMISSION_H_

#include <climits>
#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "cajal/v1/training_service.pb.h"
#include "core/backend/registry.h"
#include "core/train/job.h"
#include "core/train/memory.h"
#include "service/server/job_queue.h"

namespace cajal {

struct AdmissionOptions {
  // For all the server's jobs together.
  MemoryBudget capacity{INT64_MAX, "no limit"};
  std::function<MemoryBudget()> live = ProcessMemoryBudget;  // re-read at every check
  int gpus = 0;                                              // GPUs the server runs jobs on
  std::function<absl::StatusOr<GpuInfo>(int)> gpu_info = GetGpuInfo;
};

// A job's estimate and what it will hold while it runs.
struct Admitted {
  MemoryEstimate estimate;
  Demand demand;
};

class Admission {
 public:
  explicit Admission(AdmissionOptions options) : options_(std::move(options)) {}

  // Whether the job runs on a GPU: training.device gpu, or auto on a server with GPUs.
  bool NeedsGpu(const JobConfig& config) const;
  // The job's estimate and demand. Errors: the estimate's (data headers: kNotFound,
  // kInvalidArgument; layers: kInvalidArgument).
  absl::StatusOr<Admitted> Estimate(const JobConfig& config) const;
  // kInvalidArgument when the job is over the capacity (or a GPU's memory), with CheckBudget's
  // message: the estimate, the budget, the biggest part.
  absl::Status CheckCapacity(const Admitted& admitted) const;
  // kResourceExhausted (CheckBudget's message) when the job is over the live budget, given the
  // bytes the server's running jobs reserve now.
  absl::Status CheckNow(const Admitted& admitted, int64_t reserved) const;

  const MemoryBudget& capacity() const { return options_.capacity; }
  int gpus() const { return options_.gpus; }

 private:
  AdmissionOptions options_;
};

// The capacity when --max_job_memory is not given: the process's budget now, less the
// server's own baseline (jobs are estimated without one).
MemoryBudget DefaultJobMemory();

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_ADMISSION_H_
