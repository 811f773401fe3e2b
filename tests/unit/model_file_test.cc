// Model files: write, read back, restore into a fresh job, and every way a file can be bad.
#include "core/io/model_file.h"

#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"

namespace cajal {
namespace {

// The job's snapshot; a failure to take it fails the test.
ModelFile Snapshot(TrainingJob& job, const std::string& spec_json) {
  absl::StatusOr<ModelFile> f = SnapshotJob(job, spec_json);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? *std::move(f) : ModelFile();
}

using ::testing::AllOf;
using ::testing::HasSubstr;

// xor with a small MLP and adam (which has optimizer state: two moments per parameter).
constexpr char kSpec[] = R"(
model:
  layers:
    - dense: {units: 8}
    - activation: {kind: tanh}
    - dense: {units: 2}
data: {train: {builtin: xor}}
optimizer: {kind: adam, learning_rate: 0.05}
training: {epochs: 1, batch_size: 2, seed: 7, threads: 1}
)";

std::string MakeTempDir() {
  std::string tmpl = ::testing::TempDir() + "/cajal_model_file_test_XXXXXX";
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good());
}

v1::JobSpec SpecWith(const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(kSpec, overrides);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : v1::JobSpec();
}

std::unique_ptr<TrainingJob> MakeJob(const v1::JobSpec& spec) {
  absl::StatusOr<JobConfig> config = ToJobConfig(spec);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(*config, CpuBackend());
  EXPECT_TRUE(job.ok()) << job.status();
  return job.ok() ? std::move(*job) : nullptr;
}

std::vector<int64_t> AllIndices(const TrainingJob& job) {
  std::vector<int64_t> all(static_cast<size_t>(job.train_data().count));
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  return all;
}

EvalResult MustEvaluate(TrainingJob& job) {
  absl::StatusOr<EvalResult> r = job.Evaluate(job.train_data(), AllIndices(job));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : EvalResult{};
}

void ExpectSameTensors(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(a[i].name);
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].shape, b[i].shape);
    EXPECT_EQ(a[i].data, b[i].data);  // bit-identical floats
  }
}

// A trained job, its snapshot and the file it was written to.
class ModelFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_ = SpecWith();
    job_ = MakeJob(spec_);
    ASSERT_NE(job_, nullptr);
    absl::StatusOr<TrainResult> r = job_->Run(nullptr);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->steps, 2);
    snapshot_ = Snapshot(*job_, SpecToJson(spec_));
    snapshot_.extra = R"({"note": "test"})";
    path_ = dir_ + "/model.cajal";
    ASSERT_TRUE(WriteModelFile(path_, snapshot_).ok());
    bytes_ = ReadBytes(path_);
  }

  // Writes `bytes` to a new file and reads it as a model file.
  absl::StatusOr<ModelFile> ReadModified(const std::string& bytes) {
    const std::string path = dir_ + "/modified.cajal";
    WriteBytes(path, bytes);
    return ReadModelFile(path);
  }

  std::string dir_ = MakeTempDir();
  v1::JobSpec spec_;
  std::unique_ptr<TrainingJob> job_;
  ModelFile snapshot_;
  std::string path_;
  std::string bytes_;
};

TEST_F(ModelFileTest, SnapshotHoldsTheJob) {
  // layers.0.dense.{weight,bias}, layers.2.dense.{weight,bias}.
  ASSERT_EQ(snapshot_.params.size(), 4u);
  EXPECT_EQ(snapshot_.params[0].name, "layers.0.dense.weight");
  EXPECT_EQ(snapshot_.params[0].shape, (Shape{8, 2}));
  EXPECT_EQ(snapshot_.params[3].name, "layers.2.dense.bias");
  EXPECT_EQ(snapshot_.params[3].shape, (Shape{2}));
  EXPECT_EQ(snapshot_.params[0].data.size(), 16u);
  EXPECT_EQ(snapshot_.optimizer_steps, 2);
  // Adam keeps two moments for every parameter tensor.
  EXPECT_EQ(snapshot_.optimizer_state.size(), 8u);
  EXPECT_THAT(snapshot_.optimizer_state[0].name, HasSubstr("layers.0.dense.weight"));
  EXPECT_EQ(snapshot_.trainer.step, 2);
  EXPECT_EQ(snapshot_.trainer.epoch, 1);
}

TEST_F(ModelFileTest, ReadsBackEverything) {
  EXPECT_EQ(bytes_.substr(0, 8), "CAJALMDL");
  EXPECT_FALSE(std::ifstream(path_ + ".tmp").good()) << "temporary file left behind";
  absl::StatusOr<ModelFile> f = ReadModelFile(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->spec_json, snapshot_.spec_json);
  EXPECT_EQ(f->extra, snapshot_.extra);
  ExpectSameTensors(f->params, snapshot_.params);
  EXPECT_EQ(f->optimizer_steps, snapshot_.optimizer_steps);
  ExpectSameTensors(f->optimizer_state, snapshot_.optimizer_state);
  const TrainerState& a = f->trainer;
  const TrainerState& b = snapshot_.trainer;
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.batch_in_epoch, b.batch_in_epoch);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.epoch_loss_sum, b.epoch_loss_sum);
  EXPECT_EQ(a.epoch_correct, b.epoch_correct);
  EXPECT_EQ(a.epoch_seen, b.epoch_seen);
  EXPECT_EQ(a.best_val_loss, b.best_val_loss);
  EXPECT_EQ(a.epochs_without_improvement, b.epochs_without_improvement);
  EXPECT_EQ(a.has_best, b.has_best);
  // The spec inside parses back to the spec the job was built from.
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(f->spec_json);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->SerializeAsString(), spec_.SerializeAsString());
}

TEST_F(ModelFileTest, TrainerStateFieldsSurviveAWriteRead) {
  ModelFile f = snapshot_;
  f.trainer = {/*epoch=*/3,
               /*batch_in_epoch=*/5,
               /*step=*/77,
               /*epoch_loss_sum=*/1.25,
               /*epoch_correct=*/9,
               /*epoch_seen=*/10,
               /*best_val_loss=*/0.5,
               /*epochs_without_improvement=*/2,
               /*has_best=*/true};
  const std::string path = dir_ + "/state.cajal";
  ASSERT_TRUE(WriteModelFile(path, f).ok());
  absl::StatusOr<ModelFile> r = ReadModelFile(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->trainer.epoch, 3);
  EXPECT_EQ(r->trainer.batch_in_epoch, 5);
  EXPECT_EQ(r->trainer.step, 77);
  EXPECT_EQ(r->trainer.epoch_loss_sum, 1.25);
  EXPECT_EQ(r->trainer.epoch_correct, 9);
  EXPECT_EQ(r->trainer.epoch_seen, 10);
  EXPECT_EQ(r->trainer.best_val_loss, 0.5);
  EXPECT_EQ(r->trainer.epochs_without_improvement, 2);
  EXPECT_TRUE(r->trainer.has_best);
}

TEST_F(ModelFileTest, RestoreIntoAFreshJobEvaluatesIdentically) {
  const EvalResult trained = MustEvaluate(*job_);
  // A different seed initializes differently, so the restore has something to do.
  std::unique_ptr<TrainingJob> fresh = MakeJob(SpecWith({"training.seed=99"}));
  ASSERT_NE(fresh, nullptr);
  const EvalResult before = MustEvaluate(*fresh);
  EXPECT_NE(before.loss, trained.loss);
  absl::StatusOr<ModelFile> f = ReadModelFile(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(RestoreJob(*f, /*with_state=*/false, fresh.get()).ok());
  const EvalResult after = MustEvaluate(*fresh);
  EXPECT_EQ(after.loss, trained.loss);
  EXPECT_EQ(after.accuracy, trained.accuracy);
  EXPECT_EQ(after.examples, 4);
  // Without state, the optimizer and position are untouched.
  EXPECT_EQ(fresh->optimizer().steps(), 0);
  EXPECT_EQ(fresh->state().step, 0);
}

// Stop after the first epoch of two, save, restore into a fresh job, and finish both: the
// resumed run must end bit-identical to the one that never stopped.
TEST_F(ModelFileTest, ResumeWithStateContinuesExactly) {
  class StopAt : public TrainObserver {
   public:
    bool OnStep(const StepReport& s) override { return s.step < 2; }
  } stop_at_2;
  const v1::JobSpec spec = SpecWith({"training.epochs=3"});
  std::unique_ptr<TrainingJob> a = MakeJob(spec);
  ASSERT_NE(a, nullptr);
  absl::StatusOr<TrainResult> r = a->Run(&stop_at_2);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stop_reason, StopReason::kCancelled);
  const std::string path = dir_ + "/checkpoint.cajal";
  ASSERT_TRUE(WriteModelFile(path, Snapshot(*a, SpecToJson(spec))).ok());

  // Another initialization (same seed, so the same data order): only a restore makes b match.
  std::unique_ptr<TrainingJob> b =
      MakeJob(SpecWith({"training.epochs=3", "model.init.kind=xavier_normal"}));
  ASSERT_NE(b, nullptr);
  absl::StatusOr<ModelFile> f = ReadModelFile(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(RestoreJob(*f, /*with_state=*/true, b.get()).ok());
  EXPECT_EQ(b->optimizer().steps(), 2);
  EXPECT_EQ(b->state().step, 2);

  absl::StatusOr<TrainResult> ra = a->Run(nullptr);
  absl::StatusOr<TrainResult> rb = b->Run(nullptr);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->steps, 6);
  EXPECT_EQ(rb->steps, 6);
  ASSERT_EQ(ra->epochs.size(), rb->epochs.size());
  for (size_t i = 0; i < ra->epochs.size(); ++i) EXPECT_EQ(ra->epochs[i].loss, rb->epochs[i].loss);
  ExpectSameTensors(Snapshot(*a, "").params, Snapshot(*b, "").params);
  ExpectSameTensors(Snapshot(*a, "").optimizer_state, Snapshot(*b, "").optimizer_state);
}

TEST_F(ModelFileTest, TruncatedFilesAreRefused) {
  constexpr size_t kHeader = 8 + 4 + 8;
  const std::vector<size_t> cuts = {0,
                                    3,
                                    8,
                                    12,
                                    kHeader - 1,
                                    kHeader,
                                    kHeader + 5,
                                    bytes_.size() / 2,
                                    bytes_.size() - 5,
                                    bytes_.size() - 1};
  for (size_t cut : cuts) {
    SCOPED_TRACE(absl::StrCat("cut at ", cut, " of ", bytes_.size()));
    absl::StatusOr<ModelFile> f = ReadModified(bytes_.substr(0, cut));
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(dir_ + "/modified.cajal: "));
    // Inside the magic the file cannot be told from a foreign one.
    EXPECT_THAT(std::string(f.status().message()),
                HasSubstr(cut < 8 ? "not a cajal model file (bad magic)" : "truncated"));
  }
}

TEST_F(ModelFileTest, TrailingDataIsRefused) {
  absl::StatusOr<ModelFile> f = ReadModified(bytes_ + "extra");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("truncated or has trailing data"));
}

TEST_F(ModelFileTest, FlippedByteFailsTheChecksum) {
  for (size_t at : {size_t{20}, bytes_.size() / 2, bytes_.size() - 10, bytes_.size() - 1}) {
    SCOPED_TRACE(at);
    std::string bad = bytes_;
    bad[at] ^= 0x10;
    absl::StatusOr<ModelFile> f = ReadModified(bad);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(f.status().message()), HasSubstr("model file is corrupt (checksum)"));
  }
}

TEST_F(ModelFileTest, ForeignFilesAreRefused) {
  static constexpr char kPng[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0";
  const std::string png(kPng, sizeof(kPng) - 1);
  for (const std::string& bytes : {png, std::string("model:\n  preset: mlp\n"), std::string()}) {
    absl::StatusOr<ModelFile> f = ReadModified(bytes);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(f.status().message()), HasSubstr("not a cajal model file (bad magic)"));
  }
}

TEST_F(ModelFileTest, OtherVersionsAreRefused) {
  std::string bad = bytes_;
  const uint32_t version = 3;
  std::memcpy(bad.data() + 8, &version, 4);
  absl::StatusOr<ModelFile> f = ReadModified(bad);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(f.status().message()),
              HasSubstr("model format version 3 is not supported (this build reads 1 to 2)"));
}

TEST_F(ModelFileTest, InfoHoldsWhatRunningTheModelNeeds) {
  const ModelInfo& info = snapshot_.info;
  EXPECT_TRUE(info.present);
  EXPECT_EQ(info.input, Shape({2}));
  EXPECT_EQ(info.num_classes, 2);
  EXPECT_EQ(info.target_dim, 0);
  EXPECT_EQ(info.normalization.shift, job_->normalization().shift);
  EXPECT_EQ(info.normalization.scale, job_->normalization().scale);
  absl::StatusOr<ModelFile> f = ReadModelFile(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->info.present);
  EXPECT_EQ(f->info.input, info.input);
  EXPECT_EQ(f->info.num_classes, 2);
  EXPECT_EQ(f->info.normalization.channel_stride, info.normalization.channel_stride);
  EXPECT_EQ(f->info.normalization.shift, info.normalization.shift);
  EXPECT_EQ(f->info.normalization.scale, info.normalization.scale);
}

TEST_F(ModelFileTest, StandardizationStatisticsAreStored) {
  std::unique_ptr<TrainingJob> job = MakeJob(SpecWith({"data.normalize=standardize"}));
  ASSERT_NE(job, nullptr);
  const std::string path = dir_ + "/standardized.cajal";
  ASSERT_TRUE(WriteModelFile(path, Snapshot(*job, "")).ok());
  absl::StatusOr<ModelFile> f = ReadModelFile(path);
  ASSERT_TRUE(f.ok()) << f.status();
  // xor's inputs are 0/1 half the time each: mean 0.5, standard deviation 0.5.
  EXPECT_EQ(f->info.normalization.shift, std::vector<float>({0.5f, 0.5f}));
  EXPECT_EQ(f->info.normalization.scale, std::vector<float>({2.0f, 2.0f}));
}

// A version 1 file (no info block) still reads, with info.present false.
TEST_F(ModelFileTest, VersionOneFilesStillRead) {
  // Version 1 is version 2 without the trailing info block: cut it off, fix size and CRC.
  const ModelInfo& i = snapshot_.info;
  const size_t info_bytes = 4 + 8 * i.input.size() + 4 + 4 + 8 +
                            (4 + 4 * i.normalization.shift.size()) +
                            (4 + 4 * i.normalization.scale.size());
  constexpr size_t kHeader = 8 + 4 + 8;
  std::string body = bytes_.substr(kHeader, bytes_.size() - kHeader - 4 - info_bytes);
  std::string v1 = bytes_.substr(0, kHeader);
  const uint32_t version = 1;
  const uint64_t size = body.size();
  std::memcpy(v1.data() + 8, &version, 4);
  std::memcpy(v1.data() + 12, &size, 8);
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  v1 += body + std::string(reinterpret_cast<const char*>(&crc), 4);
  absl::StatusOr<ModelFile> f = ReadModified(v1);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->info.present);
  EXPECT_EQ(f->extra, snapshot_.extra);
  ExpectSameTensors(f->params, snapshot_.params);
}

TEST_F(ModelFileTest, WrongPayloadSizeIsRefused) {
  std::string bad = bytes_;
  bad[12] ^= 0x01;  // the u64 payload size
  absl::StatusOr<ModelFile> f = ReadModified(bad);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("truncated or has trailing data"));
}

// A payload whose checksum is right but whose content is impossible.
TEST_F(ModelFileTest, ImpossibleTensorsAreCorrupt) {
  ModelFile f = snapshot_;
  f.params[0].shape = Shape(9, 1);
  const std::string path = dir_ + "/rank.cajal";
  ASSERT_TRUE(WriteModelFile(path, f).ok());
  absl::StatusOr<ModelFile> r = ReadModelFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("model file is corrupt (tensor rank)"));

  f = snapshot_;
  f.params[1].shape = {0};
  f.params[1].data.clear();
  ASSERT_TRUE(WriteModelFile(path, f).ok());
  r = ReadModelFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("model file is corrupt (tensor dimension)"));
}

TEST_F(ModelFileTest, MissingFileIsNotFound) {
  const std::string missing = dir_ + "/missing.cajal";
  absl::StatusOr<ModelFile> f = ReadModelFile(missing);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr(missing));
}

TEST_F(ModelFileTest, WriteIntoAMissingDirectoryFails) {
  const std::string path = dir_ + "/no/such/dir/model.cajal";
  const absl::Status s = WriteModelFile(path, snapshot_);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("cannot create"), HasSubstr(path)));
}

TEST_F(ModelFileTest, RestoreIntoADifferentShapeNamesTheTensor) {
  std::unique_ptr<TrainingJob> wider = MakeJob(SpecWith({"model.layers.0.dense.units=16"}));
  ASSERT_NE(wider, nullptr);
  const absl::Status s = RestoreJob(snapshot_, /*with_state=*/false, wider.get());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("model file tensor layers.0.dense.weight (8, 2) does not match the "
                        "network's layers.0.dense.weight (16, 2)"));

  std::unique_ptr<TrainingJob> deeper =
      MakeJob(SpecWith({"model.layers.3.activation.kind=tanh", "model.layers.4.dense.units=2"}));
  ASSERT_NE(deeper, nullptr);
  const absl::Status d = RestoreJob(snapshot_, /*with_state=*/false, deeper.get());
  EXPECT_EQ(d.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.message()), HasSubstr("model file has 4 tensors, the network has 6"));
}

TEST_F(ModelFileTest, RestoringStateIntoAnotherOptimizerIsRefused) {
  std::unique_ptr<TrainingJob> sgd = MakeJob(SpecWith({"optimizer.kind=momentum"}));
  ASSERT_NE(sgd, nullptr);
  EXPECT_TRUE(RestoreJob(snapshot_, /*with_state=*/false, sgd.get()).ok());
  const absl::Status s = RestoreJob(snapshot_, /*with_state=*/true, sgd.get());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("model file optimizer state does not match the optimizer"));
}

}  // namespace
}  // namespace cajal
