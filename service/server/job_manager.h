// The job manager: the in-memory view of every job, the bounded queue, the worker threads
// that train, cancellation, and each job's event log for watchers.
//
//   QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLING → CANCELLED; QUEUED → CANCELLED.
//   No other transition happens (IsAllowedTransition).
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
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cajal/v1/training_service.pb.h"
#include "core/train/job.h"
#include "service/server/job_data.h"
#include "service/server/store.h"

namespace cajal {

struct ManagerOptions {
  std::string data_dir;
  int max_concurrent_jobs = 1;
  int max_queued_jobs = 100;
  int threads_per_job = 0;  // 0: the available cores divided among the concurrent jobs
  // Where jobs may read data (confined paths, uploaded data sets). Required; outlives the
  // manager.
  const JobData* data = nullptr;
};

bool IsAllowedTransition(v1::JobState from, v1::JobState to);
bool IsTerminal(v1::JobState state);
// kInvalidArgument unless `id` is 32 lowercase hex characters (so it can never name a path
// outside the data directory).
absl::Status ValidateJobId(const std::string& id);

// Told when a job's event log grows or closes. Called without any manager lock held, possibly
// from a job thread; implementations must not block.
class EventListener {
 public:
  virtual ~EventListener() = default;
  virtual void OnEvents() = 0;
};

// The ordered events of one job. Thread-safe.
class EventLog {
 public:
  // Appends events[from..] (at most `max`) to `out`; returns true when the log is closed (the
  // job is terminal) and `from` + the events returned reach its end.
  bool Read(int64_t from, size_t max, std::vector<v1::JobEvent>* out) const;
  // Listeners are held weakly; a dead one is dropped. Returns false (and subscribes nothing)
  // when `max` live listeners are already subscribed.
  bool Subscribe(std::weak_ptr<EventListener> listener, int max = INT32_MAX);
  int64_t size() const;

  // For the manager.
  void Append(v1::JobEvent event);
  void Close();

 private:
  void Notify();
  mutable absl::Mutex mu_;
  std::vector<v1::JobEvent> events_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::weak_ptr<EventListener>> listeners_ ABSL_GUARDED_BY(mu_);
};

class JobManager {
 public:
  // Loads every stored job; queued and interrupted running jobs are queued again.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(const ManagerOptions& options,
                                                            Store* store);
  ~JobManager();

  // Starts the workers.
  void Start();
  // From now on Submit fails with kUnavailable.
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
  };
  class Observer;

  JobManager(const ManagerOptions& options, Store* store);
  void WorkerLoop();
  void RunJob(const std::string& id);
  // Restores an interrupted job from its checkpoint, if it has one.
  void Resume(const std::string& id, TrainingJob* job, Observer* observer);
  // Moves the job to `to` (with `error` for FAILED), logs the event and persists both.
  absl::Status Transition(const std::string& id, v1::JobState to, const std::string& error);
  // Appends a metric point and updates latest_metrics; persists.
  absl::Status AddMetric(const std::string& id, const v1::MetricPoint& point);
  // Applies `mutate` to the job in memory and appends `event` (if any), then persists, in the
  // order of calls. `event` gets its sequence number and time here.
  absl::Status Update(const std::string& id, const std::function<absl::Status(v1::Job*)>& mutate,
                      v1::JobEvent* event);
  // Sets the cajal_jobs and cajal_queue_depth gauges from memory (exact: they cannot drift).
  void PublishJobGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ManagerOptions options_;
  Store* const store_;
  int threads_per_job_ = 1;

  // Serializes store writes so they land in the order the memory was updated.
  absl::Mutex persist_mu_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, std::string> by_seq_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> by_request_id_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  bool intake_open_ ABSL_GUARDED_BY(mu_) = true;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_JOB_MANAGER_H_
