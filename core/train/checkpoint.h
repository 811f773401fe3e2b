// Checkpoints of a running job: its parameters, optimizer state and position in one model file
// (io/model_file.h), written atomically, so a rerun resumes with the same data order and the
// same results as a run that never stopped. The server and `cajal train --checkpoint_dir` both
// use it.
//
//   Checkpointer ckpt(job.get(), dir + "/checkpoint.cajal", spec_json);
//   ASSIGN_OR_RETURN(bool resumed, ckpt.Resume());   // rank 0's file, every rank restored
//   ... in the observer: RETURN_IF_ERROR(ckpt.Write());
//
// Data-parallel: every rank calls both; rank 0 alone writes, every rank reads the same file (a
// volume they share) and then takes rank 0's state (TrainingJob::SyncReplicas).
// Not thread-safe: the training thread's.
#ifndef CAJAL_CORE_TRAIN_CHECKPOINT_H_
#define CAJAL_CORE_TRAIN_CHECKPOINT_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "core/train/job.h"

namespace cajal {

class Checkpointer {
 public:
  // Whether a checkpoint's spec (its JSON) is this job's: the service compares the specs
  // without their reporting fields (SameTraining); null compares the JSON text.
  using SpecMatcher = std::function<bool(const std::string& checkpoint_spec_json)>;

  // `spec_json`: the job's spec in its canonical JSON form, stored in every checkpoint; a
  // checkpoint of another spec is refused on Resume.
  Checkpointer(TrainingJob* job, std::string path, std::string spec_json,
               SpecMatcher same_spec = nullptr)
      : job_(job),
        path_(std::move(path)),
        spec_json_(std::move(spec_json)),
        same_spec_(std::move(same_spec)) {}

  const std::string& path() const { return path_; }

  // Restores the job from the checkpoint when one exists: true then, false when there is none.
  // Errors: kFailedPrecondition for a checkpoint of a different spec or one that does not
  // match the network (naming the file), kInvalidArgument for a damaged file, and the
  // collective's errors.
  absl::StatusOr<bool> Resume();
  // Writes the job's state now (rank 0; other ranks return at once). Errors: the file
  // system's (kResourceExhausted for a full disk, kPermissionDenied, kInternal).
  absl::Status Write();
  // Removes the checkpoint (after a successful run). Rank 0.
  void Remove();

 private:
  TrainingJob* job_;
  std::string path_;
  std::string spec_json_;
  SpecMatcher same_spec_;
};

}  // namespace cajal

#endif  // CAJAL_CORE_TRAIN_CHECKPOINT_H_
