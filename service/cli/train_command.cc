#include "service/cli/train_command.h"

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cajal/v1/metrics.pb.h"
#include "core/backend/backend.h"
#include "core/io/model_file.h"
#include "core/train/checkpoint.h"
#include "core/train/memory.h"
#include "core/util/cores.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "service/cli/kfp_output.h"
#include "service/cli/metrics_lines.h"
#include "service/katib/push_observer.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"
#include "service/tfevents/event_observer.h"
#include "service/tfevents/event_writer.h"

namespace cajal {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitBadSpec = 2;
constexpr int kExitTerminated = 128 + SIGTERM;

int Fail(int code, const absl::Status& status) {
  std::fprintf(stderr, "cajal: %s\n", std::string(status.message()).c_str());
  return code;
}

void Emit(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// Prints Katib lines and collects metric points for metrics.json.
class PrintingObserver : public TrainObserver {
 public:
  PrintingObserver(const JobConfig& config, bool classification, bool timestamps)
      : config_(config), classification_(classification), timestamps_(timestamps) {}

  bool OnStep(const StepReport& s) override {
    if (config_.log_every_steps > 0 && s.step % config_.log_every_steps == 0) {
      Emit(LinePrefix(timestamps_) + StepLine(s));
      Add(s.step, s.epoch, "step_loss", s.loss);
    }
    // Per-update optimizer values (hessian_free: cg_iterations, damping) arrive just before
    // their step's OnStep, which knows the epoch.
    for (const auto& [name, value] : pending_) Add(s.step, s.epoch, name, value);
    pending_.clear();
    return true;
  }

  void OnOptimizerMetric(int64_t /*step*/, const std::string& name, double value) override {
    pending_.emplace_back(name, value);
  }

  void OnEpoch(const EpochReport& e) override {
    Emit(LinePrefix(timestamps_) + EpochLine(e, classification_));
    Add(e.step, e.epoch, "loss", e.loss);
    if (classification_) Add(e.step, e.epoch, "accuracy", e.accuracy);
    if (e.has_val) {
      Add(e.step, e.epoch, "val_loss", e.val_loss);
      if (classification_) Add(e.step, e.epoch, "val_accuracy", e.val_accuracy);
    }
  }

  void Add(int64_t step, int epoch, const std::string& name, double value) {
    v1::MetricPoint* p = report.add_points();
    p->set_step(step);
    p->set_epoch(epoch);
    p->set_name(name);
    p->set_value(value);
    *p->mutable_time() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::GetCurrentTimeNanos());
  }

  v1::TrainingReport report;

 private:
  const JobConfig& config_;
  bool classification_;
  bool timestamps_;
  std::vector<std::pair<std::string, double>> pending_;
};

absl::Status WriteJson(const std::string& path, const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  const auto s = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!s.ok()) return absl::InternalError(s.message().as_string());
  return WriteFileAtomically(path, json);
}

// Creates `dir` and its parents (mkdir -p).
absl::Status MakeDir(const std::string& dir, const char* flag) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!ec) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " ", dir, ": cannot create directory: ", ec.message()));
}

// {"examples": n, "width": d, "labels": [...], "logits": [[...], ...]}: row i is example
// indices[i]; labels only for classification. Nine significant digits round-trip a float;
// NaN and infinities, which JSON lacks, are null.
absl::Status WriteLogits(const std::string& path, const Dataset& data,
                         const std::vector<int64_t>& indices, const std::vector<float>& logits) {
  const size_t n = indices.size();
  const size_t d = n > 0 ? logits.size() / n : 0;
  std::string json = absl::StrFormat("{\"examples\": %d, \"width\": %d", n, d);
  if (data.classification()) {
    json += ", \"labels\": [";
    for (size_t i = 0; i < n; ++i) {
      absl::StrAppend(&json, i > 0 ? ", " : "", data.labels[static_cast<size_t>(indices[i])]);
    }
    json += "]";
  }
  json += ", \"logits\": [";
  for (size_t i = 0; i < n; ++i) {
    json += i > 0 ? ",\n  [" : "\n  [";
    for (size_t j = 0; j < d; ++j) {
      const float v = logits[i * d + j];
      if (j > 0) json += ", ";
      // JSON has no NaN or infinity: null, which a comparison then reports.
      if (std::isfinite(v)) {
        absl::StrAppendFormat(&json, "%.9g", v);
      } else {
        json += "null";
      }
    }
    json += "]";
  }
  json += "]}\n";
  return WriteFileAtomically(path, json);
}

// A failure before training started is a problem with the spec or its inputs (exit 2), except
// what the machine lacks (memory, a GPU: exit 1, the run may succeed elsewhere).
int FailCode(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnavailable:
      return kExitFailed;
    default:
      return kExitBadSpec;
  }
}

// Checkpoints at the boundaries the service uses and stops on SIGTERM; forwards everything to
// `next` (rank 0's printing observer, or nothing on the other ranks).
class CheckpointingObserver : public TrainObserver {
 public:
  CheckpointingObserver(Checkpointer* checkpointer, int64_t every_steps, const TermSignal* term,
                        TrainObserver* next)
      : checkpointer_(checkpointer), every_(every_steps), term_(term), next_(next) {}

  bool OnStep(const StepReport& s) override {
    const bool go_on = next_ == nullptr || next_->OnStep(s);
    if (checkpointer_ != nullptr && every_ > 0 && s.step % every_ == 0) Write();
    return go_on && status.ok() && (term_ == nullptr || !term_->received());
  }
  void OnEpoch(const EpochReport& e) override {
    if (next_ != nullptr) next_->OnEpoch(e);
    if (checkpointer_ != nullptr) Write();
  }
  void OnOptimizerMetric(int64_t step, const std::string& name, double value) override {
    if (next_ != nullptr) next_->OnOptimizerMetric(step, name, value);
  }
  void Write() {
    if (!status.ok()) return;
    if (absl::Status s = checkpointer_->Write(); !s.ok()) {
      status = absl::Status(s.code(), absl::StrCat("cannot write a checkpoint: ", s.message()));
    }
  }

  absl::Status status;  // the first checkpoint failure

 private:
  Checkpointer* checkpointer_;
  int64_t every_;
  const TermSignal* term_;
  TrainObserver* next_;
};

// Rank 0's outputs of a finished run: the final line, model.cajal, metrics.json, KFP outputs.
int WriteOutputs(const TrainOptions& o, const v1::JobSpec& spec, TrainingJob& job,
                 const TrainResult& result, PrintingObserver& observer, KatibPushObserver* katib) {
  v1::TrainingReport& report = observer.report;
  report.set_stop_reason(StopReasonName(result.stop_reason));
  report.set_steps(result.steps);
  report.set_samples_per_sec(result.samples_per_sec);
  std::string final_line;
  if (result.has_test) {
    report.set_test_loss(result.test.loss);
    observer.Add(result.steps, job.state().epoch, "test_loss", result.test.loss);
    final_line = absl::StrFormat("test_loss=%.4f ", result.test.loss);
    if (job.train_data().classification()) {
      report.set_test_accuracy(result.test.accuracy);
      observer.Add(result.steps, job.state().epoch, "test_accuracy", result.test.accuracy);
      absl::StrAppendFormat(&final_line, "test_accuracy=%.4f ", result.test.accuracy);
    }
  }
  if (katib != nullptr && result.has_test) {
    std::vector<std::pair<std::string, double>> test = {{"test_loss", result.test.loss}};
    if (job.train_data().classification()) test.push_back({"test_accuracy", result.test.accuracy});
    if (absl::Status s = katib->ReportFinal(test); !s.ok()) return Fail(kExitFailed, s);
  }
  const std::string model_path = o.out_dir + "/model.cajal";
  absl::StatusOr<ModelFile> model = SnapshotJob(job, SpecToJson(spec));
  if (!model.ok()) return Fail(kExitFailed, model.status());
  if (absl::Status s = WriteModelFile(model_path, *model); !s.ok()) return Fail(kExitFailed, s);
  report.set_peak_rss_mb(PeakRssMb());
  if (absl::Status s = WriteJson(o.out_dir + "/metrics.json", report); !s.ok()) {
    return Fail(kExitFailed, s);
  }
  if (absl::Status s = WriteKfpOutputs(o.kfp, report, model_path); !s.ok()) {
    return Fail(kExitFailed, s);
  }
  absl::StrAppendFormat(&final_line, "steps=%d samples_per_sec=%.1f peak_rss_mb=%.1f", result.steps,
                        result.samples_per_sec, report.peak_rss_mb());
  Emit(LinePrefix(o.timestamps) + final_line);
  return kExitOk;
}

int RunTrainOn(const TrainOptions& o, Collective& collective, const TermSignal* term) {
  const bool rank0 = collective.rank() == 0;
  if (o.spec_path.empty() == o.spec_text.empty()) {
    return Fail(kExitBadSpec, absl::InvalidArgumentError("give the job spec with --spec FILE "
                                                         "or --spec-text TEXT (one of them)"));
  }
  absl::StatusOr<v1::JobSpec> spec = o.spec_text.empty() ? LoadSpecFile(o.spec_path, o.overrides)
                                                         : ParseSpec(o.spec_text, o.overrides);
  if (!spec.ok()) return Fail(kExitBadSpec, spec.status());
  absl::StatusOr<JobConfig> config = ToJobConfig(*spec);
  if (!config.ok()) return Fail(kExitBadSpec, config.status());
  if (absl::Status s = RequireLocalData(*spec); !s.ok()) return Fail(kExitBadSpec, s);
  // Admission: the estimate against the budget, before anything is loaded or allocated.
  absl::StatusOr<Backend*> backend = GetBackend({config->device});
  if (!backend.ok()) return Fail(FailCode(backend.status()), backend.status());
  absl::StatusOr<MemoryEstimate> estimate =
      EstimateMemory(*config, {*backend, collective.size(), /*include_runtime=*/true});
  if (!estimate.ok()) return Fail(kExitBadSpec, estimate.status());
  MemoryBudget budget =
      o.max_memory > 0 ? FlagBudget(o.max_memory, "--max_memory") : ProcessMemoryBudget();
  if (o.max_memory <= 0 && collective.local_size() > 1) {
    // Ranks on one machine share its memory.
    budget.bytes /= collective.local_size();
    budget.source += absl::StrCat(", divided among ", collective.local_size(), " local ranks");
  }
  const absl::Status fits = CheckBudget(*estimate, budget);
  if (o.dry_run) {
    if (rank0) {
      std::fputs(FormatEstimate(*estimate).c_str(), stdout);
      std::printf("budget=%s (%s) fits=%s\n", FormatBytes(budget.bytes).c_str(),
                  budget.source.c_str(), fits.ok() ? "yes" : "no");
    }
    return fits.ok() ? kExitOk : Fail(kExitBadSpec, fits);
  }
  if (!fits.ok()) return Fail(kExitBadSpec, fits);
  if (rank0) {
    if (absl::Status s = MakeDir(o.out_dir, "--out"); !s.ok()) return Fail(kExitBadSpec, s);
  }
  if (!o.checkpoint_dir.empty()) {
    if (absl::Status s = MakeDir(o.checkpoint_dir, "--checkpoint_dir"); !s.ok()) {
      return Fail(kExitBadSpec, s);
    }
  }
  absl::StatusOr<std::unique_ptr<TrainingJob>> job =
      TrainingJob::Prepare(*config, PrepareOptions{*backend, &collective});
  if (!job.ok()) return Fail(FailCode(job.status()), job.status());
  // The device a GPU job runs on (auto picks a GPU when one is visible); CPU jobs stay quiet.
  if (rank0 && (*job)->backend()->kind() == DeviceKind::kGpu) {
    std::fprintf(stderr, "cajal: training on %s (training.device: %s)\n",
                 (*job)->backend()->name().c_str(), DeviceChoiceName(config->device));
  }
  if (collective.size() > 1 && rank0) {
    std::fprintf(stderr,
                 "cajal: data-parallel over %d ranks (%s), %d thread(s) each, global batch %lld\n",
                 collective.size(), collective.name().c_str(), (*job)->threads(),
                 static_cast<long long>(config->batch_size * collective.size()));
  }

  std::unique_ptr<Checkpointer> checkpointer;
  if (!o.checkpoint_dir.empty()) {
    const v1::JobSpec& ours = *spec;
    checkpointer =
        std::make_unique<Checkpointer>(job->get(), o.checkpoint_dir + "/checkpoint.cajal",
                                       SpecToJson(*spec), [&ours](const std::string& json) {
                                         absl::StatusOr<v1::JobSpec> theirs = ParseSpec(json, {});
                                         return theirs.ok() && SameTraining(*theirs, ours);
                                       });
    absl::StatusOr<bool> resumed = checkpointer->Resume();
    if (!resumed.ok()) return Fail(FailCode(resumed.status()), resumed.status());
    if (*resumed && rank0) {
      std::fprintf(stderr, "cajal: resuming from %s at epoch %d, step %lld\n",
                   checkpointer->path().c_str(), (*job)->state().epoch + 1,
                   static_cast<long long>((*job)->state().step));
    }
  }

  PrintingObserver printer(*config, (*job)->train_data().classification(), o.timestamps);
  TrainObserver* top = rank0 ? &printer : nullptr;
  std::unique_ptr<EventWriter> event_writer;
  std::unique_ptr<EventFileObserver> event_observer;
  if (!o.tfevents_dir.empty() && rank0) {
    absl::StatusOr<std::unique_ptr<EventWriter>> w = EventWriter::Create(o.tfevents_dir);
    if (!w.ok()) return Fail(kExitBadSpec, w.status());
    event_writer = *std::move(w);
    event_observer = std::make_unique<EventFileObserver>(event_writer.get(),
                                                         (*job)->train_data().classification(),
                                                         o.tfevents_every_steps, &printer);
    top = event_observer.get();
  }
  // Katib push mode: rank 0 reports what it prints; a failed report stops every rank.
  std::unique_ptr<KatibPushObserver> katib;
  if (o.katib_push && rank0) {
    absl::StatusOr<std::unique_ptr<KatibPushObserver>> k =
        KatibPushObserver::Start(o.katib, (*job)->train_data().classification(), top);
    if (!k.ok()) {
      return Fail(absl::IsInvalidArgument(k.status()) ? kExitBadSpec : kExitFailed, k.status());
    }
    katib = *std::move(k);
    top = katib.get();
  }
  CheckpointingObserver observer(checkpointer.get(), spec->training().checkpoint_every_steps(),
                                 term, top);
  absl::StatusOr<TrainResult> result = (*job)->Run(&observer);
  if (!result.ok()) return Fail(kExitFailed, result.status());
  if (katib != nullptr && !katib->status().ok()) return Fail(kExitFailed, katib->status());
  if (!observer.status.ok()) return Fail(kExitFailed, observer.status);
  if (event_observer != nullptr && !event_observer->status().ok()) {
    return Fail(kExitFailed, event_observer->status());
  }
  if (result->stop_reason == StopReason::kCancelled) {
    // Stopped by SIGTERM: the last position is saved; a rerun with the same DIR continues.
    if (checkpointer != nullptr) {
      if (absl::Status s = checkpointer->Write(); !s.ok()) return Fail(kExitFailed, s);
    }
    if (rank0) {
      std::fprintf(stderr, "cajal: stopped by SIGTERM at step %lld; checkpoint in %s\n",
                   static_cast<long long>(result->steps),
                   checkpointer != nullptr ? checkpointer->path().c_str() : "(none)");
    }
    return kExitTerminated;
  }
  if (collective.size() > 1 && rank0) {
    std::fprintf(stderr,
                 "cajal: parameters identical on all %d ranks (digest %016llx); %.2f ms per step "
                 "waiting for gradient sums\n",
                 collective.size(), static_cast<unsigned long long>(result->param_digest),
                 result->steps > 0 ? 1e3 * result->reduce_wait_seconds / result->steps : 0.0);
  }
  if (!rank0) return kExitOk;
  const int code = WriteOutputs(o, *spec, **job, *result, printer, katib.get());
  if (code == kExitOk && checkpointer != nullptr) checkpointer->Remove();
  return code;
}

}  // namespace

int RunTrain(const TrainOptions& o, Collective* collective, const TermSignal* term) {
  std::unique_ptr<Collective> single;
  if (collective == nullptr) {
    single = SingleProcessCollective();
    collective = single.get();
  }
  const int code = RunTrainOn(o, *collective, term);
  // A rank that fails alone would leave the others waiting in a collective: stop them all.
  if (code != kExitOk && code != kExitTerminated && collective->size() > 1) {
    collective->Abort(absl::StrCat("failed (exit ", code, "); stopping every rank"), code);
  }
  return code;
}

int RunEvaluate(const EvaluateOptions& o) {
  absl::StatusOr<ModelFile> model = ReadModelFile(o.model_path);
  if (!model.ok()) return Fail(kExitBadSpec, model.status());
  // Overrides apply to the data spec when one is given, else to the model's own spec.
  absl::StatusOr<v1::JobSpec> spec =
      ParseSpec(model->spec_json, o.spec_path.empty() ? o.overrides : std::vector<std::string>{});
  if (!spec.ok()) return Fail(kExitBadSpec, spec.status());
  if (!o.spec_path.empty()) {
    absl::StatusOr<v1::JobSpec> data_spec = LoadSpecFile(o.spec_path, o.overrides);
    if (!data_spec.ok()) return Fail(kExitBadSpec, data_spec.status());
    *spec->mutable_data() = data_spec->data();
  }
  absl::StatusOr<JobConfig> config = ToJobConfig(*spec);
  if (!config.ok()) return Fail(kExitBadSpec, config.status());
  if (absl::Status s = RequireLocalData(*spec); !s.ok()) return Fail(kExitBadSpec, s);
  // The training run's validation split is kept: the normalization statistics come from the
  // same training examples, so evaluation reproduces what training measured.
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(*config);
  if (!job.ok()) return Fail(FailCode(job.status()), job.status());
  if (absl::Status s = RestoreJob(*model, /*with_state=*/false, job->get()); !s.ok()) {
    return Fail(kExitBadSpec, s);
  }
  // The test set if there is one, else the training examples; the first `limit` of them.
  const Dataset& data = (*job)->has_test() ? *(*job)->test_data() : (*job)->train_data();
  const int64_t count = o.limit > 0 ? std::min(o.limit, data.count) : data.count;
  std::vector<int64_t> indices(static_cast<size_t>(count));
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int64_t>(i);
  absl::StatusOr<EvalResult> r = (*job)->Evaluate(data, indices);
  if (!r.ok()) return Fail(kExitFailed, r.status());
  if (!o.logits_out.empty()) {
    absl::StatusOr<std::vector<float>> logits = (*job)->Predict(data, indices);
    if (!logits.ok()) return Fail(kExitFailed, logits.status());
    if (absl::Status s = WriteLogits(o.logits_out, data, indices, *logits); !s.ok()) {
      return Fail(kExitFailed, s);
    }
  }
  std::string line = absl::StrFormat("loss=%.4f", r->loss);
  if ((*job)->train_data().classification())
    absl::StrAppendFormat(&line, " accuracy=%.4f", r->accuracy);
  absl::StrAppendFormat(&line, " examples=%d", r->examples);
  Emit(line);
  return kExitOk;
}

}  // namespace cajal
