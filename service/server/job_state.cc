#include "service/server/job_state.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"

namespace cajal {

using v1::JobState;

bool IsTerminal(JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

bool IsAllowedTransition(JobState from, JobState to) {
  switch (from) {
    case v1::JOB_STATE_QUEUED:
      return to == v1::JOB_STATE_RUNNING || to == v1::JOB_STATE_CANCELLED;
    case v1::JOB_STATE_RUNNING:
      return to == v1::JOB_STATE_SUCCEEDED || to == v1::JOB_STATE_FAILED ||
             to == v1::JOB_STATE_CANCELLING;
    case v1::JOB_STATE_CANCELLING:
      return to == v1::JOB_STATE_CANCELLED;
    default:
      return false;
  }
}

std::string StateName(JobState s) {
  std::string name = v1::JobState_Name(s);
  return name.substr(std::string("JOB_STATE_").size());
}

absl::Status ValidateJobId(const std::string& id) {
  const bool ok = id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
                    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                  });
  if (!ok) return absl::InvalidArgumentError("id: must be 32 lowercase hex characters");
  return absl::OkStatus();
}

std::string NewJobId() {
  std::random_device rd;
  std::string id;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&id, absl::Hex(rd(), absl::kZeroPad8));
  return id;
}

}  // namespace cajal
