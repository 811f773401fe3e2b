#include "service/server/job_runner.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/io/model_file.h"
#include "core/train/checkpoint.h"
#include "core/train/job.h"
#include "google/protobuf/util/time_util.h"
#include "service/server/logging.h"
#include "service/server/metrics.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"
#include "service/tfevents/event_observer.h"
#include "service/tfevents/event_writer.h"

namespace cajal {
namespace {

using google::protobuf::util::TimeUtil;

// Reports a running job's progress and metrics to the sink, writes its checkpoints and carries
// its stop flag.
class Observer : public TrainObserver {
 public:
  Observer(const RunRequest& request, JobSink* sink, TrainingJob* job, Checkpointer* checkpointer)
      : request_(request),
        sink_(sink),
        job_(job),
        checkpointer_(checkpointer),
        classification_(job->train_data().classification()),
        meter_(&ServerMetrics()) {
    for (const v1::MetricPoint& p : request.recorded) recorded_.emplace(p.step(), p.name());
  }

  // Call right before training starts: the first step is timed from here.
  void StartClock() { last_step_end_ = absl::Now(); }

  bool OnStep(const StepReport& s) override {
    meter_.Step(absl::ToDoubleSeconds(absl::Now() - last_step_end_), s.examples);
    v1::Progress p;
    p.set_epoch(s.epoch);
    p.set_step(s.step);
    p.set_total_steps(s.total_steps);
    sink_->SetProgress(request_.id, p);
    const int64_t every = request_.spec.training().checkpoint_every_steps();
    if (every > 0 && s.step % every == 0) Checkpoint();
    last_step_end_ = absl::Now();  // checkpoints have their own histogram
    return status.ok() && !request_.stop->load(std::memory_order_relaxed);
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
    absl::Status s = sink_->AddMetric(request_.id, p);
    if (!s.ok() && status.ok()) status = s;
  }

  // Writes the job's parameters, optimizer state and position atomically.
  void Checkpoint() {
    if (!status.ok()) return;
    const absl::Time start = absl::Now();
    absl::Status s = checkpointer_->Write();
    ServerMetrics().CheckpointWritten(absl::ToDoubleSeconds(absl::Now() - start), s.ok());
    if (!s.ok()) {
      status = absl::Status(s.code(), absl::StrCat("cannot write a checkpoint: ", s.message()));
    }
  }

  absl::Status status;  // the first failure to record a metric or write a checkpoint

 private:
  const RunRequest& request_;
  JobSink* sink_;
  TrainingJob* job_;
  Checkpointer* checkpointer_;
  bool classification_;
  std::set<std::pair<int64_t, std::string>> recorded_;
  TrainingMeter meter_;  // this job's steps and its share of the throughput gauge
  absl::Time last_step_end_ = absl::Now();
};

RunOutcome Failed(const absl::Status& s) { return {RunEnd::kFailed, s}; }

// The job's checkpointer: a checkpoint is this job's when its spec trains the same way
// (SameTraining), so one written by an older cajald whose JSON differs in form still resumes.
std::unique_ptr<Checkpointer> NewCheckpointer(TrainingJob* job, const RunRequest& r,
                                              const std::string& spec_json) {
  return std::make_unique<Checkpointer>(job, CheckpointFile(r.job_dir), spec_json,
                                        [&spec = r.spec](const std::string& json) {
                                          absl::StatusOr<v1::JobSpec> theirs = ParseSpec(json, {});
                                          return theirs.ok() && SameTraining(*theirs, spec);
                                        });
}

// Prepares the job: its data, network and optimizer, on the requested backend.
absl::StatusOr<std::unique_ptr<TrainingJob>> Prepare(const RunRequest& r) {
  absl::StatusOr<JobConfig> config = ToJobConfig(r.spec);
  if (!config.ok()) return config.status();
  config->threads = config->threads > 0 ? std::min(config->threads, r.max_threads) : r.max_threads;
  // Held open until the data is loaded, which Prepare does.
  JobFiles files;
  if (r.data != nullptr) {
    absl::StatusOr<JobFiles> opened = r.data->Open(r.spec, &*config);
    if (!opened.ok()) return opened.status();
    files = *std::move(opened);
  }
  return TrainingJob::Prepare(*config, PrepareOptions{r.backend, nullptr});
}

// Restores an interrupted job from its checkpoint when it has one. A checkpoint that cannot be
// used (damaged outside cajal: they are written atomically) is ignored and the job starts over
// from a freshly prepared state, since a failed restore may have changed part of it.
absl::Status Resume(const RunRequest& r, JobSink* sink, std::unique_ptr<TrainingJob>* job,
                    std::unique_ptr<Checkpointer>* checkpointer, const std::string& spec_json) {
  absl::StatusOr<bool> resumed = (*checkpointer)->Resume();
  if (resumed.ok()) {
    if (*resumed) {
      v1::Progress p;
      p.set_step((*job)->state().step);
      p.set_epoch((*job)->state().epoch + 1);
      p.set_total_steps((*job)->total_steps());
      sink->SetProgress(r.id, p);
    }
    return absl::OkStatus();
  }
  Log(LogLevel::kWarning, "ignoring a checkpoint that cannot be used; the job starts over",
      {{"job_id", r.id}, {"error", resumed.status().message()}});
  absl::StatusOr<std::unique_ptr<TrainingJob>> fresh = Prepare(r);
  if (!fresh.ok()) return fresh.status();
  *job = *std::move(fresh);
  *checkpointer = NewCheckpointer(job->get(), r, spec_json);
  return absl::OkStatus();
}

RunOutcome RunUnguarded(const RunRequest& r, JobSink* sink);

}  // namespace

std::string CheckpointFile(const std::string& job_dir) { return job_dir + "/checkpoint.cajal"; }
std::string ModelFilePath(const std::string& job_dir) { return job_dir + "/model.cajal"; }

RunOutcome RunJob(const RunRequest& request, JobSink* sink) {
  // The last resort: the core returns statuses, but nothing a job does may take the server
  // down (a library's exception, an allocation outside the backend's own).
  try {
    return RunUnguarded(request, sink);
  } catch (const std::exception& e) {
    return Failed(absl::InternalError(absl::StrCat("training failed: ", e.what())));
  } catch (...) {
    return Failed(absl::InternalError("training failed: an unknown exception"));
  }
}

namespace {

RunOutcome RunUnguarded(const RunRequest& r, JobSink* sink) {
  absl::StatusOr<std::unique_ptr<TrainingJob>> prepared = Prepare(r);
  if (!prepared.ok()) return Failed(prepared.status());
  std::unique_ptr<TrainingJob> job = *std::move(prepared);
  std::error_code ec;
  std::filesystem::create_directories(r.job_dir, ec);
  if (ec) {
    return Failed(absl::InternalError(
        absl::StrCat("cannot create the job directory ", r.job_dir, ": ", ec.message())));
  }
  const std::string spec_json = SpecToJson(r.spec);
  std::unique_ptr<Checkpointer> checkpointer = NewCheckpointer(job.get(), r, spec_json);
  if (r.resume) {
    if (absl::Status s = Resume(r, sink, &job, &checkpointer, spec_json); !s.ok()) {
      return Failed(s);
    }
  }
  Observer observer(r, sink, job.get(), checkpointer.get());

  // TensorBoard event files, when asked for: a new file per run (a resumed job adds one).
  std::unique_ptr<EventWriter> events_writer;
  std::unique_ptr<EventFileObserver> events;
  if (r.spec.training().tfevents()) {
    absl::StatusOr<std::unique_ptr<EventWriter>> w = EventWriter::Create(r.job_dir + "/tfevents");
    if (!w.ok()) return Failed(w.status());
    events_writer = *std::move(w);
    events =
        std::make_unique<EventFileObserver>(events_writer.get(), job->train_data().classification(),
                                            r.spec.training().log_every_steps(), &observer);
  }
  TrainObserver* top = events ? static_cast<TrainObserver*>(events.get()) : &observer;
  observer.StartClock();
  absl::StatusOr<TrainResult> result = job->Run(top);
  if (!observer.status.ok()) return Failed(observer.status);
  if (events && !events->status().ok()) return Failed(events->status());
  if (sink->Cancelling(r.id)) return {RunEnd::kCancelled, absl::OkStatus()};
  if (!result.ok()) return Failed(result.status());
  if (result->stop_reason == StopReason::kCancelled) {
    // The server is shutting down: a checkpoint of where it stopped, for the next server.
    observer.Checkpoint();
    return {RunEnd::kInterrupted, absl::OkStatus()};
  }
  absl::StatusOr<ModelFile> model = SnapshotJob(*job, spec_json);
  if (absl::Status s =
          model.ok() ? WriteModelFile(ModelFilePath(r.job_dir), *model) : model.status();
      !s.ok()) {
    return Failed(absl::Status(s.code(), absl::StrCat("cannot save the model: ", s.message())));
  }
  if (result->has_test) {
    const int epoch = job->state().epoch;
    observer.Add(result->steps, epoch, "test_loss", result->test.loss);
    if (job->train_data().classification()) {
      observer.Add(result->steps, epoch, "test_accuracy", result->test.accuracy);
    }
  }
  observer.Add(result->steps, job->state().epoch, "samples_per_sec", result->samples_per_sec);
  if (!observer.status.ok()) return Failed(observer.status);
  return {RunEnd::kSucceeded, absl::OkStatus()};
}

}  // namespace

}  // namespace cajal
