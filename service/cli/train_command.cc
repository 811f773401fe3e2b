#include "service/cli/train_command.h"

#include <sys/stat.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cajal/v1/metrics.pb.h"
#include "core/backend/backend.h"
#include "core/io/model_file.h"
#include "core/util/cores.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "service/cli/kfp_output.h"
#include "service/cli/metrics_lines.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"
#include "service/tfevents/event_observer.h"
#include "service/tfevents/event_writer.h"

namespace cajal {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitBadSpec = 2;

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

absl::Status MakeDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--out ", dir, ": cannot create directory: ", std::strerror(errno)));
}

}  // namespace

int RunTrain(const TrainOptions& o) {
  absl::StatusOr<v1::JobSpec> spec = LoadSpecFile(o.spec_path, o.overrides);
  if (!spec.ok()) return Fail(kExitBadSpec, spec.status());
  absl::StatusOr<JobConfig> config = ToJobConfig(*spec);
  if (!config.ok()) return Fail(kExitBadSpec, config.status());
  if (absl::Status s = RequireLocalData(*spec); !s.ok()) return Fail(kExitBadSpec, s);
  if (absl::Status s = MakeDir(o.out_dir); !s.ok()) return Fail(kExitBadSpec, s);
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(*config, CpuBackend());
  if (!job.ok()) return Fail(kExitBadSpec, job.status());

  PrintingObserver observer(*config, (*job)->train_data().classification(), o.timestamps);
  TrainObserver* run_observer = &observer;
  std::unique_ptr<EventWriter> event_writer;
  std::unique_ptr<EventFileObserver> event_observer;
  if (!o.tfevents_dir.empty()) {
    absl::StatusOr<std::unique_ptr<EventWriter>> w = EventWriter::Create(o.tfevents_dir);
    if (!w.ok()) return Fail(kExitBadSpec, w.status());
    event_writer = *std::move(w);
    event_observer = std::make_unique<EventFileObserver>(event_writer.get(),
                                                         (*job)->train_data().classification(),
                                                         o.tfevents_every_steps, &observer);
    run_observer = event_observer.get();
  }
  absl::StatusOr<TrainResult> result = (*job)->Run(run_observer);
  if (!result.ok()) return Fail(kExitFailed, result.status());
  if (event_observer != nullptr && !event_observer->status().ok()) {
    return Fail(kExitFailed, event_observer->status());
  }

  v1::TrainingReport& report = observer.report;
  report.set_stop_reason(result->stop_reason);
  report.set_steps(result->steps);
  report.set_samples_per_sec(result->samples_per_sec);
  std::string final_line;
  if (result->has_test) {
    report.set_test_loss(result->test.loss);
    observer.Add(result->steps, (*job)->state().epoch, "test_loss", result->test.loss);
    final_line = absl::StrFormat("test_loss=%.4f ", result->test.loss);
    if ((*job)->train_data().classification()) {
      report.set_test_accuracy(result->test.accuracy);
      observer.Add(result->steps, (*job)->state().epoch, "test_accuracy", result->test.accuracy);
      absl::StrAppendFormat(&final_line, "test_accuracy=%.4f ", result->test.accuracy);
    }
  }
  const std::string model_path = o.out_dir + "/model.cajal";
  if (absl::Status s = WriteModelFile(model_path, SnapshotJob(**job, SpecToJson(*spec))); !s.ok()) {
    return Fail(kExitFailed, s);
  }
  report.set_peak_rss_mb(PeakRssMb());
  if (absl::Status s = WriteJson(o.out_dir + "/metrics.json", report); !s.ok()) {
    return Fail(kExitFailed, s);
  }
  if (absl::Status s = WriteKfpOutputs(o.kfp, report, model_path); !s.ok()) {
    return Fail(kExitFailed, s);
  }
  absl::StrAppendFormat(&final_line, "steps=%d samples_per_sec=%.1f peak_rss_mb=%.1f",
                        result->steps, result->samples_per_sec, report.peak_rss_mb());
  Emit(LinePrefix(o.timestamps) + final_line);
  return kExitOk;
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
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(*config, CpuBackend());
  if (!job.ok()) return Fail(kExitBadSpec, job.status());
  if (absl::Status s = RestoreJob(*model, /*with_state=*/false, job->get()); !s.ok()) {
    return Fail(kExitBadSpec, s);
  }
  absl::StatusOr<EvalResult> r;
  if ((*job)->has_test()) {
    r = (*job)->EvaluateTest();
  } else {
    std::vector<int64_t> all((*job)->train_data().count);
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    r = (*job)->Evaluate((*job)->train_data(), all);
  }
  if (!r.ok()) return Fail(kExitFailed, r.status());
  std::string line = absl::StrFormat("loss=%.4f", r->loss);
  if ((*job)->train_data().classification())
    absl::StrAppendFormat(&line, " accuracy=%.4f", r->accuracy);
  absl::StrAppendFormat(&line, " examples=%d", r->examples);
  Emit(line);
  return kExitOk;
}

}  // namespace cajal
