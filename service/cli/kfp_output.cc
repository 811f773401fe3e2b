#include "service/cli/kfp_output.h"

#include <filesystem>
#include <map>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "core/io/model_file.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace cajal {
namespace {

namespace fs = std::filesystem;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr const char* kFinalNames[] = {"loss",         "accuracy",  "val_loss",
                                       "val_accuracy", "test_loss", "test_accuracy"};

// Metrics come from float arithmetic; 0.85000002384185791 reads badly in a UI.
double Round6(double v) {
  double out = v;
  if (!absl::SimpleAtod(absl::StrFormat("%.6g", v), &out)) return v;
  return out;
}

absl::Status MakeParentDirs(const std::string& flag, const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return absl::OkStatus();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat(flag, " ", path, ": cannot create ", parent.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status WriteText(const std::string& flag, const std::string& path, const std::string& text) {
  if (absl::Status s = MakeParentDirs(flag, path); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomically(path, text); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(flag, " ", path, ": ", s.message()));
  }
  return absl::OkStatus();
}

std::string ToJson(const Struct& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  // A Struct of strings, numbers, lists and structs always prints.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

}  // namespace

std::vector<std::pair<std::string, double>> FinalMetrics(const v1::TrainingReport& report) {
  std::map<std::string, double> latest;
  for (const v1::MetricPoint& p : report.points()) latest[p.name()] = p.value();
  std::vector<std::pair<std::string, double>> out;
  for (const char* name : kFinalNames) {
    auto it = latest.find(name);
    if (it != latest.end()) out.emplace_back(name, Round6(it->second));
  }
  return out;
}

std::string ExecutorOutputJson(const std::string& artifact,
                               const std::vector<std::pair<std::string, double>>& metrics) {
  Struct runtime_artifact;
  (*runtime_artifact.mutable_fields())["name"].set_string_value(artifact);
  Struct* metadata = (*runtime_artifact.mutable_fields())["metadata"].mutable_struct_value();
  for (const auto& [name, value] : metrics) {
    (*metadata->mutable_fields())[name].set_number_value(value);
  }
  Struct artifact_list;  // ArtifactList{artifacts: [RuntimeArtifact]}
  *(*artifact_list.mutable_fields())["artifacts"]
       .mutable_list_value()
       ->add_values()
       ->mutable_struct_value() = runtime_artifact;
  // ExecutorOutput{artifacts: map<string, ArtifactList>, parameterValues: map<string, Value>}
  Struct output;
  Struct* artifacts = (*output.mutable_fields())["artifacts"].mutable_struct_value();
  *(*artifacts->mutable_fields())[artifact].mutable_struct_value() = artifact_list;
  Struct* parameters = (*output.mutable_fields())["parameterValues"].mutable_struct_value();
  for (const auto& [name, value] : metrics) {
    (*parameters->mutable_fields())[name].set_number_value(value);
  }
  return ToJson(output);
}

std::string MlpipelineMetricsJson(const std::vector<std::pair<std::string, double>>& metrics) {
  Struct output;
  auto* list = (*output.mutable_fields())["metrics"].mutable_list_value();
  for (const auto& [name, value] : metrics) {
    Struct* m = list->add_values()->mutable_struct_value();
    (*m->mutable_fields())["name"].set_string_value(absl::StrReplaceAll(name, {{"_", "-"}}));
    (*m->mutable_fields())["numberValue"].set_number_value(value);
    const bool percentage = name.size() >= 8 && name.compare(name.size() - 8, 8, "accuracy") == 0;
    (*m->mutable_fields())["format"].set_string_value(percentage ? "PERCENTAGE" : "RAW");
  }
  return ToJson(output);
}

absl::Status WriteKfpOutputs(const KfpOutputOptions& o, const v1::TrainingReport& report,
                             const std::string& model_path) {
  const std::vector<std::pair<std::string, double>> metrics = FinalMetrics(report);
  if (!o.output_metadata_path.empty()) {
    if (absl::Status s = WriteText("--kfp-output-metadata", o.output_metadata_path,
                                   ExecutorOutputJson(o.metrics_artifact, metrics));
        !s.ok()) {
      return s;
    }
  }
  if (!o.mlpipeline_metrics_path.empty()) {
    if (absl::Status s = WriteText("--mlpipeline-metrics", o.mlpipeline_metrics_path,
                                   MlpipelineMetricsJson(metrics));
        !s.ok()) {
      return s;
    }
  }
  if (!o.model_out_path.empty()) {
    if (absl::Status s = MakeParentDirs("--model-out", o.model_out_path); !s.ok()) return s;
    std::error_code ec;
    fs::copy_file(model_path, o.model_out_path, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--model-out ", o.model_out_path, ": cannot copy ", model_path, ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace cajal
