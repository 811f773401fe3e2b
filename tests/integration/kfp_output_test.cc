// `cajal train`'s Kubeflow Pipelines outputs (service/cli/kfp_output.h): the final metrics,
// the KFP v2 ExecutorOutput and v1 MLPipeline Metrics JSON, and the files written.
#include "service/cli/kfp_output.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace cajal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

v1::TrainingReport Report() {
  v1::TrainingReport r;
  auto add = [&r](const char* name, double value) {
    v1::MetricPoint* p = r.add_points();
    p->set_name(name);
    p->set_value(value);
  };
  add("loss", 0.9);
  add("accuracy", 0.5);
  add("val_loss", 0.8);
  add("val_accuracy", 0.6);
  add("step_loss", 0.7);                 // not a final metric
  add("loss", 0.3);                      // the latest point of a name wins
  add("accuracy", 0.85000002384185791);  // float noise is rounded away
  add("val_loss", 0.4);
  add("val_accuracy", 0.87);
  add("test_loss", 0.45);
  add("test_accuracy", 0.86);
  return r;
}

google::protobuf::Struct Parse(const std::string& json) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok()) << json;
  return s;
}

std::string Read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(KfpOutputTest, FinalMetricsAreTheLatestOfEachNameInFixedOrder) {
  EXPECT_THAT(FinalMetrics(Report()),
              ElementsAre(Pair("loss", 0.3), Pair("accuracy", 0.85), Pair("val_loss", 0.4),
                          Pair("val_accuracy", 0.87), Pair("test_loss", 0.45),
                          Pair("test_accuracy", 0.86)));
}

TEST(KfpOutputTest, FinalMetricsLeaveOutAbsentNames) {
  v1::TrainingReport r;
  v1::MetricPoint* p = r.add_points();
  p->set_name("loss");
  p->set_value(0.25);
  EXPECT_THAT(FinalMetrics(r), ElementsAre(Pair("loss", 0.25)));
}

TEST(KfpOutputTest, ExecutorOutputPutsMetricsInTheArtifactMetadata) {
  const google::protobuf::Struct out =
      Parse(ExecutorOutputJson("eval_metrics", {{"val_accuracy", 0.87}, {"val_loss", 0.4}}));
  ASSERT_EQ(out.fields().size(), 2u);
  const auto& artifacts = out.fields().at("artifacts").struct_value().fields();
  ASSERT_EQ(artifacts.size(), 1u);
  const auto& list = artifacts.at("eval_metrics").struct_value().fields().at("artifacts");
  ASSERT_EQ(list.list_value().values_size(), 1);
  const auto& artifact = list.list_value().values(0).struct_value().fields();
  EXPECT_EQ(artifact.at("name").string_value(), "eval_metrics");
  const auto& metadata = artifact.at("metadata").struct_value().fields();
  EXPECT_EQ(metadata.at("val_accuracy").number_value(), 0.87);
  EXPECT_EQ(metadata.at("val_loss").number_value(), 0.4);
  // The same values as output parameters, for a downstream step to branch on.
  const auto& parameters = out.fields().at("parameterValues").struct_value().fields();
  ASSERT_EQ(parameters.size(), 2u);
  EXPECT_EQ(parameters.at("val_accuracy").number_value(), 0.87);
  EXPECT_EQ(parameters.at("val_loss").number_value(), 0.4);
}

TEST(KfpOutputTest, MlpipelineMetricsUseHyphenatedNamesAndFormats) {
  const google::protobuf::Struct out =
      Parse(MlpipelineMetricsJson({{"val_loss", 0.4}, {"test_accuracy", 0.86}}));
  const auto& metrics = out.fields().at("metrics").list_value();
  ASSERT_EQ(metrics.values_size(), 2);
  const auto& m0 = metrics.values(0).struct_value().fields();
  EXPECT_EQ(m0.at("name").string_value(), "val-loss");
  EXPECT_EQ(m0.at("numberValue").number_value(), 0.4);
  EXPECT_EQ(m0.at("format").string_value(), "RAW");
  const auto& m1 = metrics.values(1).struct_value().fields();
  EXPECT_EQ(m1.at("name").string_value(), "test-accuracy");
  EXPECT_EQ(m1.at("format").string_value(), "PERCENTAGE");
}

TEST(KfpOutputTest, WritesEveryRequestedFileCreatingParentDirectories) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kfp_output_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path model = dir / "model.cajal";
  std::ofstream(model) << "model bytes";

  KfpOutputOptions o;
  o.output_metadata_path = (dir / "kfp_outputs/output_metadata.json").string();
  o.mlpipeline_metrics_path = (dir / "outputs/mlpipeline_metrics/data").string();
  o.model_out_path = (dir / "outputs/model/data").string();
  ASSERT_TRUE(WriteKfpOutputs(o, Report(), model.string()).ok());

  EXPECT_THAT(Read(o.output_metadata_path), HasSubstr("\"val_accuracy\": 0.87"));
  EXPECT_THAT(Read(o.mlpipeline_metrics_path), HasSubstr("\"val-accuracy\""));
  EXPECT_EQ(Read(o.model_out_path), "model bytes");
  std::filesystem::remove_all(dir);
}

TEST(KfpOutputTest, AnUnwritablePathNamesTheFlag) {
  KfpOutputOptions o;
  o.mlpipeline_metrics_path = "/proc/cajal-kfp-test/metrics.json";
  const absl::Status s = WriteKfpOutputs(o, Report(), "/nonexistent/model.cajal");
  EXPECT_THAT(std::string(s.message()), HasSubstr("--mlpipeline-metrics /proc/cajal-kfp-test"));
}

TEST(KfpOutputTest, AMissingModelNamesModelOut) {
  KfpOutputOptions o;
  o.model_out_path = (std::filesystem::temp_directory_path() / "kfp_output_test_model").string();
  const absl::Status s = WriteKfpOutputs(o, Report(), "/nonexistent/model.cajal");
  EXPECT_THAT(std::string(s.message()), HasSubstr("--model-out"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("/nonexistent/model.cajal"));
}

TEST(KfpOutputTest, NothingRequestedWritesNothing) {
  EXPECT_TRUE(WriteKfpOutputs(KfpOutputOptions{}, Report(), "/nonexistent/model.cajal").ok());
}

}  // namespace
}  // namespace cajal
