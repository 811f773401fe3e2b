// The gRPC service end to end, in-process: a real Server on a loopback port chosen at run
// time, a real channel and stub, a real SQLite file in a temp directory.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "cajal/v1/training_service.grpc.pb.h"
#include "core/io/model_file.h"
#include "core/train/memory.h"
#include "gmock/gmock.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"
#include "onnx/onnx_pb.h"
#include "service/export/onnx_export.h"
#include "service/server/server.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;
using v1::JobState;

// A job that finishes in well under a second.
constexpr char kQuickSpec[] = R"(
model: {layers: [{dense: {units: 8}}, {activation: {kind: tanh}}, {dense: {units: 2}}]}
data: {train: {builtin: xor}}
optimizer: {kind: adam, learning_rate: 0.05}
training: {epochs: 3, batch_size: 4, seed: 1, threads: 1}
)";

// A job that runs for minutes unless cancelled.
constexpr char kLongSpec[] = R"(
model: {layers: [{dense: {units: 64}}, {activation: {kind: relu}}, {dense: {units: 10}}]}
data: {train: {builtin: fashion-mnist}, normalize: scale}
optimizer: {kind: sgd, learning_rate: 0.01}
training: {epochs: 1000, batch_size: 32, seed: 1, threads: 1}
)";

std::string TempDir() {
  std::string tmpl = ::testing::TempDir() + "/cajal_service_XXXXXX";
  char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return dir;
}

v1::JobSpec Spec(const char* yaml, std::vector<std::string> overrides = {}) {
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(yaml, overrides);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(TempDir()); }

  void StartServer(const std::string& dir, int max_queued = 100, int concurrent = 1,
                   int64_t max_job_memory = 0) {
    data_dir_ = dir;
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.data_dir = dir;
    o.max_queued_jobs = max_queued;
    o.max_concurrent_jobs = concurrent;
    o.threads_per_job = 1;
    o.max_job_memory = max_job_memory;
    absl::StatusOr<std::unique_ptr<Server>> server = Server::BuildAndStart(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::TrainingService::NewStub(channel_);
  }

  void StopServer() {
    stub_.reset();
    channel_.reset();
    server_.reset();
  }

  grpc::Status Submit(const v1::JobSpec& spec, v1::Job* job, const std::string& request_id = "") {
    grpc::ClientContext ctx;
    v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    req.set_request_id(request_id);
    return stub_->SubmitJob(&ctx, req, job);
  }

  grpc::Status Get(const std::string& id, v1::Job* job) {
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_id(id);
    return stub_->GetJob(&ctx, req, job);
  }

  grpc::Status Cancel(const std::string& id, v1::Job* job) {
    grpc::ClientContext ctx;
    v1::CancelJobRequest req;
    req.set_id(id);
    return stub_->CancelJob(&ctx, req, job);
  }

  // Every event of the stream from `from`, and the stream's status.
  std::vector<v1::JobEvent> Watch(const std::string& id, int64_t from = 0,
                                  grpc::Status* status = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::WatchJobRequest req;
    req.set_id(id);
    req.set_from_sequence(from);
    auto reader = stub_->WatchJob(&ctx, req);
    std::vector<v1::JobEvent> events;
    v1::JobEvent e;
    while (reader->Read(&e)) events.push_back(e);
    const grpc::Status s = reader->Finish();
    if (status != nullptr) *status = s;
    EXPECT_TRUE(status != nullptr || s.ok()) << s.error_message();
    return events;
  }

  // Polls GetJob until `done` holds (at most 60 s).
  v1::Job WaitFor(const std::string& id, const std::function<bool(const v1::Job&)>& done) {
    v1::Job job;
    for (int i = 0; i < 6000; ++i) {
      EXPECT_TRUE(Get(id, &job).ok());
      if (done(job)) return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "timed out waiting on job " << id;
    return job;
  }

  std::string data_dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TrainingService::Stub> stub_;
};

TEST_F(ServiceTest, HappyPathSubmitWatchMetricsDownloadDelete) {
  v1::Job job;
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &job).ok());
  EXPECT_EQ(job.id().size(), 32u);
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  EXPECT_TRUE(job.has_create_time());

  const std::vector<v1::JobEvent> events = Watch(job.id());
  ASSERT_GE(events.size(), 3u);
  for (size_t i = 0; i < events.size(); ++i)
    EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i));
  EXPECT_EQ(events.front().state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events[1].state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(events.back().state(), v1::JOB_STATE_SUCCEEDED);
  int epoch_losses = 0;
  for (const auto& e : events) epoch_losses += e.has_metric() && e.metric().name() == "loss";
  EXPECT_EQ(epoch_losses, 3) << "one loss point per epoch";

  v1::Job done;
  ASSERT_TRUE(Get(job.id(), &done).ok());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.progress().step(), 3);  // 4 examples, batch 4, 3 epochs
  EXPECT_EQ(done.progress().total_steps(), 3);
  EXPECT_EQ(done.progress().epoch(), 3);
  EXPECT_TRUE(done.has_start_time());
  EXPECT_TRUE(done.has_end_time());
  EXPECT_TRUE(done.latest_metrics().contains("loss"));
  EXPECT_TRUE(done.latest_metrics().contains("accuracy"));

  {
    grpc::ClientContext ctx;
    v1::GetJobMetricsRequest req;
    req.set_id(job.id());
    v1::GetJobMetricsResponse resp;
    ASSERT_TRUE(stub_->GetJobMetrics(&ctx, req, &resp).ok());
    int losses = 0;
    for (const auto& p : resp.points()) {
      if (p.name() == "loss") {
        ++losses;
        EXPECT_EQ(p.epoch(), losses);
      }
    }
    EXPECT_EQ(losses, 3);
  }

  std::string bytes;
  {
    grpc::ClientContext ctx;
    v1::DownloadModelRequest req;
    req.set_id(job.id());
    auto reader = stub_->DownloadModel(&ctx, req);
    v1::ModelChunk chunk;
    while (reader->Read(&chunk)) {
      EXPECT_EQ(chunk.offset(), static_cast<int64_t>(bytes.size()));
      bytes += chunk.data();
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  const std::string path = data_dir_ + "/jobs/" + job.id() + "/model.cajal";
  std::ifstream in(path, std::ios::binary);
  const std::string on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, on_disk);
  absl::StatusOr<ModelFile> model = ReadModelFile(path);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->params.size(), 4u);

  {
    grpc::ClientContext ctx;
    v1::DeleteJobRequest req;
    req.set_id(job.id());
    google::protobuf::Empty empty;
    ASSERT_TRUE(stub_->DeleteJob(&ctx, req, &empty).ok());
  }
  v1::Job gone;
  EXPECT_EQ(Get(job.id(), &gone).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(std::filesystem::exists(data_dir_ + "/jobs/" + job.id()));
}

TEST_F(ServiceTest, ErrorCodes) {
  v1::Job job;
  // A bad spec gets the same message as `cajal train`.
  grpc::Status s = Submit(Spec(kQuickSpec, {"training.batch_size=-3"}), &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "training.batch_size: must be > 0, got -3");
  s = Submit(v1::JobSpec(), &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("model"));

  s = Get("0123456789abcdef0123456789abcdef", &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("not found"));
  s = Get("../../etc/passwd", &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("id:"));

  // Same request_id: same spec → the same job; another spec → ALREADY_EXISTS.
  v1::Job first, again, other;
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &first, "req-1").ok());
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &again, "req-1").ok());
  EXPECT_EQ(first.id(), again.id());
  s = Submit(Spec(kQuickSpec, {"training.epochs=4"}), &other, "req-1");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr(first.id()));

  WaitFor(first.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
  s = Cancel(first.id(), &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("SUCCEEDED"));

  // A running job: no download, no delete.
  v1::Job running;
  ASSERT_TRUE(Submit(Spec(kLongSpec), &running).ok());
  WaitFor(running.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });
  {
    grpc::ClientContext ctx;
    v1::DownloadModelRequest req;
    req.set_id(running.id());
    auto reader = stub_->DownloadModel(&ctx, req);
    v1::ModelChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), HasSubstr("only a SUCCEEDED job has a model"));
  }
  {
    grpc::ClientContext ctx;
    v1::DeleteJobRequest req;
    req.set_id(running.id());
    google::protobuf::Empty empty;
    s = stub_->DeleteJob(&ctx, req, &empty);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  {
    grpc::ClientContext ctx;
    v1::ListJobsRequest req;
    req.set_page_token("not-a-token");
    v1::ListJobsResponse resp;
    s = stub_->ListJobs(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("page_token"));
  }
  ASSERT_TRUE(Cancel(running.id(), &job).ok());
  WaitFor(running.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_CANCELLED; });
}

TEST_F(ServiceTest, QueueFullIsResourceExhausted) {
  StopServer();
  StartServer(TempDir(), /*max_queued=*/1);
  v1::Job running, queued, rejected;
  ASSERT_TRUE(Submit(Spec(kLongSpec), &running).ok());
  WaitFor(running.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &queued).ok());
  const grpc::Status s = Submit(Spec(kQuickSpec), &rejected);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("--max_queued_jobs=1"));
  v1::Job job;
  ASSERT_TRUE(Cancel(queued.id(), &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED) << "a queued job is cancelled at once";
  ASSERT_TRUE(Cancel(running.id(), &job).ok());
}

TEST_F(ServiceTest, CancelStopsWithinAStepAndFreesTheWorker) {
  v1::Job running, next;
  ASSERT_TRUE(Submit(Spec(kLongSpec), &running).ok());
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &next).ok());
  v1::Job job = WaitFor(running.id(), [](const v1::Job& j) { return j.progress().step() >= 5; });
  v1::Job cancelling;
  ASSERT_TRUE(Cancel(running.id(), &cancelling).ok());
  const int64_t step_at_cancel = cancelling.progress().step();
  EXPECT_TRUE(cancelling.state() == v1::JOB_STATE_CANCELLING ||
              cancelling.state() == v1::JOB_STATE_CANCELLED);
  job =
      WaitFor(running.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_CANCELLED; });
  EXPECT_LE(job.progress().step(), step_at_cancel + 1) << "stops at the next step boundary";
  EXPECT_TRUE(job.has_end_time());
  // The worker is free: the queued job runs to the end.
  WaitFor(next.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
  // The history shows RUNNING → CANCELLING → CANCELLED.
  std::vector<JobState> states;
  for (const auto& e : Watch(running.id())) {
    if (e.kind_case() == v1::JobEvent::kState) states.push_back(e.state());
  }
  EXPECT_EQ(states, (std::vector<JobState>{v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING,
                                           v1::JOB_STATE_CANCELLING, v1::JOB_STATE_CANCELLED}));
}

TEST_F(ServiceTest, WatchersSeeEveryEventOnceInOrder) {
  v1::Job job;
  ASSERT_TRUE(Submit(Spec(kQuickSpec, {"training.epochs=30"}), &job).ok());
  // Many watchers at once, joining while the job runs.
  std::vector<std::vector<v1::JobEvent>> seen(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] { seen[i] = Watch(job.id()); });
  }
  for (auto& t : threads) t.join();
  const std::vector<v1::JobEvent> late = Watch(job.id());  // after the end
  ASSERT_GT(late.size(), 60u);
  for (size_t i = 0; i < late.size(); ++i) ASSERT_EQ(late[i].sequence(), static_cast<int64_t>(i));
  EXPECT_EQ(late.back().state(), v1::JOB_STATE_SUCCEEDED);
  for (const auto& s : seen) {
    ASSERT_EQ(s.size(), late.size());
    for (size_t i = 0; i < s.size(); ++i)
      EXPECT_EQ(s[i].SerializeAsString(), late[i].SerializeAsString());
  }
  // A reconnect with from_sequence resumes exactly after the last event seen.
  const std::vector<v1::JobEvent> tail = Watch(job.id(), 10);
  ASSERT_EQ(tail.size(), late.size() - 10);
  EXPECT_EQ(tail.front().sequence(), 10);
  EXPECT_EQ(Watch(job.id(), static_cast<int64_t>(late.size())).size(), 0u);
  grpc::Status s;
  Watch(job.id(), -1, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Watch("0123456789abcdef0123456789abcdef", 0, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, ConcurrentSubmitsWithOneRequestIdCreateOneJob) {
  std::vector<std::string> ids(32);
  std::vector<grpc::StatusCode> codes(32);
  std::vector<std::thread> threads;
  const v1::JobSpec spec = Spec(kQuickSpec);
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] {
      v1::Job job;
      codes[i] = Submit(spec, &job, "the-same-request").error_code();
      ids[i] = job.id();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 32; ++i) EXPECT_EQ(codes[i], grpc::StatusCode::OK);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 1u);
  grpc::ClientContext ctx;
  v1::ListJobsRequest req;
  v1::ListJobsResponse resp;
  ASSERT_TRUE(stub_->ListJobs(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.jobs_size(), 1);
}

TEST_F(ServiceTest, ListJobsPagesAndFilters) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    v1::Job job;
    ASSERT_TRUE(
        Submit(Spec(kQuickSpec, {absl::StrCat("labels.team=", i % 2 ? "a" : "b")}), &job).ok());
    ids.push_back(job.id());
  }
  for (const auto& id : ids) {
    WaitFor(id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
  }
  std::vector<std::string> listed;
  v1::ListJobsRequest req;
  req.set_page_size(2);
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    v1::ListJobsResponse resp;
    ASSERT_TRUE(stub_->ListJobs(&ctx, req, &resp).ok());
    EXPECT_LE(resp.jobs_size(), 2);
    for (const auto& j : resp.jobs()) listed.push_back(j.id());
    req.set_page_token(resp.next_page_token());
    ++pages;
  } while (!req.page_token().empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(listed, std::vector<std::string>(ids.rbegin(), ids.rend())) << "newest first";

  v1::ListJobsRequest filtered;
  (*filtered.mutable_labels())["team"] = "a";
  filtered.set_state(v1::JOB_STATE_SUCCEEDED);
  grpc::ClientContext ctx;
  v1::ListJobsResponse resp;
  ASSERT_TRUE(stub_->ListJobs(&ctx, filtered, &resp).ok());
  ASSERT_EQ(resp.jobs_size(), 2);
  EXPECT_EQ(resp.jobs(0).id(), ids[3]);
  EXPECT_EQ(resp.jobs(1).id(), ids[1]);
}

TEST_F(ServiceTest, RestartKeepsJobsAndRunsQueuedOnes) {
  v1::Job running, queued;
  ASSERT_TRUE(Submit(Spec(kLongSpec), &running).ok());
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &queued).ok());
  WaitFor(running.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });
  const std::string dir = data_dir_;
  StopServer();
  StartServer(dir);
  v1::Job job;
  ASSERT_TRUE(Get(running.id(), &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING) << "an interrupted job resumes";
  ASSERT_TRUE(Cancel(running.id(), &job).ok());
  WaitFor(queued.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
}

TEST_F(ServiceTest, TfeventsAreWrittenUnderTheJobAndDownloadable) {
  v1::Job job;
  ASSERT_TRUE(Submit(Spec(kQuickSpec, {"training.tfevents=true"}), &job).ok());
  WaitFor(job.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
  auto download = [&](const std::string& id, v1::Artifact artifact, grpc::Status* status) {
    grpc::ClientContext ctx;
    v1::DownloadModelRequest req;
    req.set_id(id);
    req.set_artifact(artifact);
    auto reader = stub_->DownloadModel(&ctx, req);
    std::string bytes;
    v1::ModelChunk chunk;
    while (reader->Read(&chunk)) bytes += chunk.data();
    *status = reader->Finish();
    return bytes;
  };
  grpc::Status s;
  const std::string events = download(job.id(), v1::ARTIFACT_TFEVENTS, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  // TFRecord framing: u64 length, u32 masked CRC, data, u32 masked CRC — walk every record.
  size_t pos = 0, records = 0;
  while (pos + 12 <= events.size()) {
    uint64_t len;
    std::memcpy(&len, events.data() + pos, 8);
    ASSERT_LE(pos + 12 + len + 4, events.size()) << "a truncated record";
    pos += 12 + len + 4;
    ++records;
  }
  EXPECT_EQ(pos, events.size());
  EXPECT_EQ(records, 1u + 3u) << "the version record and one per epoch";
  EXPECT_NE(events.find("brain.Event:2"), std::string::npos);
  EXPECT_NE(events.find("accuracy"), std::string::npos);
  // The files are the ones in the job's directory.
  size_t on_disk = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(data_dir_ + "/jobs/" + job.id() + "/tfevents")) {
    EXPECT_EQ(e.path().filename().string().rfind("events.out.tfevents.", 0), 0u);
    on_disk += std::filesystem::file_size(e.path());
  }
  EXPECT_EQ(on_disk, events.size());

  // A job without tfevents has none to give.
  v1::Job plain;
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &plain).ok());
  WaitFor(plain.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
  download(plain.id(), v1::ARTIFACT_TFEVENTS, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("training.tfevents"));
}

TEST_F(ServiceTest, HealthServiceIsServing) {
  grpc::ClientContext ctx;
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1), response;
  // grpc.health.v1.HealthCheckRequest{service: ""} is the empty message.
  grpc::GenericStub generic(channel_);
  grpc::CompletionQueue cq;
  auto call = generic.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2)) << "status: SERVING";
}

// DownloadModel(ARTIFACT_ONNX): the server exports the job's model.cajal on the first request
// (service/export/), the same bytes as ExportOnnx of that file; `cajal download --artifact
// onnx` writes them; a model with a layer ONNX cannot express is FAILED_PRECONDITION.
TEST_F(ServiceTest, OnnxArtifactIsExportedOnDemand) {
  v1::Job job;
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &job).ok());
  WaitFor(job.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
  auto download = [&](const std::string& id, grpc::Status* status) {
    grpc::ClientContext ctx;
    v1::DownloadModelRequest req;
    req.set_id(id);
    req.set_artifact(v1::ARTIFACT_ONNX);
    auto reader = stub_->DownloadModel(&ctx, req);
    std::string bytes;
    v1::ModelChunk chunk;
    while (reader->Read(&chunk)) bytes += chunk.data();
    *status = reader->Finish();
    return bytes;
  };
  grpc::Status s;
  const std::string onnx = download(job.id(), &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const std::string dir = data_dir_ + "/jobs/" + job.id();
  absl::StatusOr<ModelFile> model = ReadModelFile(dir + "/model.cajal");
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::string> expected = ExportOnnx(*model);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(onnx, *expected);
  onnx::ModelProto proto;
  ASSERT_TRUE(proto.ParseFromString(onnx));
  EXPECT_EQ(proto.opset_import(0).version(), 17);
  ASSERT_EQ(proto.graph().output_size(), 2);
  EXPECT_EQ(proto.graph().output(0).name(), "logits");
  EXPECT_TRUE(std::filesystem::exists(dir + "/model.onnx")) << "kept beside the model";
  EXPECT_EQ(download(job.id(), &s), onnx) << "the second download reuses the export";

  const std::string out = dir + "/cli.onnx";
  const std::string cmd =
      absl::StrCat(CAJAL_BINARY_DIR, "/bin/cajal download ", job.id(), " --artifact onnx -o ", out,
                   " --server 127.0.0.1:", server_->port(), " >/dev/null");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(out, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), onnx);

  // An even LRN window is centred differently in ONNX: refused, naming the layer.
  v1::Job lrn;
  ASSERT_TRUE(Submit(Spec(R"(
model: {layers: [{conv2d: {filters: 2, kernel: 3}}, {lrn: {size: 4}}, {flatten: {}},
                 {dense: {units: 10}}]}
data: {train: {builtin: fashion-mnist}, normalize: scale}
optimizer: {kind: sgd, learning_rate: 0.01}
training: {epochs: 1, batch_size: 32, seed: 1, threads: 1, max_steps: 1}
)"),
                     &lrn)
                  .ok());
  WaitFor(lrn.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
  download(lrn.id(), &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("cannot be exported to ONNX: model.layers.1 (lrn)"));
}

// ---- Resources (docs/resources.md) ---------------------------------------------------------

// What a spec's job is estimated to need on this server (as SubmitJob computes it).
MemoryEstimate EstimateOf(const char* yaml, std::vector<std::string> overrides = {}) {
  absl::StatusOr<JobConfig> config = ToJobConfig(Spec(yaml, std::move(overrides)));
  EXPECT_TRUE(config.ok()) << config.status();
  absl::StatusOr<MemoryEstimate> e =
      EstimateMemory(*config, {CpuBackend(), /*ranks=*/1, /*include_runtime=*/false});
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : MemoryEstimate{};
}

double GaugeValue(const std::string& name) {
  for (const auto& family : ServerMetrics().registry()->Collect()) {
    if (family.name == name && !family.metric.empty()) return family.metric[0].gauge.value;
  }
  return -1;
}

// Two dense layers of 10^6 units: the second holds 10^12 parameters (4 TB).
constexpr char kHugeDense[] = R"(
model: {layers: [{dense: {units: 1000000}}, {dense: {units: 1000000}}, {dense: {units: 2}}]}
data: {train: {builtin: xor}}
optimizer: {kind: sgd, learning_rate: 0.05}
training: {epochs: 1, batch_size: 4, seed: 1, threads: 1}
)";

TEST_F(ServiceTest, GetJobCarriesTheMemoryEstimate) {
  v1::Job job;
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &job).ok());
  const MemoryEstimate expected = EstimateOf(kQuickSpec);
  const v1::MemoryEstimate& e = job.memory_estimate();
  EXPECT_EQ(e.parameters(), 2 * 8 + 8 + 8 * 2 + 2);
  EXPECT_EQ(e.total_bytes(), expected.total_bytes());
  EXPECT_EQ(e.host_bytes(), expected.host_bytes);
  EXPECT_EQ(e.device_bytes(), 0);
  EXPECT_EQ(e.biggest().where(), expected.Biggest().where);
  EXPECT_EQ(e.biggest().bytes(), expected.Biggest().bytes);
  WaitFor(job.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
  const std::string dir = data_dir_;
  StopServer();
  StartServer(dir);
  v1::Job again;
  ASSERT_TRUE(Get(job.id(), &again).ok());
  EXPECT_EQ(again.memory_estimate().SerializeAsString(), e.SerializeAsString()) << "stored";
}

TEST_F(ServiceTest, AJobOverTheServersMemoryIsInvalidArgument) {
  StopServer();
  StartServer(TempDir(), 100, 1, /*max_job_memory=*/8'000'000'000);
  v1::Job job;
  const grpc::Status s = Submit(Spec(kHugeDense), &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("too large for this server: the job needs an estimated"));
  EXPECT_THAT(s.error_message(), HasSubstr("the memory budget is 8.0 GB (--max_job_memory)"));
  EXPECT_THAT(s.error_message(),
              HasSubstr("the biggest part: model.layers.1.dense: 4.0 TB of parameters"));
  grpc::ClientContext ctx;
  v1::ListJobsResponse list;
  ASSERT_TRUE(stub_->ListJobs(&ctx, v1::ListJobsRequest(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 0) << "nothing was stored";
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &job).ok());
  WaitFor(job.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
}

// --max_job_memory far above the machine: the job fits the server's capacity, but the process
// could not give it that much now (no machine here has 4 TB free).
TEST_F(ServiceTest, AJobOverWhatIsFreeNowIsResourceExhausted) {
  StopServer();
  StartServer(TempDir(), 100, 1, /*max_job_memory=*/int64_t{1} << 50);
  v1::Job job;
  const grpc::Status s = Submit(Spec(kHugeDense), &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("not enough memory is free on this server now"));
  EXPECT_THAT(s.error_message(), HasSubstr("what this server could give a job now"));
  EXPECT_THAT(s.error_message(), HasSubstr("model.layers.1.dense: 4.0 TB of parameters"));
}

// Admission by the sum of the running jobs' estimates: with room for one Fashion-MNIST job, a
// second waits QUEUED while a small job passes it, and starts when the first is cancelled.
TEST_F(ServiceTest, AJobThatFitsAloneButNotNowWaitsQueued) {
  const int64_t one = EstimateOf(kLongSpec).total_bytes();
  const int64_t small = EstimateOf(kQuickSpec).total_bytes();
  ASSERT_GT(one, 10 * small);
  StopServer();
  StartServer(TempDir(), 100, /*concurrent=*/3, /*max_job_memory=*/one + one / 2);
  EXPECT_EQ(GaugeValue("cajal_job_memory_capacity_bytes"), static_cast<double>(one + one / 2));
  v1::Job first, second, quick;
  ASSERT_TRUE(Submit(Spec(kLongSpec), &first).ok());
  WaitFor(first.id(), [](const v1::Job& j) { return j.progress().step() > 0; });
  EXPECT_EQ(GaugeValue("cajal_job_memory_reserved_bytes"), static_cast<double>(one));
  ASSERT_TRUE(Submit(Spec(kLongSpec, {"training.seed=2"}), &second).ok());
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &quick).ok());
  WaitFor(quick.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
  v1::Job job;
  ASSERT_TRUE(Get(second.id(), &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED) << "two would not fit: it waits";
  ASSERT_TRUE(Cancel(first.id(), &job).ok());
  WaitFor(second.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });
  ASSERT_TRUE(Get(first.id(), &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED) << "the second started once the first ended";
  ASSERT_TRUE(Cancel(second.id(), &job).ok());
  WaitFor(second.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_CANCELLED; });
  EXPECT_EQ(GaugeValue("cajal_job_memory_reserved_bytes"), 0);
}

// Waiting jobs are estimated again when the server starts: one that no longer fits the memory
// for jobs (a smaller --max_job_memory) FAILS when its turn comes, the others run.
TEST_F(ServiceTest, AfterARestartAJobThatNoLongerFitsFailsWhenItsTurnComes) {
  v1::Job running, queued;
  ASSERT_TRUE(Submit(Spec(kLongSpec), &running).ok());
  WaitFor(running.id(), [](const v1::Job& j) { return j.progress().step() > 0; });
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &queued).ok());
  const int64_t quick = EstimateOf(kQuickSpec).total_bytes();
  ASSERT_LT(2 * quick, running.memory_estimate().total_bytes());
  const std::string dir = data_dir_;
  StopServer();
  StartServer(dir, 100, 1, /*max_job_memory=*/2 * quick);
  const v1::Job failed =
      WaitFor(running.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_FAILED; });
  EXPECT_THAT(failed.error(), HasSubstr("too large for this server: the job needs an estimated"));
  EXPECT_THAT(failed.error(), HasSubstr("(--max_job_memory)"));
  WaitFor(queued.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
}

// A job that passes admission but whose Prepare fails (the network's outputs do not match the
// classes) FAILS with the core's message; the worker is free for the next job.
TEST_F(ServiceTest, AJobWhosePrepareFailsFailsAndTheServerRunsTheNext) {
  v1::Job bad, next;
  ASSERT_TRUE(Submit(Spec(kQuickSpec, {"model.layers.2.dense.units=3"}), &bad).ok());
  ASSERT_TRUE(Submit(Spec(kQuickSpec), &next).ok());
  const v1::Job failed =
      WaitFor(bad.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_FAILED; });
  EXPECT_THAT(failed.error(), HasSubstr("model.layers.2 (dense): the network has 3 outputs"));
  WaitFor(next.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
}

TEST(ServerOptionsTest, GpusAndMemoryFlagsAreChecked) {
  ServerOptions o;
  o.gpus = VisibleGpuCount() + 1;
  absl::Status s = ValidateServerOptions(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--gpus: must be in [0, "));
  o.gpus = -2;
  EXPECT_EQ(ValidateServerOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o.gpus = -1;
  o.max_job_memory = -5;
  s = ValidateServerOptions(o);
  EXPECT_THAT(s.message(), HasSubstr("--max_job_memory: must be >= 0, got -5"));
  o.max_job_memory = 0;
  o.crash_loop_limit = -1;
  EXPECT_THAT(ValidateServerOptions(o).message(), HasSubstr("--crash_loop_limit"));
}

// CheckDevice without a GPU (the machines here have none): device gpu is refused with the
// reason; cpu and auto pass.
TEST(ServerOptionsTest, DeviceGpuWithoutGpusIsRefusedWithTheReason) {
  JobConfig config;
  config.device = DeviceChoice::kGpu;
  const absl::Status s = CheckDevice(config, /*gpus=*/0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("training.device: gpu, but this server"));
  config.device = DeviceChoice::kAuto;
  EXPECT_TRUE(CheckDevice(config, 0).ok());
  config.device = DeviceChoice::kCpu;
  EXPECT_TRUE(CheckDevice(config, 0).ok());
}

// DownloadModel prepares its files (here: exports ONNX) on the artifact executor, not in the
// gRPC reaction: while that executor is held up, the download waits (and GetJob is served);
// once it runs, the export happens.
TEST(DownloadOffTheReactionTest, OnnxExportRunsOnTheArtifactExecutor) {
  const std::string dir = TempDir();
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir + "/cajal.db");
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::unique_ptr<DatasetStore>> datasets =
      DatasetStore::Open(dir + "/datasets", DatasetLimits{});
  ASSERT_TRUE(datasets.ok()) << datasets.status();
  absl::StatusOr<std::unique_ptr<DataRoots>> roots = DataRoots::Create({dir});
  ASSERT_TRUE(roots.ok()) << roots.status();
  const JobData data(roots->get(), datasets->get());
  ManagerOptions mo;
  mo.data_dir = dir;
  mo.threads_per_job = 1;
  mo.data = &data;
  absl::StatusOr<std::unique_ptr<JobManager>> manager = JobManager::Create(mo, store->get());
  ASSERT_TRUE(manager.ok()) << manager.status();
  (*manager)->Start();
  v1::SubmitJobRequest submit;
  *submit.mutable_spec() = Spec(kQuickSpec);
  absl::StatusOr<v1::Job> job = (*manager)->Submit(submit);
  ASSERT_TRUE(job.ok()) << job.status();
  for (int i = 0; i < 6000 && (*manager)->Get(job->id())->state() != v1::JOB_STATE_SUCCEEDED; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ((*manager)->Get(job->id())->state(), v1::JOB_STATE_SUCCEEDED);

  Executor executor, artifacts;
  Authenticator auth;
  Executor dataset_executor;
  TrainingServiceImpl service(manager->get(), &executor, &artifacts, &auth,
                              /*max_watchers_per_job=*/8, datasets->get(), &dataset_executor);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = v1::TrainingService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  auto download = [&](int seconds, std::string* bytes) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    v1::DownloadModelRequest req;
    req.set_id(job->id());
    req.set_artifact(v1::ARTIFACT_ONNX);
    auto reader = stub->DownloadModel(&ctx, req);
    v1::ModelChunk chunk;
    while (reader->Read(&chunk)) *bytes += chunk.data();
    return reader->Finish();
  };
  const std::string onnx_path = dir + "/jobs/" + job->id() + "/model.onnx";

  absl::Notification release;
  artifacts.Post([&] { release.WaitForNotification(); });
  std::string bytes;
  EXPECT_EQ(download(1, &bytes).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(bytes.empty());
  EXPECT_FALSE(std::filesystem::exists(onnx_path)) << "not exported in the reaction";
  {
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_id(job->id());
    v1::Job got;
    EXPECT_TRUE(stub->GetJob(&ctx, req, &got).ok()) << "reactions are free meanwhile";
  }
  release.Notify();
  bytes.clear();
  const grpc::Status s = download(60, &bytes);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(std::filesystem::exists(onnx_path));
  onnx::ModelProto proto;
  EXPECT_TRUE(proto.ParseFromString(bytes));
  server->Shutdown();
  (*manager)->Shutdown();
}

}  // namespace
}  // namespace cajal
