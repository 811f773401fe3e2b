#include "service/server/job_manager.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/backend/registry.h"
#include "core/util/cores.h"
#include "core/util/status_macros.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "service/export/onnx_export.h"
#include "service/server/logging.h"
#include "service/server/metrics.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"

namespace cajal {
namespace {

using google::protobuf::util::TimeUtil;
using v1::JobState;

constexpr size_t kMaxRequestIdBytes = 128;
constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;

// What SubmitJob checks of the request before the spec.
absl::Status CheckRequest(const v1::SubmitJobRequest& request) {
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
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckDevice(const JobConfig& config, int gpus) {
  if (config.device != DeviceChoice::kGpu || gpus > 0) return absl::OkStatus();
  if (VisibleGpuCount() > 0) {
    return absl::FailedPreconditionError(
        "training.device: gpu, but this server runs no job on its GPUs (--gpus 0); submit it "
        "to a server that does, or use device: cpu or auto");
  }
  return absl::FailedPreconditionError(
      HasCudaBackend()
          ? "training.device: gpu, but this server has no visible GPU; submit it to a server "
            "on a GPU node, or use device: cpu or auto"
          : "training.device: gpu, but this server was built without the CUDA backend; use "
            "device: cpu or auto");
}

JobManager::JobManager(const ManagerOptions& options, Store* store)
    : options_(options),
      store_(store),
      crash_loop_(store, options.crash_loop_limit),
      admission_(options.admission),
      queue_(options.admission.capacity.bytes, options.admission.gpus) {
  const int concurrent = std::max(1, options.max_concurrent_jobs);
  threads_per_job_ = options.threads_per_job > 0 ? options.threads_per_job
                                                 : std::max(1, AvailableCores() / concurrent);
}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(const ManagerOptions& options,
                                                               Store* store) {
  std::unique_ptr<JobManager> m(new JobManager(options, store));
  ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, store->LoadJobs());
  ASSIGN_OR_RETURN(const auto interrupted_runs, store->LoadInterruptedRuns());
  std::vector<std::string> interrupted_cancels;
  std::vector<std::pair<std::string, int>> crash_loops;
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
        auto runs = interrupted_runs.find(id);
        const int unclean = runs == interrupted_runs.end() ? 0 : runs->second;
        if (e.job.state() == v1::JOB_STATE_CANCELLING) {
          interrupted_cancels.push_back(id);
        } else if (e.job.state() == v1::JOB_STATE_RUNNING && m->crash_loop_.Exceeded(unclean)) {
          crash_loops.emplace_back(id, unclean);
        } else {
          // Queued, or running when the server stopped.
          absl::StatusOr<Admitted> admitted = m->AdmitStored(&e.job);
          e.refusal = admitted.status();
          m->queue_.Push(id, admitted.ok() ? admitted->demand : Demand{});
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
  for (const auto& [id, unclean] : crash_loops) {
    RETURN_IF_ERROR(m->Transition(id, v1::JOB_STATE_FAILED, CrashLoopGuard::Message(unclean)));
    RETURN_IF_ERROR(store->EndRun(id));
  }
  return m;
}

absl::StatusOr<Admitted> JobManager::AdmitStored(v1::Job* job) const {
  ASSIGN_OR_RETURN(const JobConfig config, ToJobConfig(job->spec()));
  RETURN_IF_ERROR(CheckDevice(config, admission_.gpus()));
  ASSIGN_OR_RETURN(Admitted admitted, Estimate(job->spec(), config));
  *job->mutable_memory_estimate() = ToProto(admitted.estimate);
  RETURN_IF_ERROR(admission_.CheckCapacity(admitted));
  return admitted;
}

JobManager::~JobManager() { Shutdown(); }

void JobManager::Start() {
  for (int i = 0; i < std::max(1, options_.max_concurrent_jobs); ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

void JobManager::StopIntake() {
  {
    absl::MutexLock lock(&mu_);
    intake_open_ = false;
  }
  crash_loop_.StopCleanly();
}

void JobManager::Shutdown() {
  crash_loop_.StopCleanly();
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
  for (const std::string& id : queue_.ids()) {
    auto it = jobs_.find(id);
    if (it != jobs_.end() && !IsTerminal(it->second.job.state())) ++waiting;
  }
  ServerMetrics().SetJobCounts(by_state, waiting);
  std::vector<int> jobs_per_gpu(static_cast<size_t>(queue_.gpus().count()), 0);
  for (const auto& [id, lease] : running_) {
    if (lease.gpu >= 0) ++jobs_per_gpu[static_cast<size_t>(lease.gpu)];
  }
  ServerMetrics().SetJobResources(queue_.capacity(), queue_.reserved_bytes(), jobs_per_gpu);
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
  RETURN_IF_ERROR(CheckRequest(request));
  // An idempotent retry gets its job back whatever the resources are now.
  if (std::optional<absl::StatusOr<v1::Job>> replay = Replay(request)) return *std::move(replay);
  ASSIGN_OR_RETURN(const JobConfig config, ToJobConfig(request.spec()));
  // A job for a device this server lacks could only fail.
  RETURN_IF_ERROR(CheckDevice(config, admission_.gpus()));
  // Data files: beneath the data roots, or uploaded data sets that exist (opened to estimate
  // the data set's memory, closed again: the job opens them anew when it starts).
  ASSIGN_OR_RETURN(const Admitted admitted, Admit(request.spec(), config));

  absl::MutexLock persist(&persist_mu_);
  v1::Job job;
  v1::JobEvent event;
  {
    absl::MutexLock lock(&mu_);
    if (std::optional<absl::StatusOr<v1::Job>> replay = ReplayLocked(request)) {
      return *std::move(replay);  // a concurrent retry stored it meanwhile
    }
    if (!intake_open_) {
      return absl::UnavailableError("the server is shutting down and accepts no new jobs");
    }
    const std::vector<std::string> waiting = queue_.ids();
    const int64_t queued = std::count_if(waiting.begin(), waiting.end(), [&](const std::string& q) {
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
    *job.mutable_memory_estimate() = ToProto(admitted.estimate);
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
  queue_.Push(job.id(), admitted.demand);
  PublishJobGauges();
  ServerMetrics().JobSubmitted();
  ServerMetrics().AdmissionDecided(AdmissionDecision::kAccepted);
  cajal::Log(LogLevel::kInfo, "job submitted", {{"job_id", job.id()}, {"state", "queued"}});
  return job;
}

std::optional<absl::StatusOr<v1::Job>> JobManager::Replay(const v1::SubmitJobRequest& request) {
  absl::MutexLock lock(&mu_);
  return ReplayLocked(request);
}

std::optional<absl::StatusOr<v1::Job>> JobManager::ReplayLocked(
    const v1::SubmitJobRequest& request) {
  if (request.request_id().empty()) return std::nullopt;
  auto it = by_request_id_.find(request.request_id());
  if (it == by_request_id_.end()) return std::nullopt;
  const v1::Job& existing = jobs_.at(it->second).job;
  if (google::protobuf::util::MessageDifferencer::Equals(existing.spec(), request.spec())) {
    return absl::StatusOr<v1::Job>(existing);
  }
  return absl::StatusOr<v1::Job>(absl::AlreadyExistsError(
      absl::StrCat("request_id \"", request.request_id(), "\" was already used for job ",
                   existing.id(), " with a different spec")));
}

absl::StatusOr<Admitted> JobManager::Estimate(const v1::JobSpec& spec, JobConfig config) const {
  // Held open while the estimate inspects them (an uploaded data set has no path of its own).
  ASSIGN_OR_RETURN(const JobFiles files, options_.data->Open(spec, &config));
  return admission_.Estimate(config);
}

absl::StatusOr<Admitted> JobManager::Admit(const v1::JobSpec& spec, const JobConfig& config) {
  ASSIGN_OR_RETURN(Admitted admitted, Estimate(spec, config));
  if (absl::Status s = admission_.CheckCapacity(admitted); !s.ok()) {
    ServerMetrics().AdmissionDecided(AdmissionDecision::kTooLarge);
    return s;
  }
  int64_t reserved;
  {
    absl::MutexLock lock(&mu_);
    reserved = queue_.reserved_bytes();
  }
  if (absl::Status s = admission_.CheckNow(admitted, reserved); !s.ok()) {
    ServerMetrics().AdmissionDecided(AdmissionDecision::kNotNow);
    return s;
  }
  return admitted;
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
    if (to == v1::JOB_STATE_CANCELLED && queue_.Remove(id)) PublishJobGauges();
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
  return ModelFilePath(JobDir(id));
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
    Lease lease;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](JobManager* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu_) {
            return m->shutting_down_ || (m->intake_open_ && m->queue_.CanPick());
          },
          this));
      if (shutting_down_) return;
      lease = *queue_.Pick();
      running_[lease.id] = lease;
      PublishJobGauges();
    }
    RunQueued(lease);
  }
}

void JobManager::Release(const Lease& lease) {
  absl::MutexLock lock(&mu_);
  queue_.Release(lease);
  running_.erase(lease.id);
  PublishJobGauges();
}

void JobManager::RunQueued(const Lease& lease) {
  // The job's memory and GPU go back as soon as its run is over: before its final state, so a
  // client that sees it finished finds them free.
  absl::Cleanup release = [this, &lease] { Release(lease); };
  const std::string& id = lease.id;
  RunRequest request;
  request.id = id;
  request.job_dir = JobDir(id);
  request.max_threads = threads_per_job_;
  request.data = options_.data;
  std::shared_ptr<EventLog> log;
  absl::Status refusal;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    const JobState state = it->second.job.state();
    if (state != v1::JOB_STATE_QUEUED && state != v1::JOB_STATE_RUNNING) return;  // cancelled
    request.resume = state == v1::JOB_STATE_RUNNING;
    request.spec = it->second.job.spec();
    request.stop = it->second.stop;
    log = it->second.log;
    refusal = it->second.refusal;
  }
  const absl::StatusOr<bool> counted = crash_loop_.Begin(id);
  if (counted.ok() && !*counted) return;  // a clean shutdown began: the next server runs it
  if (!request.resume && !Transition(id, v1::JOB_STATE_RUNNING, "").ok()) {
    crash_loop_.End(id);
    return;
  }
  RunOutcome outcome;
  absl::StatusOr<Backend*> backend =
      lease.gpu >= 0 ? GetBackend({DeviceChoice::kGpu, lease.gpu}) : CpuBackend();
  if (!counted.ok()) {
    outcome = {RunEnd::kFailed,
               absl::Status(counted.status().code(), absl::StrCat("cannot record the job's start: ",
                                                                  counted.status().message()))};
  } else if (!refusal.ok()) {
    outcome = {RunEnd::kFailed, refusal};
  } else if (!backend.ok()) {
    outcome = {RunEnd::kFailed, backend.status()};
  } else {
    request.backend = *backend;
    if (request.resume) {
      std::vector<v1::JobEvent> events;
      log->Read(0, SIZE_MAX, &events);
      for (const auto& e : events) {
        if (e.has_metric()) request.recorded.push_back(e.metric());
      }
    }
    outcome = RunJob(request, this);
  }
  std::move(release).Invoke();
  RecordOutcome(id, outcome);
  crash_loop_.End(id);
}

void JobManager::RecordOutcome(const std::string& id, const RunOutcome& outcome) {
  switch (outcome.end) {
    case RunEnd::kSucceeded:
      if (Transition(id, v1::JOB_STATE_SUCCEEDED, "").ok()) {
        std::error_code ec;
        std::filesystem::remove(CheckpointPath(id), ec);
      } else if (Cancelling(id)) {  // a cancel that came in after the last step
        (void)Transition(id, v1::JOB_STATE_CANCELLED, "");
      }
      break;
    case RunEnd::kFailed:
      if (Cancelling(id)) {
        (void)Transition(id, v1::JOB_STATE_CANCELLED, "");
      } else {
        (void)Transition(id, v1::JOB_STATE_FAILED, std::string(outcome.error.message()));
      }
      break;
    case RunEnd::kCancelled:
      (void)Transition(id, v1::JOB_STATE_CANCELLED, "");
      break;
    case RunEnd::kInterrupted:
      break;  // stays RUNNING with its checkpoint; the next server resumes it
  }
}

void JobManager::SetProgress(const std::string& id, const v1::Progress& progress) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it != jobs_.end()) *it->second.job.mutable_progress() = progress;
}

bool JobManager::Cancelling(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  return it != jobs_.end() && it->second.job.state() == v1::JOB_STATE_CANCELLING;
}

std::string JobManager::CheckpointPath(const std::string& id) const {
  return CheckpointFile(JobDir(id));
}

}  // namespace cajal
