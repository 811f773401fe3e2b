// Runs one job on the calling thread (a worker's): prepares it, resumes it from its checkpoint
// when it was interrupted, trains it while reporting progress and metrics and writing
// checkpoints (core/train/checkpoint.h), and saves the trained model. What becomes of the
// job's state is the manager's decision: the runner reports through a JobSink and returns how
// the run ended.
//
//   RunOutcome outcome = RunJob(request, &sink);
//   switch (outcome.end) { case RunEnd::kSucceeded: ... }
//
// Files, under request.job_dir: checkpoint.cajal (every training.checkpoint_every_steps, at
// every epoch's end and when stopped for a shutdown), model.cajal (on success), tfevents/
// (with training.tfevents). A bad spec, a job that does not fit (kResourceExhausted naming the
// buffer) and a failing backend (kInternal naming the layer) are kFailed outcomes with the
// core's message; RunJob never throws: a last-resort catch makes any exception one too.
#ifndef CAJAL_SERVICE_SERVER_JOB_RUNNER_H_
#define CAJAL_SERVICE_SERVER_JOB_RUNNER_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cajal/v1/training_service.pb.h"
#include "core/backend/backend.h"
#include "service/server/job_data.h"

namespace cajal {

// What a running job reports to (the manager). Called on the job's thread; must be
// thread-safe against the manager's other callers.
class JobSink {
 public:
  virtual ~JobSink() = default;
  virtual void SetProgress(const std::string& id, const v1::Progress& progress) = 0;
  // Persists a metric point; errors are the store's (the run then fails with them).
  virtual absl::Status AddMetric(const std::string& id, const v1::MetricPoint& point) = 0;
  // Whether the job was asked to cancel (then a stopped run is CANCELLED, not interrupted).
  virtual bool Cancelling(const std::string& id) = 0;
};

struct RunRequest {
  std::string id;
  v1::JobSpec spec;
  std::string job_dir;  // created if missing
  int max_threads = 1;  // the job's compute threads: training.threads, at most this many
  // Where the job's data files are (confined paths, uploaded data sets), opened when the job
  // is prepared so a path swapped after SubmitJob cannot change what it reads; null: the
  // spec's paths as they are (a local run).
  const JobData* data = nullptr;
  // The backend to train on; null: the one training.device selects (core/backend/registry.h).
  Backend* backend = nullptr;
  // Set (by a cancel or a shutdown) to stop the run at its next step boundary.
  std::shared_ptr<std::atomic<bool>> stop;
  // The job was RUNNING when the previous server stopped: continue from its checkpoint.
  bool resume = false;
  // Metric points already in the job's history; a resumed job does not record them again.
  std::vector<v1::MetricPoint> recorded;
};

enum class RunEnd {
  kSucceeded,    // model.cajal is written; the checkpoint is still there (the manager removes it)
  kFailed,       // `error` says why
  kCancelled,    // stopped at a step boundary after a cancel
  kInterrupted,  // stopped for a shutdown: a checkpoint of where it stopped is written
};

struct RunOutcome {
  RunEnd end = RunEnd::kFailed;
  absl::Status error;  // kFailed only
};

RunOutcome RunJob(const RunRequest& request, JobSink* sink);

// Where the runner keeps the job's checkpoint and model.
std::string CheckpointFile(const std::string& job_dir);
std::string ModelFilePath(const std::string& job_dir);

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_JOB_RUNNER_H_
