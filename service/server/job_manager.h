// The job manager: the in-memory table of every job, the operations of the API on it, the
// ordered persistence of each change, and the worker threads that take jobs from the queue
// and run them. Its rooms are files of their own: the state machine (job_state.h), each job's
// event log for watchers (event_log.h), admission at submit (admission.h), the queue and the
// resources jobs wait for there (job_queue.h), crash-loop accounting (crash_loop.h) and the
// run of one job with its checkpoints (job_runner.h).
//
// Resources: SubmitJob estimates the job's memory and refuses what could never fit
// (kInvalidArgument) or cannot fit now (kResourceExhausted); a worker starts the first queued
// job whose memory fits beside the running jobs' and, for a GPU job, that finds a free GPU
// (one job per GPU), and runs it on that GPU's backend.
//
// Reads (Get, List, event logs of active jobs) are served from memory and never block on
// disk. Submit, Cancel, Delete and Metrics write or read the store and may block on I/O: the
// server calls them from its executor thread, never from a gRPC reaction. Workers run one job
// each on `threads` OpenMP threads, the cores divided among --max_concurrent_jobs.
//
// Thread-safe.
#ifndef CAJAL_SERVICE_SERVER_JOB_MANAGER_H_
#define CAJAL_SERVICE_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cajal/v1/training_service.pb.h"
#include "service/server/admission.h"
#include "service/server/crash_loop.h"
#include "service/server/event_log.h"
#include "service/server/job_data.h"
#include "service/server/job_queue.h"
#include "service/server/job_runner.h"
#include "service/server/job_state.h"
#include "service/server/store.h"

namespace cajal {

struct ManagerOptions {
  std::string data_dir;
  int max_concurrent_jobs = 1;
  int max_queued_jobs = 100;
  int threads_per_job = 0;  // 0: the available cores divided among the concurrent jobs
  // A job that was RUNNING when the server stopped uncleanly this many times in a row is
  // FAILED at load instead of run again (crash_loop.h); 0: never.
  int crash_loop_limit = 2;
  // Memory for the jobs together, the live budget, the GPUs (admission.h).
  AdmissionOptions admission;
  // Where jobs may read data (confined paths, uploaded data sets). Required; outlives the
  // manager.
  const JobData* data = nullptr;
};

// kFailedPrecondition for training.device gpu on a server that runs no job on a GPU (`gpus` 0),
// saying why (no CUDA backend, no visible GPU, --gpus 0).
absl::Status CheckDevice(const JobConfig& config, int gpus);

class JobManager : private JobSink {
 public:
  // Loads every stored job; queued and interrupted running jobs are queued again, except a
  // running job in a crash loop (crash_loop.h), which is FAILED.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(const ManagerOptions& options,
                                                            Store* store);
  ~JobManager() override;

  // Starts the workers.
  void Start();
  // A clean shutdown begins: from now on Submit fails with kUnavailable, no queued job
  // starts, and the running jobs' runs are recorded as ended cleanly.
  void StopIntake();
  // Stops running jobs at their next step boundary (they stay RUNNING in the store and resume
  // when the server restarts) and joins the workers.
  void Shutdown();

  absl::StatusOr<v1::Job> Submit(const v1::SubmitJobRequest& request);
  absl::StatusOr<v1::Job> Get(const std::string& id) const;
  absl::StatusOr<v1::ListJobsResponse> List(const v1::ListJobsRequest& request) const;
  absl::StatusOr<v1::Job> Cancel(const std::string& id);
  absl::StatusOr<std::vector<v1::MetricPoint>> Metrics(const std::string& id);
  absl::Status Delete(const std::string& id);
  // The model file of a SUCCEEDED job; kFailedPrecondition otherwise.
  absl::StatusOr<std::string> ModelPath(const std::string& id) const;
  // The files of an artifact: the model (as ModelPath), or the TensorBoard event files of a job
  // submitted with training.tfevents (kFailedPrecondition before the first one exists).
  absl::StatusOr<std::vector<std::string>> ArtifactPaths(const std::string& id,
                                                         v1::Artifact artifact) const;
  // The job's event log: from memory for jobs seen since start, else loaded from the store
  // (blocking). kNotFound for unknown ids.
  absl::StatusOr<std::shared_ptr<EventLog>> Log(const std::string& id);
  // Non-blocking variant: null when the log would have to be loaded from the store.
  absl::StatusOr<std::shared_ptr<EventLog>> TryLog(const std::string& id);

  int threads_per_job() const { return threads_per_job_; }
  std::string JobDir(const std::string& id) const;
  // The job's latest checkpoint (model, optimizer state, position): written every
  // training.checkpoint_every_steps, at every epoch's end and at shutdown; removed on success.
  std::string CheckpointPath(const std::string& id) const;

 private:
  struct Entry {
    v1::Job job;
    int64_t seq = 0;                // creation order, for listing
    std::shared_ptr<EventLog> log;  // null until needed for an old terminal job
    std::shared_ptr<std::atomic<bool>> stop = std::make_shared<std::atomic<bool>>(false);
    // Set at load for a waiting job this server cannot run (its data are gone, it no longer
    // fits): it fails when its turn comes.
    absl::Status refusal;
  };

  JobManager(const ManagerOptions& options, Store* store);
  // The job of an earlier submit with the same request_id: it (same spec) or kAlreadyExists
  // (another spec); nullopt when there is none.
  std::optional<absl::StatusOr<v1::Job>> Replay(const v1::SubmitJobRequest& request);
  std::optional<absl::StatusOr<v1::Job>> ReplayLocked(const v1::SubmitJobRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job's estimate (its data files opened through the data roots and data sets) and
  // demand, with the admission decision counted: the data's error (kPermissionDenied,
  // kNotFound) when a file cannot be read, kInvalidArgument when it could never fit,
  // kResourceExhausted when it cannot now.
  absl::StatusOr<Admitted> Admit(const v1::JobSpec& spec, const JobConfig& config);
  // The estimate alone, of the files the spec names as the job would read them.
  absl::StatusOr<Admitted> Estimate(const v1::JobSpec& spec, JobConfig config) const;
  // What a stored job that waits to run will hold (its estimate is recomputed: the data and
  // the server's resources may have changed); an error when it cannot run here any more.
  absl::StatusOr<Admitted> AdmitStored(v1::Job* job) const;
  void WorkerLoop();
  // Runs one job taken from the queue to its end (or to a shutdown) and records the outcome.
  void RunQueued(const Lease& lease);
  // Gives back a finished job's resources.
  void Release(const Lease& lease);
  // The job's state after a run: SUCCEEDED (its checkpoint removed), FAILED, CANCELLED, or
  // still RUNNING after a shutdown interrupted it.
  void RecordOutcome(const std::string& id, const RunOutcome& outcome);
  // JobSink, for the running jobs.
  void SetProgress(const std::string& id, const v1::Progress& progress) override;
  absl::Status AddMetric(const std::string& id, const v1::MetricPoint& point) override;
  bool Cancelling(const std::string& id) override;
  // Moves the job to `to` (with `error` for FAILED), logs the event and persists both.
  absl::Status Transition(const std::string& id, v1::JobState to, const std::string& error);
  // Applies `mutate` to the job in memory and appends `event` (if any), then persists, in the
  // order of calls. `event` gets its sequence number and time here.
  absl::Status Update(const std::string& id, const std::function<absl::Status(v1::Job*)>& mutate,
                      v1::JobEvent* event);
  // Sets the cajal_jobs, cajal_queue_depth and resource gauges from memory (exact: they cannot
  // drift).
  void PublishJobGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ManagerOptions options_;
  Store* const store_;
  int threads_per_job_ = 1;
  CrashLoopGuard crash_loop_;
  const Admission admission_;

  // Serializes store writes so they land in the order the memory was updated.
  absl::Mutex persist_mu_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, std::string> by_seq_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> by_request_id_ ABSL_GUARDED_BY(mu_);
  JobQueue queue_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Lease> running_ ABSL_GUARDED_BY(mu_);  // started by this server
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  bool intake_open_ ABSL_GUARDED_BY(mu_) = true;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_JOB_MANAGER_H_
