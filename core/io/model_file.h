// The model file (`model.cajal`) and checkpoints: the spec, the named parameter tensors, the
// optimizer state and the trainer's position, so a run can resume exactly.
//
// Layout (little-endian):
//   "CAJALMDL" | u32 format version (1) | u64 payload bytes | payload | u32 CRC-32 of payload
//   payload: str spec_json | tensors | u64 optimizer steps | tensors (optimizer state) |
//            trainer state (see TrainerState) | str extra (caller-defined JSON)
//   tensors: u32 count, then per tensor: str name | u32 rank | i64 dims[rank] | f32 data
//   str: u32 length | bytes
// Writing is atomic: a temporary file in the same directory, fsync, rename, fsync of the
// directory; a crash leaves the old file or the new one, never a mix.
#ifndef CAJAL_CORE_IO_MODEL_FILE_H_
#define CAJAL_CORE_IO_MODEL_FILE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor/tensor.h"
#include "core/train/job.h"

namespace cajal {

struct NamedTensor {
  std::string name;
  Shape shape;
  std::vector<float> data;
};

struct ModelFile {
  std::string spec_json;
  std::vector<NamedTensor> params;
  int64_t optimizer_steps = 0;
  std::vector<NamedTensor> optimizer_state;
  TrainerState trainer;
  std::string extra;
};

inline constexpr uint32_t kModelFormatVersion = 1;

// Captures the job's parameters, optimizer state and position (copied from the device).
absl::StatusOr<ModelFile> SnapshotJob(TrainingJob& job, const std::string& spec_json);
// Restores parameters (and, when `with_state`, optimizer state and position) into `job`,
// checking every name and shape. Errors: kInvalidArgument naming the mismatch.
absl::Status RestoreJob(const ModelFile& file, bool with_state, TrainingJob* job);

// Errors: kInternal/kResourceExhausted/kPermissionDenied with the path and the OS error.
absl::Status WriteModelFile(const std::string& path, const ModelFile& file);
// Errors: kNotFound; kInvalidArgument for a truncated, corrupt or foreign file.
absl::StatusOr<ModelFile> ReadModelFile(const std::string& path);

// Writes `bytes` to `path` atomically (temp file, fsync, rename, directory fsync).
absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace cajal

#endif  // CAJAL_CORE_IO_MODEL_FILE_H_
