// How much memory a job will use, computed from its configuration and its data sources'
// headers before anything is allocated, and the budget a process may spend.
//
//   ASSIGN_OR_RETURN(MemoryEstimate e, EstimateMemory(config, {CpuBackend()}));
//   RETURN_IF_ERROR(CheckBudget(e, ProcessMemoryBudget()));
//   // kResourceExhausted: "the job needs an estimated 9.2 GB ... but the budget is 3.1 GB
//   // (cgroup memory.max less 10%); the biggest part: model.layers.0 (dense): 4.0 GB of
//   // parameters"
//
// What is counted (each an item naming where it comes from): every layer's parameters, their
// gradients and the optimizer's state; every plan's activations and their gradients (the
// training batch, a shorter last batch, the evaluation batches) and what each kernel allocates
// of its own (Backend::KernelBytes); the data sets in memory and their index lists;
// Hessian-free's vectors; and a fixed runtime baseline (libraries, threads) for a process that
// runs one job. Device memory (a GPU backend) is counted apart from host memory.
#ifndef CAJAL_CORE_TRAIN_MEMORY_H_
#define CAJAL_CORE_TRAIN_MEMORY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/train/job.h"

namespace cajal {

// The resident memory of a `cajal train` process before it loads anything: the libraries
// (gRPC, protobuf, oneDNN, OpenMP), their threads' stacks and oneDNN's scratch. Measured on the
// project's machine (docs/resources.md); a server counts its own baseline once, not per job.
inline constexpr int64_t kRuntimeBaselineBytes = int64_t{30} << 20;

struct MemoryItem {
  std::string where;  // "model.layers.0 (dense)", "data.train", "plans", "runtime"
  std::string what;   // "parameters", "gradients", "optimizer state", "activations", ...
  int64_t bytes = 0;
  bool device = false;  // in the backend's own memory (a GPU), not the host's
  // Proportional to the whole model (copies while saving, Hessian-free's vectors) rather than
  // a part of it: never named as the biggest part when a part is there to name.
  bool whole_model = false;
};

struct MemoryEstimate {
  int64_t parameters = 0;  // values in the parameter store (trainable and buffers)
  int64_t host_bytes = 0;
  int64_t device_bytes = 0;  // 0 unless the backend's memory is not host memory
  std::vector<MemoryItem> items;

  // The largest item that is a part of the job (a layer, a data set), not a whole-model copy.
  const MemoryItem& Biggest() const;
  // host + device.
  int64_t total_bytes() const { return host_bytes + device_bytes; }
};

struct EstimateOptions {
  Backend* backend = nullptr;   // null: the CPU backend
  int ranks = 1;                // data-parallel ranks (each holds a whole copy)
  bool include_runtime = true;  // the process baseline (kRuntimeBaselineBytes)
};

// Errors: those of the data sources' headers (kNotFound, kInvalidArgument naming the field)
// and of the spec's layers (kInvalidArgument naming the layer), as TrainingJob::Prepare would
// report them.
absl::StatusOr<MemoryEstimate> EstimateMemory(const JobConfig& config,
                                              const EstimateOptions& options = {});

// Memory a process may spend.
struct MemoryBudget {
  int64_t bytes = 0;
  std::string source;  // "cgroup memory.max 2.0 GB, less 10%", "--max_memory", ...
};

// By default what the process may use: its cgroup v2 memory.max when set, else the machine's
// MemAvailable (/proc/meminfo), in either case less 10% and less what the process already uses
// beyond the runtime baseline.
MemoryBudget ProcessMemoryBudget();
// `bytes` as given by a flag (--max_memory, --max_job_memory).
MemoryBudget FlagBudget(int64_t bytes, const std::string& flag);

// OK when the estimate fits; else kResourceExhausted naming the estimate, the budget and the
// biggest consumer.
absl::Status CheckBudget(const MemoryEstimate& estimate, const MemoryBudget& budget);

// "4.0 GB", "512.0 MB", "12 KB" (powers of 1000, as the messages users read); ParseBytes reads
// "4GB", "4GiB", "512M", "1000000" (for flags). ParseBytes errors: kInvalidArgument.
std::string FormatBytes(int64_t bytes);
absl::StatusOr<int64_t> ParseBytes(const std::string& text);

// A table for `cajal train --dry-run`: every item, the totals and the parameter count.
std::string FormatEstimate(const MemoryEstimate& estimate);

}  // namespace cajal

#endif  // CAJAL_CORE_TRAIN_MEMORY_H_
