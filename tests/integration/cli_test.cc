// The `cajal` command as a user runs it: exit codes, Katib lines on stdout, messages on stderr,
// model.cajal and metrics.json, determinism, and `cajal evaluate`.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cajal/v1/metrics.pb.h"
#include "core/io/model_file.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::string kCajal = std::string(CAJAL_BINARY_DIR) + "/bin/cajal";
constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// xor with a test split (the same table), so the run ends with test metrics.
constexpr char kXorSpec[] = R"(
model:
  layers:
    - dense: {units: 8}
    - activation: {kind: tanh}
    - dense: {units: 2}
data: {train: {builtin: xor}, test: {builtin: xor}}
optimizer: {kind: adam, learning_rate: 0.05}
training: {epochs: 3, batch_size: 2, seed: 1, threads: 1}
)";

// A few steps of a small MLP on the real data set.
constexpr char kFashionSpec[] = R"(
model:
  layers:
    - dense: {units: 32}
    - activation: {kind: relu}
    - dense: {units: 10}
data: {train: {builtin: fashion-mnist}, normalize: scale}
optimizer: {kind: adam, learning_rate: 0.002}
training: {epochs: 1, batch_size: 128, seed: 3, threads: 2, max_steps: 40}
)";

const char kEpochLine[] =
    R"(epoch=\d+ loss=\d+\.\d{4} accuracy=\d\.\d{4} val_loss=\d+\.\d{4} val_accuracy=\d\.\d{4})";
const char kFinalLine[] =
    R"(test_loss=(\d+\.\d{4}) test_accuracy=(\d\.\d{4}) steps=(\d+) samples_per_sec=\d+\.\d )"
    R"(peak_rss_mb=\d+\.\d)";

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::vector<std::string> lines;  // stdout, split on '\n', without the empty last one
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Exists(kCajal)) << kCajal << " is missing; build the `cajal` target";
    std::string tmpl = ::testing::TempDir() + "/cajal_cli_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }

  // Runs `cajal args...` with stdout and stderr captured through files.
  Result Run(const std::vector<std::string>& args) {
    const std::string out_path = dir_ + "/stdout", err_path = dir_ + "/stderr";
    std::vector<std::string> argv_s = {kCajal};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    Result r;
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out < 0 || err < 0) ::_exit(127);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(err, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status)) << "cajal died with a signal: " << status;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = ReadFile(out_path);
    r.err = ReadFile(err_path);
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      r.lines.emplace_back(line);
    }
    return r;
  }

  // Writes `spec` and runs `cajal train` into DIR/<out>.
  Result Train(const std::string& spec, const std::string& out,
               const std::vector<std::string>& extra = {}) {
    const std::string spec_path = dir_ + "/" + out + ".yaml";
    WriteFile(spec_path, spec);
    std::vector<std::string> args = {"train", "--spec", spec_path, "--out", dir_ + "/" + out};
    args.insert(args.end(), extra.begin(), extra.end());
    return Run(args);
  }

  std::string dir_;
};

std::string Describe(const Result& r) {
  return absl::StrCat("exit ", r.exit_code, "\n--- stdout\n", r.out, "--- stderr\n", r.err);
}

v1::TrainingReport ReadReport(const std::string& path) {
  v1::TrainingReport report;
  const std::string json = ReadFile(path);
  const auto s = google::protobuf::util::JsonStringToMessage(json, &report);
  EXPECT_TRUE(s.ok()) << s.message() << "\n" << json;
  return report;
}

// The metric values of a report, without the times.
std::vector<std::pair<std::string, double>> Values(const v1::TrainingReport& report) {
  std::vector<std::pair<std::string, double>> v;
  for (const v1::MetricPoint& p : report.points()) v.emplace_back(p.name(), p.value());
  if (report.has_test_loss()) v.emplace_back("report.test_loss", report.test_loss());
  if (report.has_test_accuracy()) v.emplace_back("report.test_accuracy", report.test_accuracy());
  return v;
}

TEST_F(CliTest, TrainPrintsKatibLinesAndWritesModelAndMetrics) {
  const Result r = Train(kXorSpec, "out");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, IsEmpty());
  ASSERT_EQ(r.lines.size(), 4u) << r.out;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(std::regex_match(r.lines[i], std::regex(kEpochLine))) << r.lines[i];
    EXPECT_EQ(r.lines[i].rfind(absl::StrCat("epoch=", i + 1, " "), 0), 0u) << r.lines[i];
  }
  std::smatch final_match;
  ASSERT_TRUE(std::regex_match(r.lines[3], final_match, std::regex(kFinalLine))) << r.lines[3];
  EXPECT_EQ(final_match[3], "6");  // 3 epochs of 2 batches

  EXPECT_TRUE(Exists(dir_ + "/out/model.cajal"));
  const v1::TrainingReport report = ReadReport(dir_ + "/out/metrics.json");
  EXPECT_EQ(report.stop_reason(), "completed");
  EXPECT_EQ(report.steps(), 6);
  EXPECT_GT(report.samples_per_sec(), 0);
  EXPECT_GT(report.peak_rss_mb(), 1);
  ASSERT_TRUE(report.has_test_accuracy());
  EXPECT_EQ(absl::StrFormat("%.4f", report.test_accuracy()), final_match[2].str());
  EXPECT_EQ(absl::StrFormat("%.4f", report.test_loss()), final_match[1].str());
  // Four points per epoch, then the test loss and accuracy.
  ASSERT_EQ(report.points_size(), 14);
  const char* names[] = {"loss", "accuracy", "val_loss", "val_accuracy"};
  for (int e = 0; e < 3; ++e) {
    for (int k = 0; k < 4; ++k) {
      const v1::MetricPoint& p = report.points(4 * e + k);
      EXPECT_EQ(p.name(), names[k]);
      EXPECT_EQ(p.epoch(), e + 1);
      EXPECT_EQ(p.step(), 2 * (e + 1));
      EXPECT_GT(p.time().seconds(), 0);
      // The printed line carries the same value, rounded.
      EXPECT_THAT(r.lines[e], HasSubstr(absl::StrFormat(" %s=%.4f", names[k], p.value())));
    }
  }
  EXPECT_EQ(report.points(12).name(), "test_loss");
  EXPECT_EQ(report.points(13).name(), "test_accuracy");
}

TEST_F(CliTest, TimestampsAndStepLines) {
  const Result r = Train(kXorSpec, "out", {"--timestamps", "--set", "training.log_every_steps=2"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // Per epoch: one step line (step 2, 4, 6) then the epoch line; then the final line.
  ASSERT_EQ(r.lines.size(), 7u) << r.out;
  const std::string ts = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z )";
  EXPECT_TRUE(std::regex_match(r.lines[0], std::regex(ts + R"(epoch=1 step=2 loss=\d+\.\d{4})")))
      << r.lines[0];
  EXPECT_TRUE(std::regex_match(r.lines[1], std::regex(ts + kEpochLine))) << r.lines[1];
  EXPECT_TRUE(std::regex_match(r.lines[6], std::regex(ts + kFinalLine))) << r.lines[6];
}

TEST_F(CliTest, InvalidSpecExitsTwoNamingTheField) {
  const Result r = Train(kXorSpec, "out", {"--set", "training.batch_size=-3"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("training.batch_size: must be > 0, got -3"));
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_FALSE(Exists(dir_ + "/out/model.cajal"));

  const Result unknown = Train(std::string(kXorSpec) + "trainig: {}\n", "out");
  EXPECT_EQ(unknown.exit_code, 2) << Describe(unknown);
  EXPECT_THAT(unknown.err, HasSubstr("trainig: unknown field (known: model, data"));
}

TEST_F(CliTest, ShapeErrorFoundAfterLoadingDataExitsTwo) {
  // 3 outputs for 2 classes: only visible once the data is loaded.
  const Result r = Train(kXorSpec, "out", {"--set", "model.layers.2.dense.units=3"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("model.layers.2 (dense): the network has 3 outputs but the data "
                               "has 2 classes"));
}

TEST_F(CliTest, MissingSpecFileExitsTwo) {
  const std::string missing = dir_ + "/missing.yaml";
  const Result r = Run({"train", "--spec", missing, "--out", dir_ + "/out"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("--spec " + missing + ": cannot open"));
}

TEST_F(CliTest, BadArgumentsExitTwo) {
  const Result flag = Run({"train", "--spec", dir_ + "/x.yaml", "--bogus"});
  EXPECT_EQ(flag.exit_code, 2) << Describe(flag);
  EXPECT_THAT(flag.err, HasSubstr("--bogus"));
  const Result no_spec = Run({"train"});
  EXPECT_EQ(no_spec.exit_code, 2) << Describe(no_spec);
  EXPECT_THAT(no_spec.err, HasSubstr("--spec"));
  const Result no_command = Run({});
  EXPECT_EQ(no_command.exit_code, 2) << Describe(no_command);
  const Result bad_set = Train(kXorSpec, "out", {"--set", "training.epochs"});
  EXPECT_EQ(bad_set.exit_code, 2) << Describe(bad_set);
  EXPECT_THAT(bad_set.err, HasSubstr("--set training.epochs: expected path=value"));
}

TEST_F(CliTest, UnwritableOutDirExitsTwo) {
  WriteFile(dir_ + "/a-file", "x");
  WriteFile(dir_ + "/spec.yaml", kXorSpec);
  const Result r = Run({"train", "--spec", dir_ + "/spec.yaml", "--out", dir_ + "/a-file/out"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("cannot create directory"));
}

TEST_F(CliTest, DivergenceExitsOneSayingNaN) {
  const Result r = Train(kXorSpec, "out",
                         {"--set", "optimizer={kind: sgd, learning_rate: 1e30}", "--set",
                          "model.layers.1.activation.kind=relu"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("training diverged at epoch"),
                           testing::AnyOf(HasSubstr("NaN"), HasSubstr("infinite")),
                           HasSubstr("optimizer.learning_rate")));
  EXPECT_FALSE(Exists(dir_ + "/out/model.cajal"));
}

TEST_F(CliTest, SameSeedIsBitIdenticalAndOtherSeedIsNot) {
  const Result a = Train(kXorSpec, "a", {"--set", "training.epochs=20"});
  const Result b = Train(kXorSpec, "b", {"--set", "training.epochs=20"});
  const Result c =
      Train(kXorSpec, "c", {"--set", "training.epochs=20", "--set", "training.seed=2"});
  ASSERT_EQ(a.exit_code, 0) << Describe(a);
  ASSERT_EQ(b.exit_code, 0) << Describe(b);
  ASSERT_EQ(c.exit_code, 0) << Describe(c);
  const auto va = Values(ReadReport(dir_ + "/a/metrics.json"));
  const auto vb = Values(ReadReport(dir_ + "/b/metrics.json"));
  const auto vc = Values(ReadReport(dir_ + "/c/metrics.json"));
  ASSERT_EQ(va.size(), 84u);  // 20 epochs of 4 points, 2 test points, 2 report fields
  EXPECT_EQ(va, vb);          // exact doubles
  EXPECT_NE(va, vc);
  const std::string ma = ReadFile(dir_ + "/a/model.cajal");
  EXPECT_GT(ma.size(), 100u);
  EXPECT_EQ(ma, ReadFile(dir_ + "/b/model.cajal"));
  EXPECT_NE(ma, ReadFile(dir_ + "/c/model.cajal"));
}

TEST_F(CliTest, SetOnTheCommandLineChangesTheModel) {
  const Result r = Train(kXorSpec, "out", {"--set", "model.layers.0.dense.units=5"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  absl::StatusOr<ModelFile> model = ReadModelFile(dir_ + "/out/model.cajal");
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(model->params.size(), 4u);
  EXPECT_EQ(model->params[0].name, "layers.0.dense.weight");
  EXPECT_EQ(model->params[0].shape, (Shape{5, 2}));
  EXPECT_THAT(model->spec_json, HasSubstr("\"units\":5"));
  const Result eval = Run({"evaluate", "--model", dir_ + "/out/model.cajal"});
  EXPECT_EQ(eval.exit_code, 0) << Describe(eval);
  EXPECT_THAT(eval.out, HasSubstr("examples=4"));
}

TEST_F(CliTest, EvaluateReproducesTheFinalTestMetrics) {
  const Result r = Train(kXorSpec, "out", {"--set", "training.epochs=30"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.lines.back(), m, std::regex(kFinalLine))) << r.out;
  const Result eval = Run({"evaluate", "--model", dir_ + "/out/model.cajal"});
  ASSERT_EQ(eval.exit_code, 0) << Describe(eval);
  EXPECT_EQ(eval.out, absl::StrCat("loss=", m[1].str(), " accuracy=", m[2].str(), " examples=4\n"));
}

TEST_F(CliTest, EvaluateOnFashionMnistMatchesTrain) {
  if (!Exists(kFashionMnist)) GTEST_SKIP() << kFashionMnist << " is missing";
  const Result r = Train(kFashionSpec, "out");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ASSERT_EQ(r.lines.size(), 2u) << r.out;
  EXPECT_TRUE(std::regex_match(r.lines[0], std::regex(kEpochLine))) << r.lines[0];
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.lines[1], m, std::regex(kFinalLine))) << r.lines[1];
  EXPECT_EQ(m[3], "40");
  EXPECT_EQ(ReadReport(dir_ + "/out/metrics.json").stop_reason(), "max_steps");
  // 40 steps of a small MLP are far above chance (0.1).
  EXPECT_GT(std::stod(m[2]), 0.5);
  const Result eval = Run({"evaluate", "--model", dir_ + "/out/model.cajal"});
  ASSERT_EQ(eval.exit_code, 0) << Describe(eval);
  EXPECT_EQ(eval.out,
            absl::StrCat("loss=", m[1].str(), " accuracy=", m[2].str(), " examples=10000\n"));
}

// Normalization statistics come from the training split only; evaluate must use the same split
// (it did not, once: it refit them on every training example).
TEST_F(CliTest, EvaluateUsesTheTrainingNormalization) {
  std::string csv;
  for (int i = 0; i < 40; ++i) {
    const int a = (i * 7) % 13, b = (i * 5) % 11;
    absl::StrAppend(&csv, a, ",", b, ",", (i * 3) % 17, ",", a + b > 11 ? 1 : 0, "\n");
  }
  csv += "500,500,500,1\n";  // an outlier: the statistics depend on which side of the split it is
  WriteFile(dir_ + "/d.csv", csv);
  const std::string spec = absl::StrCat(
      "model: {layers: [{dense: {units: 8}}, {activation: {kind: tanh}}, {dense: {units: 2}}]}\n"
      "data: {train: {csv: {path: ",
      dir_, "/d.csv}}, test: {csv: {path: ", dir_,
      "/d.csv}}, normalize: standardize, validation_fraction: 0.25}\n"
      "optimizer: {kind: adam, learning_rate: 0.05}\n"
      "training: {epochs: 5, batch_size: 8, seed: 1, threads: 1}\n");
  const Result r = Train(spec, "out");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.lines.back(), m, std::regex(kFinalLine))) << r.out;
  const Result eval = Run({"evaluate", "--model", dir_ + "/out/model.cajal"});
  ASSERT_EQ(eval.exit_code, 0) << Describe(eval);
  EXPECT_EQ(eval.out,
            absl::StrCat("loss=", m[1].str(), " accuracy=", m[2].str(), " examples=41\n"));
}

TEST_F(CliTest, EvaluateOnOtherDataFromASpec) {
  ASSERT_EQ(Train(kXorSpec, "out").exit_code, 0);
  // The xor model evaluated on the `and` table: same inputs, other labels.
  WriteFile(dir_ + "/and.yaml", "data: {train: {builtin: and}}\n");
  const Result eval =
      Run({"evaluate", "--model", dir_ + "/out/model.cajal", "--spec", dir_ + "/and.yaml"});
  ASSERT_EQ(eval.exit_code, 0) << Describe(eval);
  EXPECT_TRUE(std::regex_match(eval.out, std::regex(R"(loss=\d+\.\d{4} accuracy=\d\.\d{4} )"
                                                    R"(examples=4\n)")))
      << eval.out;
}

TEST_F(CliTest, EvaluateRefusesBadModelFiles) {
  const Result missing = Run({"evaluate", "--model", dir_ + "/missing.cajal"});
  EXPECT_EQ(missing.exit_code, 2) << Describe(missing);
  EXPECT_THAT(missing.err, HasSubstr(dir_ + "/missing.cajal: cannot open"));
  WriteFile(dir_ + "/text.cajal", "not a model");
  const Result foreign = Run({"evaluate", "--model", dir_ + "/text.cajal"});
  EXPECT_EQ(foreign.exit_code, 2) << Describe(foreign);
  EXPECT_THAT(foreign.err, HasSubstr("not a cajal model file"));
  EXPECT_THAT(foreign.out, IsEmpty());
}

}  // namespace
}  // namespace cajal
