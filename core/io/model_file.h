// The model file (`model.cajal`) and checkpoints: the spec, the named parameter tensors, the
// optimizer state and the trainer's position, so a run can resume exactly.
//
// Layout (little-endian):
//   "CAJALMDL" | u32 format version (2) | u64 payload bytes | payload | u32 CRC-32 of payload
//   payload: str spec_json | tensors | u64 optimizer steps | tensors (optimizer state) |
//            trainer state (see TrainerState) | str extra (caller-defined JSON) |
//            info (version 2 only, see ModelInfo)
//   info: u32 rank | i64 input dims[rank] | i32 num_classes | i32 target_dim |
//         i64 channel_stride | floats shift | floats scale
//   tensors: u32 count, then per tensor: str name | u32 rank | i64 dims[rank] | f32 data
//   floats: u32 count | f32 values
//   str: u32 length | bytes
// Version 2 added the info block: what running the model needs besides its parameters (the
// input shape, the outputs, the training data's normalization statistics), so a model can be
// exported without its training data. Version 1 files still read, with info.present false.
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

// What the model was trained on, as far as running it needs (format version 2).
struct ModelInfo {
  bool present = false;  // false for a version 1 file, which did not store it
  Shape input;           // one example: (F), (T, F) or (C, H, W)
  int num_classes = 0;   // classification: the class count; 0 for real-valued targets
  int target_dim = 0;    // regression: values per target
  // The inputs the network saw were (x - shift[c]) * scale[c] (core/data/dataset.h).
  Normalization normalization;
};

struct ModelFile {
  std::string spec_json;
  std::vector<NamedTensor> params;
  int64_t optimizer_steps = 0;
  std::vector<NamedTensor> optimizer_state;
  TrainerState trainer;
  std::string extra;
  ModelInfo info;
};

// Written by this build; version 1 (no ModelInfo) is still read.
inline constexpr uint32_t kModelFormatVersion = 2;

// Captures the job's parameters, optimizer state, position and ModelInfo (copied from the
// device).
absl::StatusOr<ModelFile> SnapshotJob(TrainingJob& job, const std::string& spec_json);
// Restores parameters (and, when `with_state`, optimizer state and position) into `job`,
// checking every name and shape. Errors: kInvalidArgument naming the mismatch.
absl::Status RestoreJob(const ModelFile& file, bool with_state, TrainingJob* job);

// Errors: kInternal/kResourceExhausted/kPermissionDenied with the path and the OS error.
absl::Status WriteModelFile(const std::string& path, const ModelFile& file);
// Errors: kNotFound; kInvalidArgument for a truncated, corrupt or foreign file, or a format
// version this build does not read.
absl::StatusOr<ModelFile> ReadModelFile(const std::string& path);

// Writes `bytes` to `path` atomically (temp file, fsync, rename, directory fsync).
absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace cajal

#endif  // CAJAL_CORE_IO_MODEL_FILE_H_
