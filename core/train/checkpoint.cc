#include "core/train/checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/io/model_file.h"
#include "core/util/status_macros.h"

namespace cajal {

absl::StatusOr<bool> Checkpointer::Resume() {
  Collective& collective = job_->collective();
  // Rank 0 decides whether there is a checkpoint, so every rank takes the same path.
  struct stat st;
  std::string exists = collective.rank() == 0 && ::stat(path_.c_str(), &st) == 0 ? "yes" : "";
  RETURN_IF_ERROR(collective.Broadcast(&exists, /*root=*/0));
  if (exists.empty()) return false;
  absl::StatusOr<ModelFile> file = ReadModelFile(path_);
  if (!file.ok()) {
    return absl::Status(file.status().code(),
                        absl::StrCat("cannot resume from ", path_, ": ", file.status().message()));
  }
  const bool same =
      same_spec_ != nullptr ? same_spec_(file->spec_json) : file->spec_json == spec_json_;
  if (!same) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the checkpoint ", path_,
        " was written by a job with a different spec; resume with the same spec and --set "
        "values, or use another checkpoint directory"));
  }
  if (absl::Status s = RestoreJob(*file, /*with_state=*/true, job_); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the checkpoint ", path_, " does not fit this job: ", s.message()));
  }
  RETURN_IF_ERROR(job_->SyncReplicas());
  return true;
}

absl::Status Checkpointer::Write() {
  if (job_->collective().rank() != 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(ModelFile file, SnapshotJob(*job_, spec_json_));
  return WriteModelFile(path_, file);
}

void Checkpointer::Remove() {
  if (job_->collective().rank() == 0) ::unlink(path_.c_str());
}

}  // namespace cajal
