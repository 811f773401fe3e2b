// One job's run (service/server/job_runner.h) with a recording sink and no server: each way a
// run ends (succeeded, failed in Prepare, cancelled, interrupted with a checkpoint), resuming
// from that checkpoint without recording a metric twice, and a damaged checkpoint that is
// ignored. Also the crash-loop guard (crash_loop.h) on a real store.
#include "service/server/job_runner.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/server/crash_loop.h"
#include "service/spec/spec_loader.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

constexpr char kXor[] = R"(
model: {layers: [{dense: {units: 8}}, {activation: {kind: tanh}}, {dense: {units: 2}}]}
data: {train: {builtin: xor}}
optimizer: {kind: adam, learning_rate: 0.05}
training: {epochs: 3, batch_size: 4, seed: 1, threads: 1}
)";

std::string TempDir() {
  std::string dir = ::testing::TempDir() + "/cajal_runner_XXXXXX";
  EXPECT_NE(::mkdtemp(dir.data()), nullptr);
  return dir;
}

class RecordingSink : public JobSink {
 public:
  void SetProgress(const std::string&, const v1::Progress& p) override {
    absl::MutexLock lock(&mu_);
    progress = p;
    if (stop_at_step > 0 && p.step() >= stop_at_step) stop->store(true);
  }
  absl::Status AddMetric(const std::string&, const v1::MetricPoint& point) override {
    absl::MutexLock lock(&mu_);
    points.push_back(point);
    return metric_error;
  }
  bool Cancelling(const std::string&) override { return cancelling; }

  absl::Mutex mu_;
  v1::Progress progress;
  std::vector<v1::MetricPoint> points;
  absl::Status metric_error;
  bool cancelling = false;
  int64_t stop_at_step = 0;
  std::shared_ptr<std::atomic<bool>> stop;
};

RunRequest Request(const std::string& dir, std::vector<std::string> overrides = {}) {
  RunRequest r;
  r.id = "0123456789abcdef0123456789abcdef";
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(kXor, overrides);
  EXPECT_TRUE(spec.ok()) << spec.status();
  r.spec = *spec;
  r.job_dir = dir + "/job";
  r.stop = std::make_shared<std::atomic<bool>>(false);
  return r;
}

TEST(JobRunnerTest, SucceedsWithModelMetricsAndProgress) {
  const std::string dir = TempDir();
  RecordingSink sink;
  const RunOutcome outcome = RunJob(Request(dir), &sink);
  EXPECT_EQ(outcome.end, RunEnd::kSucceeded) << outcome.error;
  EXPECT_TRUE(std::filesystem::exists(ModelFilePath(dir + "/job")));
  EXPECT_EQ(sink.progress.step(), 3);
  std::multiset<std::string> names;
  for (const auto& p : sink.points) names.insert(p.name());
  EXPECT_EQ(names.count("loss"), 3u);
  EXPECT_EQ(names.count("samples_per_sec"), 1u);
}

TEST(JobRunnerTest, APrepareErrorIsAFailedOutcomeWithTheCoresMessage) {
  RecordingSink sink;
  const RunOutcome outcome = RunJob(Request(TempDir(), {"model.layers.2.dense.units=3"}), &sink);
  EXPECT_EQ(outcome.end, RunEnd::kFailed);
  EXPECT_THAT(outcome.error.message(), HasSubstr("model.layers.2 (dense)"));
}

TEST(JobRunnerTest, AMetricThatCannotBeStoredFailsTheRun) {
  RecordingSink sink;
  sink.metric_error = absl::ResourceExhaustedError("store: database or disk is full");
  const RunOutcome outcome = RunJob(Request(TempDir()), &sink);
  EXPECT_EQ(outcome.end, RunEnd::kFailed);
  EXPECT_EQ(outcome.error.code(), absl::StatusCode::kResourceExhausted);
}

TEST(JobRunnerTest, StoppedForAShutdownLeavesACheckpointAndResumesFromIt) {
  const std::string dir = TempDir();
  RunRequest request = Request(dir, {"training.epochs=50"});
  RecordingSink sink;
  sink.stop = request.stop;
  sink.stop_at_step = 10;
  RunOutcome outcome = RunJob(request, &sink);
  ASSERT_EQ(outcome.end, RunEnd::kInterrupted) << outcome.error;
  ASSERT_TRUE(std::filesystem::exists(CheckpointFile(request.job_dir)));
  const std::vector<v1::MetricPoint> before = sink.points;
  EXPECT_EQ(sink.progress.step(), 10);

  // The next server: resumes at the checkpoint's step, records no metric twice.
  RecordingSink next;
  request.stop = std::make_shared<std::atomic<bool>>(false);
  request.resume = true;
  request.recorded = before;
  outcome = RunJob(request, &next);
  ASSERT_EQ(outcome.end, RunEnd::kSucceeded) << outcome.error;
  EXPECT_EQ(next.progress.step(), 50);
  std::set<std::pair<std::string, int>> seen;
  for (const auto& p : before) seen.emplace(p.name(), p.epoch());
  for (const auto& p : next.points) {
    EXPECT_TRUE(seen.emplace(p.name(), p.epoch()).second) << p.name() << " " << p.epoch();
  }
  EXPECT_EQ(seen.count({"loss", 50}), 1u);
}

TEST(JobRunnerTest, ACancelledRunIsCancelledNotInterrupted) {
  const std::string dir = TempDir();
  RunRequest request = Request(dir, {"training.epochs=50"});
  RecordingSink sink;
  sink.stop = request.stop;
  sink.stop_at_step = 5;
  sink.cancelling = true;
  EXPECT_EQ(RunJob(request, &sink).end, RunEnd::kCancelled);
}

TEST(JobRunnerTest, ADamagedCheckpointIsIgnoredAndTheJobStartsOver) {
  const std::string dir = TempDir();
  RunRequest request = Request(dir);
  std::filesystem::create_directories(request.job_dir);
  std::ofstream(CheckpointFile(request.job_dir)) << "not a model file";
  request.resume = true;
  RecordingSink sink;
  const RunOutcome outcome = RunJob(request, &sink);
  EXPECT_EQ(outcome.end, RunEnd::kSucceeded) << outcome.error;
  EXPECT_EQ(sink.progress.step(), 3);
}

TEST(CrashLoopGuardTest, CountsRunsUntilTheyEndAndStopsCleanly) {
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(TempDir() + "/cajal.db");
  ASSERT_TRUE(store.ok()) << store.status();
  v1::Job job;
  job.set_id("a");
  ASSERT_TRUE((*store)->PutJob(job).ok());
  job.set_id("b");
  ASSERT_TRUE((*store)->PutJob(job).ok());
  CrashLoopGuard guard(store->get(), /*limit=*/2);
  EXPECT_FALSE(guard.Exceeded(1));
  EXPECT_TRUE(guard.Exceeded(2));
  EXPECT_FALSE(CrashLoopGuard(store->get(), 0).Exceeded(100)) << "0: never";
  EXPECT_EQ(CrashLoopGuard::Message(2).rfind(
                "the server stopped unexpectedly twice while running this job", 0),
            0u);
  EXPECT_THAT(CrashLoopGuard::Message(3), HasSubstr("3 times in a row"));

  ASSERT_TRUE(*guard.Begin("a"));
  ASSERT_TRUE(*guard.Begin("b"));
  guard.End("b");
  EXPECT_EQ(*(*store)->LoadInterruptedRuns(), (std::map<std::string, int>{{"a", 1}}));
  guard.StopCleanly();  // a SIGTERM: a's run ends now
  EXPECT_TRUE((*store)->LoadInterruptedRuns()->empty());
  absl::StatusOr<bool> begun = guard.Begin("b");
  ASSERT_TRUE(begun.ok());
  EXPECT_FALSE(*begun) << "no run begins once a clean shutdown has";
  EXPECT_EQ(CrashLoopGuard(store->get(), 2).Begin("absent").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cajal
