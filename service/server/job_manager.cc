#include "service/server/job_manager.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/io/model_file.h"
#include "core/util/cores.h"
#include "core/util/status_macros.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "service/export/onnx_export.h"
#include "service/server/logging.h"
#include "service/server/metrics.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"
#include "service/tfevents/event_observer.h"
#include "service/tfevents/event_writer.h"

namespace cajal {
namespace {

using google::protobuf::util::TimeUtil;
using v1::JobState;

constexpr size_t kMaxRequestIdBytes = 128;
constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;

std::string NewJobId() {
  std::random_device rd;
  std::string id;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&id, absl::Hex(rd(), absl::kZeroPad8));
  return id;
}

std::string StateName(JobState s) {
  std::string name = v1::JobState_Name(s);
  return name.substr(std::string("JOB_STATE_").size());
}

}  // namespace

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

absl::Status ValidateJobId(const std::string& id) {
  const bool ok = id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
                    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                  });
  if (!ok) return absl::InvalidArgumentError("id: must be 32 lowercase hex characters");
  return absl::OkStatus();
}

// ---- EventLog ------------------------------------------------------------------------------

bool EventLog::Read(int64_t from, size_t max, std::vector<v1::JobEvent>* out) const {
  absl::MutexLock lock(&mu_);
  const int64_t n = static_cast<int64_t>(events_.size());
  int64_t i = std::max<int64_t>(from, 0);
  for (; i < n && max > 0; ++i, --max) out->push_back(events_[i]);
  return closed_ && i >= n;
}

bool EventLog::Subscribe(std::weak_ptr<EventListener> listener, int max) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(std::remove_if(listeners_.begin(), listeners_.end(),
                                  [](const auto& w) { return w.expired(); }),
                   listeners_.end());
  if (static_cast<int64_t>(listeners_.size()) >= max) return false;
  listeners_.push_back(std::move(listener));
  return true;
}

int64_t EventLog::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(events_.size());
}

void EventLog::Append(v1::JobEvent event) {
  {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  Notify();
}

void EventLog::Close() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  Notify();
}

void EventLog::Notify() {
  std::vector<std::shared_ptr<EventListener>> live;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& w : listeners_) {
      if (auto l = w.lock()) live.push_back(std::move(l));
    }
  }
  for (const auto& l : live) l->OnEvents();
}

// ---- JobManager ----------------------------------------------------------------------------

// Reports a running job's progress to the manager, writes its checkpoints and carries its stop
// flag.
class JobManager::Observer : public TrainObserver {
 public:
  Observer(JobManager* manager, std::string id, std::shared_ptr<std::atomic<bool>> stop,
           TrainingJob* job, std::string spec_json, int64_t checkpoint_every)
      : manager_(manager),
        id_(std::move(id)),
        stop_(std::move(stop)),
        job_(job),
        spec_json_(std::move(spec_json)),
        checkpoint_every_(checkpoint_every),
        classification_(job->train_data().classification()),
        meter_(&ServerMetrics()) {}

  // Call right before training starts: the first step is timed from here.
  void StartClock() { last_step_end_ = absl::Now(); }

  // Metric points already in the job's history (a resumed job re-measures some of them).
  void Seen(const v1::MetricPoint& p) { recorded_.emplace(p.step(), p.name()); }

  bool OnStep(const StepReport& s) override {
    meter_.Step(absl::ToDoubleSeconds(absl::Now() - last_step_end_), s.examples);
    {
      absl::MutexLock lock(&manager_->mu_);
      auto it = manager_->jobs_.find(id_);
      if (it != manager_->jobs_.end()) {
        v1::Progress* p = it->second.job.mutable_progress();
        p->set_epoch(s.epoch);
        p->set_step(s.step);
        p->set_total_steps(s.total_steps);
      }
    }
    if (checkpoint_every_ > 0 && s.step % checkpoint_every_ == 0) Checkpoint();
    last_step_end_ = absl::Now();  // checkpoints have their own histogram
    return status.ok() && !stop_->load(std::memory_order_relaxed);
  }

  void OnEpoch(const EpochReport& e) override {
    Add(e.step, e.epoch, "loss", e.loss);
    if (classification_) Add(e.step, e.epoch, "accuracy", e.accuracy);
    if (e.has_val) {
      Add(e.step, e.epoch, "val_loss", e.val_loss);
      if (classification_) Add(e.step, e.epoch, "val_accuracy", e.val_accuracy);
    }
    Checkpoint();
    last_step_end_ = absl::Now();  // evaluation is not a step
  }

  void Add(int64_t step, int epoch, const std::string& name, double value) {
    if (!recorded_.emplace(step, name).second) return;
    v1::MetricPoint p;
    p.set_step(step);
    p.set_epoch(epoch);
    p.set_name(name);
    p.set_value(value);
    *p.mutable_time() = TimeUtil::GetCurrentTime();
    absl::Status s = manager_->AddMetric(id_, p);
    if (!s.ok() && status.ok()) status = s;
  }

  // Writes the job's parameters, optimizer state and position atomically.
  void Checkpoint() {
    if (!status.ok()) return;
    const absl::Time start = absl::Now();
    absl::StatusOr<ModelFile> snapshot = SnapshotJob(*job_, spec_json_);
    absl::Status s = snapshot.ok() ? WriteModelFile(manager_->CheckpointPath(id_), *snapshot)
                                   : snapshot.status();
    ServerMetrics().CheckpointWritten(absl::ToDoubleSeconds(absl::Now() - start), s.ok());
    if (!s.ok()) {
      status = absl::Status(s.code(), absl::StrCat("cannot write a checkpoint: ", s.message()));
    }
  }

  absl::Status status;  // the first failure to record a metric or write a checkpoint

 private:
  JobManager* manager_;
  std::string id_;
  std::shared_ptr<std::atomic<bool>> stop_;
  TrainingJob* job_;
  std::string spec_json_;
  int64_t checkpoint_every_;
  bool classification_;
  std::set<std::pair<int64_t, std::string>> recorded_;
  TrainingMeter meter_;  // this job's steps and its share of the throughput gauge
  absl::Time last_step_end_ = absl::Now();
};

JobManager::JobManager(const ManagerOptions& options, Store* store)
    : options_(options), store_(store) {
  const int concurrent = std::max(1, options.max_concurrent_jobs);
  threads_per_job_ = options.threads_per_job > 0 ? options.threads_per_job
                                                 : std::max(1, AvailableCores() / concurrent);
}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(const ManagerOptions& options,
                                                               Store* store) {
  std::unique_ptr<JobManager> m(new JobManager(options, store));
  ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, store->LoadJobs());
  std::vector<std::string> interrupted_cancels;
  {
    absl::MutexLock lock(&m->mu_);
    for (v1::Job& job : jobs) {
      Entry e;
      e.seq = m->next_seq_++;
      e.job = std::move(job);
      const std::string id = e.job.id();
      if (!IsTerminal(e.job.state())) {
        ASSIGN_OR_RETURN(std::vector<v1::JobEvent> events, store->LoadEvents(id, 0));
        e.log = std::make_shared<EventLog>();
        for (auto& ev : events) e.log->Append(std::move(ev));
        if (e.job.state() == v1::JOB_STATE_CANCELLING) {
          interrupted_cancels.push_back(id);
        } else {
          m->queue_.push_back(id);  // queued, or running when the server stopped
        }
      }
      if (!e.job.request_id().empty()) m->by_request_id_[e.job.request_id()] = id;
      m->by_seq_[e.seq] = id;
      m->jobs_[id] = std::move(e);
    }
    m->PublishJobGauges();
  }
  // A cancellation the previous server did not finish.
  for (const std::string& id : interrupted_cancels) {
    RETURN_IF_ERROR(m->Transition(id, v1::JOB_STATE_CANCELLED, ""));
  }
  return m;
}

JobManager::~JobManager() { Shutdown(); }

void JobManager::Start() {
  for (int i = 0; i < std::max(1, options_.max_concurrent_jobs); ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

void JobManager::StopIntake() {
  absl::MutexLock lock(&mu_);
  intake_open_ = false;
}

void JobManager::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    intake_open_ = false;
    shutting_down_ = true;
    for (auto& [id, e] : jobs_) {
      if (e.job.state() == v1::JOB_STATE_RUNNING) e.stop->store(true);
    }
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

std::string JobManager::JobDir(const std::string& id) const {
  return absl::StrCat(options_.data_dir, "/jobs/", id);
}

absl::Status JobManager::Update(const std::string& id,
                                const std::function<absl::Status(v1::Job*)>& mutate,
                                v1::JobEvent* event) {
  absl::MutexLock persist(&persist_mu_);
  v1::Job snapshot;
  std::shared_ptr<EventLog> log;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
    RETURN_IF_ERROR(mutate(&it->second.job));
    snapshot = it->second.job;
    if (event != nullptr) {
      log = it->second.log;
      event->set_sequence(log->size());
      *event->mutable_time() = TimeUtil::GetCurrentTime();
      *event->mutable_progress() = snapshot.progress();
    }
  }
  // Watchers see an event only once it is durable.
  RETURN_IF_ERROR(store_->PutJob(snapshot, event));
  if (event != nullptr) {
    log->Append(*event);
    if (IsTerminal(snapshot.state())) log->Close();
  }
  return absl::OkStatus();
}

absl::Status JobManager::Transition(const std::string& id, JobState to, const std::string& error) {
  v1::JobEvent event;
  event.set_state(to);
  event.set_error(error);
  JobState from = v1::JOB_STATE_UNSPECIFIED;  // set once the change is made in memory
  absl::Status s = Update(
      id,
      [&](v1::Job* job) -> absl::Status {
        if (!IsAllowedTransition(job->state(), to)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "job ", id, " is ", StateName(job->state()), "; it cannot become ", StateName(to)));
        }
        from = job->state();
        job->set_state(to);
        if (to == v1::JOB_STATE_RUNNING) *job->mutable_start_time() = TimeUtil::GetCurrentTime();
        if (IsTerminal(to)) *job->mutable_end_time() = TimeUtil::GetCurrentTime();
        if (to == v1::JOB_STATE_FAILED) job->set_error(error);
        return absl::OkStatus();
      },
      &event);
  if (from != v1::JOB_STATE_UNSPECIFIED) {
    ServerMetrics().JobStateChanged(from, to);
    const std::string from_label = JobStateLabel(from), to_label = JobStateLabel(to);
    if (to == v1::JOB_STATE_FAILED) {
      cajal::Log(LogLevel::kError, "job state changed",
                 {{"job_id", id}, {"from", from_label}, {"state", to_label}, {"error", error}});
    } else {
      cajal::Log(LogLevel::kInfo, "job state changed",
                 {{"job_id", id}, {"from", from_label}, {"state", to_label}});
    }
    absl::MutexLock lock(&mu_);
    PublishJobGauges();
  }
  // An illegal transition is a race the caller handles (a cancel beat the job); anything else
  // is the store failing, which callers that ignore the status would otherwise hide.
  if (!s.ok() && !absl::IsFailedPrecondition(s)) {
    cajal::Log(LogLevel::kError, "cannot record a job state change",
               {{"job_id", id}, {"state", JobStateLabel(to)}, {"error", s.message()}});
  }
  return s;
}

void JobManager::PublishJobGauges() {
  std::map<JobState, int64_t> by_state;
  for (const auto& [id, e] : jobs_) ++by_state[e.job.state()];
  int64_t waiting = 0;
  for (const std::string& id : queue_) {
    auto it = jobs_.find(id);
    if (it != jobs_.end() && !IsTerminal(it->second.job.state())) ++waiting;
  }
  ServerMetrics().SetJobCounts(by_state, waiting);
}

absl::Status JobManager::AddMetric(const std::string& id, const v1::MetricPoint& point) {
  v1::JobEvent event;
  *event.mutable_metric() = point;
  return Update(
      id,
      [&](v1::Job* job) {
        (*job->mutable_latest_metrics())[point.name()] = point.value();
        return absl::OkStatus();
      },
      &event);
}

absl::StatusOr<v1::Job> JobManager::Submit(const v1::SubmitJobRequest& request) {
  if (request.request_id().size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("request_id: at most ", kMaxRequestIdBytes,
                                                   " characters, got ",
                                                   request.request_id().size()));
  }
  if (!request.has_spec()) return absl::InvalidArgumentError("spec: required");
  if (request.spec().ByteSizeLong() > kMaxSpecBytes) {
    return absl::InvalidArgumentError(absl::StrCat("spec: ", request.spec().ByteSizeLong(),
                                                   " bytes is larger than the limit of ",
                                                   kMaxSpecBytes));
  }
  ASSIGN_OR_RETURN(const JobConfig config, ToJobConfig(request.spec()));
  // A job for a device this server lacks could only fail.
  if (config.device == DeviceChoice::kGpu && VisibleGpuCount() == 0) {
    return absl::FailedPreconditionError(
        HasCudaBackend()
            ? "training.device: gpu, but this server has no visible GPU; submit it to a server "
              "on a GPU node, or use device: cpu or auto"
            : "training.device: gpu, but this server was built without the CUDA backend; use "
              "device: cpu or auto");
  }
  // Data files: beneath the data roots, or uploaded data sets that exist.
  RETURN_IF_ERROR(options_.data->Check(request.spec()));

  absl::MutexLock persist(&persist_mu_);
  v1::Job job;
  v1::JobEvent event;
  {
    absl::MutexLock lock(&mu_);
    if (!request.request_id().empty()) {
      if (auto it = by_request_id_.find(request.request_id()); it != by_request_id_.end()) {
        const v1::Job& existing = jobs_.at(it->second).job;
        if (google::protobuf::util::MessageDifferencer::Equals(existing.spec(), request.spec())) {
          return existing;
        }
        return absl::AlreadyExistsError(absl::StrCat("request_id \"", request.request_id(),
                                                     "\" was already used for job ", existing.id(),
                                                     " with a different spec"));
      }
    }
    if (!intake_open_) {
      return absl::UnavailableError("the server is shutting down and accepts no new jobs");
    }
    const int64_t queued = std::count_if(queue_.begin(), queue_.end(), [&](const std::string& q) {
      return jobs_.at(q).job.state() == v1::JOB_STATE_QUEUED;
    });
    if (queued >= options_.max_queued_jobs) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the queue is full (", queued,
          " jobs waiting, --max_queued_jobs=", options_.max_queued_jobs, "); retry later"));
    }
    job.set_id(NewJobId());
    *job.mutable_spec() = request.spec();
    job.set_state(v1::JOB_STATE_QUEUED);
    job.set_request_id(request.request_id());
    *job.mutable_create_time() = TimeUtil::GetCurrentTime();
    event.set_sequence(0);
    event.set_state(v1::JOB_STATE_QUEUED);
    *event.mutable_time() = job.create_time();
  }
  RETURN_IF_ERROR(store_->PutJob(job, &event));
  absl::MutexLock lock(&mu_);
  Entry e;
  e.job = job;
  e.seq = next_seq_++;
  e.log = std::make_shared<EventLog>();
  e.log->Append(event);
  by_seq_[e.seq] = job.id();
  if (!job.request_id().empty()) by_request_id_[job.request_id()] = job.id();
  jobs_[job.id()] = std::move(e);
  queue_.push_back(job.id());
  PublishJobGauges();
  ServerMetrics().JobSubmitted();
  cajal::Log(LogLevel::kInfo, "job submitted", {{"job_id", job.id()}, {"state", "queued"}});
  return job;
}

absl::StatusOr<v1::Job> JobManager::Get(const std::string& id) const {
  RETURN_IF_ERROR(ValidateJobId(id));
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  return it->second.job;
}

absl::StatusOr<v1::ListJobsResponse> JobManager::List(const v1::ListJobsRequest& r) const {
  if (r.page_size() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be >= 0, got ", r.page_size()));
  }
  const int size = r.page_size() == 0 ? kDefaultPageSize : std::min(r.page_size(), kMaxPageSize);
  int64_t below = INT64_MAX;
  if (!r.page_token().empty() && (!absl::SimpleAtoi(r.page_token(), &below) || below <= 0)) {
    return absl::InvalidArgumentError("page_token: not a token this server returned");
  }
  auto matches = [&](const v1::Job& job) {
    if (r.state() != v1::JOB_STATE_UNSPECIFIED && job.state() != r.state()) return false;
    for (const auto& [k, v] : r.labels()) {
      auto it = job.spec().labels().find(k);
      if (it == job.spec().labels().end() || it->second != v) return false;
    }
    return true;
  };
  v1::ListJobsResponse resp;
  absl::MutexLock lock(&mu_);
  auto it = std::make_reverse_iterator(by_seq_.lower_bound(below));
  for (; it != by_seq_.rend(); ++it) {
    const Entry& e = jobs_.at(it->second);
    if (!matches(e.job)) continue;
    if (resp.jobs_size() == size) {
      // Another match exists: hand out a token for the page after this one.
      resp.set_next_page_token(std::to_string(jobs_.at(resp.jobs().rbegin()->id()).seq));
      break;
    }
    *resp.add_jobs() = e.job;
  }
  return resp;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& id) {
  ASSIGN_OR_RETURN(v1::Job job, Get(id));
  JobState to;
  switch (job.state()) {
    case v1::JOB_STATE_QUEUED:
      to = v1::JOB_STATE_CANCELLED;
      break;
    case v1::JOB_STATE_RUNNING:
      to = v1::JOB_STATE_CANCELLING;
      break;
    case v1::JOB_STATE_CANCELLING:
      return job;
    default:
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " is already ", StateName(job.state()),
                       "; only queued or running jobs can be cancelled"));
  }
  RETURN_IF_ERROR(Transition(id, to, ""));
  {
    absl::MutexLock lock(&mu_);
    if (to == v1::JOB_STATE_CANCELLING) jobs_.at(id).stop->store(true);
  }
  return Get(id);
}

absl::StatusOr<std::vector<v1::MetricPoint>> JobManager::Metrics(const std::string& id) {
  RETURN_IF_ERROR(Get(id).status());
  ASSIGN_OR_RETURN(std::vector<v1::JobEvent> events, store_->LoadEvents(id, 0));
  std::vector<v1::MetricPoint> points;
  for (const auto& e : events) {
    if (e.has_metric()) points.push_back(e.metric());
  }
  return points;
}

absl::Status JobManager::Delete(const std::string& id) {
  ASSIGN_OR_RETURN(v1::Job job, Get(id));
  if (!IsTerminal(job.state())) {
    return absl::FailedPreconditionError(absl::StrCat("job ", id, " is ", StateName(job.state()),
                                                      "; cancel it and wait until it is CANCELLED "
                                                      "before deleting it"));
  }
  absl::MutexLock persist(&persist_mu_);
  RETURN_IF_ERROR(store_->DeleteJob(id));
  std::error_code ec;
  std::filesystem::remove_all(JobDir(id), ec);
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it != jobs_.end()) {
    by_seq_.erase(it->second.seq);
    if (!it->second.job.request_id().empty()) by_request_id_.erase(it->second.job.request_id());
    if (it->second.log) it->second.log->Close();
    jobs_.erase(it);
    PublishJobGauges();
  }
  if (ec) {
    return absl::InternalError(absl::StrCat("job ", id,
                                            " was deleted but its files could not be "
                                            "removed: ",
                                            ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> JobManager::ArtifactPaths(const std::string& id,
                                                                   v1::Artifact artifact) const {
  if (artifact != v1::ARTIFACT_TFEVENTS) {
    if (!v1::Artifact_IsValid(artifact)) {
      return absl::InvalidArgumentError(absl::StrCat("artifact: unknown value ", artifact));
    }
    ASSIGN_OR_RETURN(std::string path, ModelPath(id));
    if (artifact == v1::ARTIFACT_ONNX) {
      ASSIGN_OR_RETURN(path, OnnxBesideModel(path));
    }
    return std::vector<std::string>{path};
  }
  ASSIGN_OR_RETURN(v1::Job job, Get(id));
  if (!job.spec().training().tfevents()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", id, " was not submitted with training.tfevents: true; it has no event files"));
  }
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(JobDir(id) + "/tfevents", ec)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  if (files.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " has written no event file yet"));
  }
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<std::string> JobManager::ModelPath(const std::string& id) const {
  ASSIGN_OR_RETURN(v1::Job job, Get(id));
  if (job.state() != v1::JOB_STATE_SUCCEEDED) {
    return absl::FailedPreconditionError(absl::StrCat("job ", id, " is ", StateName(job.state()),
                                                      "; only a SUCCEEDED job has a model"));
  }
  return JobDir(id) + "/model.cajal";
}

absl::StatusOr<std::shared_ptr<EventLog>> JobManager::TryLog(const std::string& id) {
  RETURN_IF_ERROR(ValidateJobId(id));
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  return it->second.log;
}

absl::StatusOr<std::shared_ptr<EventLog>> JobManager::Log(const std::string& id) {
  ASSIGN_OR_RETURN(std::shared_ptr<EventLog> log, TryLog(id));
  if (log) return log;
  // A terminal job from before this server started: its history is in the store.
  ASSIGN_OR_RETURN(std::vector<v1::JobEvent> events, store_->LoadEvents(id, 0));
  auto loaded = std::make_shared<EventLog>();
  for (auto& e : events) loaded->Append(std::move(e));
  loaded->Close();
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  if (!it->second.log) it->second.log = loaded;
  return it->second.log;
}

void JobManager::WorkerLoop() {
  while (true) {
    std::string id;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](JobManager* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu_) {
            return m->shutting_down_ || !m->queue_.empty();
          },
          this));
      if (shutting_down_) return;
      id = queue_.front();
      queue_.pop_front();
      PublishJobGauges();
    }
    RunJob(id);
  }
}

void JobManager::RunJob(const std::string& id) {
  v1::JobSpec spec;
  std::shared_ptr<std::atomic<bool>> stop;
  bool resumed = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    const JobState state = it->second.job.state();
    if (state != v1::JOB_STATE_QUEUED && state != v1::JOB_STATE_RUNNING) return;  // cancelled
    resumed = state == v1::JOB_STATE_RUNNING;
    spec = it->second.job.spec();
    stop = it->second.stop;
  }
  if (!resumed && !Transition(id, v1::JOB_STATE_RUNNING, "").ok()) return;
  auto fail = [&](const absl::Status& s) {
    (void)Transition(id, v1::JOB_STATE_FAILED, std::string(s.message()));
  };
  auto finish_cancelled = [&]() -> bool {
    absl::MutexLock lock(&mu_);
    return jobs_.at(id).job.state() == v1::JOB_STATE_CANCELLING;
  };

  absl::StatusOr<JobConfig> config = ToJobConfig(spec);
  if (!config.ok()) return fail(config.status());
  // Held open until the job ends: what it reads cannot be swapped after this point.
  absl::StatusOr<JobFiles> data_files = options_.data->Open(spec, &*config);
  if (!data_files.ok()) return fail(data_files.status());
  config->threads =
      config->threads > 0 ? std::min(config->threads, threads_per_job_) : threads_per_job_;
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(*config);
  if (!job.ok()) return fail(job.status());
  std::error_code ec;
  std::filesystem::create_directories(JobDir(id), ec);
  if (ec) {
    return fail(absl::InternalError(
        absl::StrCat("cannot create the job directory ", JobDir(id), ": ", ec.message())));
  }
  const std::string spec_json = SpecToJson(spec);
  Observer observer(this, id, stop, job->get(), spec_json,
                    spec.training().checkpoint_every_steps());
  if (resumed) Resume(id, job->get(), &observer);

  // TensorBoard event files, when asked for: a new file per run (a resumed job adds one).
  std::unique_ptr<EventWriter> events_writer;
  std::unique_ptr<EventFileObserver> events;
  if (spec.training().tfevents()) {
    absl::StatusOr<std::unique_ptr<EventWriter>> w = EventWriter::Create(JobDir(id) + "/tfevents");
    if (!w.ok()) return fail(w.status());
    events_writer = *std::move(w);
    events = std::make_unique<EventFileObserver>(events_writer.get(),
                                                 (*job)->train_data().classification(),
                                                 spec.training().log_every_steps(), &observer);
  }
  TrainObserver* top = events ? static_cast<TrainObserver*>(events.get()) : &observer;
  absl::StatusOr<TrainResult> result;
  observer.StartClock();
  try {
    result = (*job)->Run(top);
  } catch (const std::exception& e) {
    result = absl::InternalError(absl::StrCat("training failed: ", e.what()));
  }
  if (!observer.status.ok()) return fail(observer.status);
  if (events && !events->status().ok()) return fail(events->status());
  if (finish_cancelled()) {
    (void)Transition(id, v1::JOB_STATE_CANCELLED, "");
    return;
  }
  if (!result.ok()) return fail(result.status());
  if (result->stop_reason == StopReason::kCancelled) {
    // The server is shutting down: keep the job RUNNING with a checkpoint of where it stopped;
    // the next server resumes it from there.
    observer.Checkpoint();
    return;
  }
  absl::StatusOr<ModelFile> model = SnapshotJob(**job, spec_json);
  if (absl::Status s =
          model.ok() ? WriteModelFile(JobDir(id) + "/model.cajal", *model) : model.status();
      !s.ok()) {
    return fail(absl::Status(s.code(), absl::StrCat("cannot save the model: ", s.message())));
  }
  if (result->has_test) {
    const int epoch = (*job)->state().epoch;
    observer.Add(result->steps, epoch, "test_loss", result->test.loss);
    if ((*job)->train_data().classification()) {
      observer.Add(result->steps, epoch, "test_accuracy", result->test.accuracy);
    }
  }
  observer.Add(result->steps, (*job)->state().epoch, "samples_per_sec", result->samples_per_sec);
  if (!observer.status.ok()) return fail(observer.status);
  (void)Transition(id, v1::JOB_STATE_SUCCEEDED, "");
  std::filesystem::remove(CheckpointPath(id), ec);
}

void JobManager::Resume(const std::string& id, TrainingJob* job, Observer* observer) {
  std::shared_ptr<EventLog> log;
  {
    absl::MutexLock lock(&mu_);
    log = jobs_.at(id).log;
  }
  std::vector<v1::JobEvent> events;
  log->Read(0, SIZE_MAX, &events);
  for (const auto& e : events) {
    if (e.has_metric()) observer->Seen(e.metric());
  }
  const std::string path = CheckpointPath(id);
  if (!std::filesystem::exists(path)) return;  // interrupted before its first checkpoint
  absl::StatusOr<ModelFile> checkpoint = ReadModelFile(path);
  absl::Status s =
      checkpoint.ok() ? RestoreJob(*checkpoint, /*with_state=*/true, job) : checkpoint.status();
  if (!s.ok()) {
    // Checkpoints are written atomically, so this means the file was damaged outside cajal;
    // start over rather than fail the job.
    cajal::Log(LogLevel::kWarning, "ignoring a damaged checkpoint; the job starts over",
               {{"job_id", id}, {"error", s.message()}});
    return;
  }
  absl::MutexLock lock(&mu_);
  v1::Progress* p = jobs_.at(id).job.mutable_progress();
  p->set_step(job->state().step);
  p->set_epoch(job->state().epoch + 1);
  p->set_total_steps(job->total_steps());
}

std::string JobManager::CheckpointPath(const std::string& id) const {
  return JobDir(id) + "/checkpoint.cajal";
}

}  // namespace cajal
