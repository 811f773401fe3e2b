// The job state machine and job ids.
//
//   QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLING → CANCELLED; QUEUED → CANCELLED.
//   No other transition happens (IsAllowedTransition); the manager applies them.
//
// Pure functions; thread-safe.
#ifndef CAJAL_SERVICE_SERVER_JOB_STATE_H_
#define CAJAL_SERVICE_SERVER_JOB_STATE_H_

#include <string>

#include "absl/status/status.h"
#include "cajal/v1/training_service.pb.h"

namespace cajal {

bool IsAllowedTransition(v1::JobState from, v1::JobState to);
bool IsTerminal(v1::JobState state);
// "RUNNING", "SUCCEEDED", ... as users read them in messages.
std::string StateName(v1::JobState state);

// kInvalidArgument unless `id` is 32 lowercase hex characters (so it can never name a path
// outside the data directory).
absl::Status ValidateJobId(const std::string& id);
// A fresh random id that ValidateJobId accepts.
std::string NewJobId();

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_JOB_STATE_H_
