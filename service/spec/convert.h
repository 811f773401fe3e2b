// The one place where the proto job spec meets the core: validation of every field (with the
// field path and the offending value in the message) and conversion to core::JobConfig.
//
//   RETURN_IF_ERROR(ValidateSpec(spec));      // "training.batch_size: must be > 0, got -3"
//   ASSIGN_OR_RETURN(JobConfig config, ToJobConfig(spec));
//
// Shape errors need the data and are found later, by TrainingJob::Prepare.
#ifndef CAJAL_SERVICE_SPEC_CONVERT_H_
#define CAJAL_SERVICE_SPEC_CONVERT_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cajal/v1/job_spec.pb.h"
#include "cajal/v1/training_service.pb.h"
#include "core/train/job.h"
#include "core/train/memory.h"

namespace cajal {

// Bounds on what a spec may ask for, so a hostile spec is refused before any allocation.
inline constexpr int kMaxLayers = 1000;
inline constexpr int kMaxUnits = 1 << 20;
inline constexpr int kMaxBatch = 1 << 16;
inline constexpr int kMaxEpochs = 100000;

// kInvalidArgument naming the first bad field; OK otherwise.
absl::Status ValidateSpec(const v1::JobSpec& spec);

// Data set ids (UploadDataset): 32 lowercase hex characters, so an id never names a path.
bool IsDatasetId(const std::string& id);
// kInvalidArgument naming `field` unless `id` is a data set id.
absl::Status ValidateDatasetId(const std::string& field, const std::string& id);

// kInvalidArgument naming the field when the spec names an uploaded data set (csv.dataset,
// idx.images_dataset, idx.labels_dataset): a local run (`cajal train`, `cajal evaluate`) has
// no server to take it from.
absl::Status RequireLocalData(const v1::JobSpec& spec);

// Validates, then converts with every default applied. Data sets named by id are left for the
// server to fill in (their paths stay empty here).
absl::StatusOr<JobConfig> ToJobConfig(const v1::JobSpec& spec);

// A job's memory estimate as the API shows it (Job.memory_estimate): the totals and the
// biggest item.
v1::MemoryEstimate ToProto(const MemoryEstimate& estimate);

// Whether two specs train the same model the same way: equal but for what only reports or
// saves (labels, training.log_every_steps, checkpoint_every_steps, tfevents), so a checkpoint
// of one resumes the other.
bool SameTraining(const v1::JobSpec& a, const v1::JobSpec& b);

}  // namespace cajal

#endif  // CAJAL_SERVICE_SPEC_CONVERT_H_
