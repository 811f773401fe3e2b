// The metrics module (values after simulated job, step, checkpoint, store and RPC events; the
// HTTP endpoint's /metrics, /healthz and /readyz) and the log line formats (JSON lines parse,
// carry their fields and escape what they must; text stays on one line).
#include "service/server/metrics.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "service/server/logging.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// ---- Reading a registry --------------------------------------------------------------------

const prometheus::ClientMetric* Find(const std::vector<prometheus::MetricFamily>& families,
                                     const std::string& name,
                                     const std::map<std::string, std::string>& labels = {}) {
  for (const auto& f : families) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : m.label) have[l.name] = l.value;
      if (have == labels) return &m;
    }
  }
  return nullptr;
}

double Counter(const Metrics& m, const std::string& name,
               const std::map<std::string, std::string>& labels = {}) {
  const auto families = m.registry()->Collect();
  const prometheus::ClientMetric* metric = Find(families, name, labels);
  return metric == nullptr ? -1 : metric->counter.value;
}

double Gauge(const Metrics& m, const std::string& name,
             const std::map<std::string, std::string>& labels = {}) {
  const auto families = m.registry()->Collect();
  const prometheus::ClientMetric* metric = Find(families, name, labels);
  return metric == nullptr ? -1 : metric->gauge.value;
}

prometheus::ClientMetric::Histogram Histogram(
    const Metrics& m, const std::string& name,
    const std::map<std::string, std::string>& labels = {}) {
  const auto families = m.registry()->Collect();
  const prometheus::ClientMetric* metric = Find(families, name, labels);
  return metric == nullptr ? prometheus::ClientMetric::Histogram{} : metric->histogram;
}

std::string Exposition(const Metrics& m) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, m.registry()->Collect());
  return out.str();
}

// ---- Metrics -------------------------------------------------------------------------------

TEST(MetricsTest, JobCountersCountOutcomes) {
  Metrics m;
  m.JobSubmitted();
  m.JobSubmitted();
  m.JobSubmitted();
  m.JobStateChanged(v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING);
  m.JobStateChanged(v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED);
  m.JobStateChanged(v1::JOB_STATE_RUNNING, v1::JOB_STATE_FAILED);
  m.JobStateChanged(v1::JOB_STATE_RUNNING, v1::JOB_STATE_CANCELLING);
  m.JobStateChanged(v1::JOB_STATE_CANCELLING, v1::JOB_STATE_CANCELLED);
  m.JobStateChanged(v1::JOB_STATE_QUEUED, v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(Counter(m, "cajal_jobs_submitted_total"), 3);
  EXPECT_EQ(Counter(m, "cajal_jobs_succeeded_total"), 1);
  EXPECT_EQ(Counter(m, "cajal_jobs_failed_total"), 1);
  EXPECT_EQ(Counter(m, "cajal_jobs_cancelled_total"), 2);
}

TEST(MetricsTest, JobGaugesShowEveryStateAndReturnToZero) {
  Metrics m;
  // Every state is exported from the start, so `cajal_jobs{state="running"} > 0` has a series.
  for (const char* s : {"queued", "running", "cancelling", "succeeded", "failed", "cancelled"}) {
    EXPECT_EQ(Gauge(m, "cajal_jobs", {{"state", s}}), 0) << s;
  }
  m.SetJobCounts({{v1::JOB_STATE_QUEUED, 2}, {v1::JOB_STATE_RUNNING, 1}}, /*queue_depth=*/2);
  EXPECT_EQ(Gauge(m, "cajal_jobs", {{"state", "queued"}}), 2);
  EXPECT_EQ(Gauge(m, "cajal_jobs", {{"state", "running"}}), 1);
  EXPECT_EQ(Gauge(m, "cajal_queue_depth"), 2);
  m.SetJobCounts({{v1::JOB_STATE_SUCCEEDED, 3}}, /*queue_depth=*/0);
  EXPECT_EQ(Gauge(m, "cajal_jobs", {{"state", "queued"}}), 0);
  EXPECT_EQ(Gauge(m, "cajal_jobs", {{"state", "running"}}), 0);
  EXPECT_EQ(Gauge(m, "cajal_jobs", {{"state", "succeeded"}}), 3);
  EXPECT_EQ(Gauge(m, "cajal_queue_depth"), 0);
}

TEST(MetricsTest, StepsFillCountersHistogramAndThroughputWhichLeavesWithTheMeter) {
  Metrics m;
  {
    TrainingMeter a(&m);
    TrainingMeter b(&m);
    a.Step(/*seconds=*/0.002, /*samples=*/64);  // 32000/s
    b.Step(/*seconds=*/0.5, /*samples=*/100);   // 200/s
    EXPECT_DOUBLE_EQ(Gauge(m, "cajal_training_throughput_samples_per_second"), 32200);
    a.Step(/*seconds=*/0.002, /*samples=*/64);
    EXPECT_DOUBLE_EQ(Gauge(m, "cajal_training_throughput_samples_per_second"), 32200);
  }
  EXPECT_EQ(Gauge(m, "cajal_training_throughput_samples_per_second"), 0);
  EXPECT_EQ(Counter(m, "cajal_steps_total"), 3);
  EXPECT_EQ(Counter(m, "cajal_samples_total"), 228);
  const auto h = Histogram(m, "cajal_step_duration_seconds");
  EXPECT_EQ(h.sample_count, 3u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 0.504);
  // 0.002 s falls in the 0.0025 bucket, 0.5 s in the 0.5 bucket (le is inclusive).
  std::map<double, uint64_t> cumulative;
  for (const auto& b : h.bucket) cumulative[b.upper_bound] = b.cumulative_count;
  EXPECT_EQ(cumulative[0.001], 0u);
  EXPECT_EQ(cumulative[0.0025], 2u);
  EXPECT_EQ(cumulative[0.25], 2u);
  EXPECT_EQ(cumulative[0.5], 3u);
}

TEST(MetricsTest, ThroughputIsAMovingAverageRate) {
  Metrics m;
  TrainingMeter meter(&m);
  meter.Step(/*seconds=*/1.0, /*samples=*/100);
  meter.Step(/*seconds=*/0.0, /*samples=*/0);  // averages: 0.9 s, 90 samples → still 100/s
  EXPECT_DOUBLE_EQ(Gauge(m, "cajal_training_throughput_samples_per_second"), 100);
  meter.Step(/*seconds=*/0.1, /*samples=*/100);  // 0.82 s, 91 samples
  EXPECT_NEAR(Gauge(m, "cajal_training_throughput_samples_per_second"), 91 / 0.82, 1e-9);
}

TEST(MetricsTest, CheckpointsAndStoreWrites) {
  Metrics m;
  m.CheckpointWritten(/*seconds=*/0.03, /*ok=*/true);
  m.CheckpointWritten(/*seconds=*/0.2, /*ok=*/false);
  m.StoreWrite(/*seconds=*/0.004);
  EXPECT_EQ(Histogram(m, "cajal_checkpoint_duration_seconds").sample_count, 2u);
  EXPECT_EQ(Counter(m, "cajal_checkpoint_failures_total"), 1);
  const auto store = Histogram(m, "cajal_store_write_duration_seconds");
  EXPECT_EQ(store.sample_count, 1u);
  EXPECT_DOUBLE_EQ(store.sample_sum, 0.004);
}

TEST(MetricsTest, RpcsByMethodAndCode) {
  Metrics m;
  const std::string submit = "cajal.v1.TrainingService/SubmitJob";
  m.RpcDone(submit, grpc::StatusCode::OK, 0.001);
  m.RpcDone(submit, grpc::StatusCode::OK, 0.002);
  m.RpcDone(submit, grpc::StatusCode::INVALID_ARGUMENT, 0.0001);
  m.RpcDone("cajal.v1.TrainingService/WatchJob", grpc::StatusCode::OK, /*seconds=*/-1);
  EXPECT_EQ(Counter(m, "cajal_rpc_requests_total", {{"method", submit}, {"code", "OK"}}), 2);
  EXPECT_EQ(
      Counter(m, "cajal_rpc_requests_total", {{"method", submit}, {"code", "INVALID_ARGUMENT"}}),
      1);
  EXPECT_EQ(Counter(m, "cajal_rpc_requests_total",
                    {{"method", "cajal.v1.TrainingService/WatchJob"}, {"code", "OK"}}),
            1);
  EXPECT_EQ(Histogram(m, "cajal_rpc_duration_seconds", {{"method", submit}}).sample_count, 3u);
  // A watch stream is counted but not timed.
  EXPECT_EQ(Find(m.registry()->Collect(), "cajal_rpc_duration_seconds",
                 {{"method", "cajal.v1.TrainingService/WatchJob"}}),
            nullptr);
}

TEST(MetricsTest, BuildInfoStartTimeAndNamingRules) {
  Metrics m(/*backend=*/"onednn-cpu");
  const auto families = m.registry()->Collect();
  const prometheus::ClientMetric* info = nullptr;
  for (const auto& f : families) {
    if (f.name == "cajal_build_info") info = &f.metric.at(0);
  }
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->gauge.value, 1);
  std::map<std::string, std::string> labels;
  for (const auto& l : info->label) labels[l.name] = l.value;
  EXPECT_EQ(labels["backend"], "onednn-cpu");
  EXPECT_FALSE(labels["version"].empty());
  const double start = Gauge(m, "process_start_time_seconds");
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_GT(start, now - 3600);  // this test process started within the hour
  EXPECT_LE(start, now + 1);

  for (const auto& f : families) {
    EXPECT_FALSE(f.help.empty()) << f.name;
    if (f.type == prometheus::MetricType::Counter) {
      EXPECT_THAT(f.name, ::testing::EndsWith("_total"));
    }
    if (f.type == prometheus::MetricType::Histogram) {
      EXPECT_THAT(f.name, ::testing::EndsWith("_seconds"));
    }
  }
  EXPECT_THAT(Exposition(m), Not(HasSubstr("job_id")));
}

TEST(MetricsTest, AdmissionDecisionsAndJobResources) {
  Metrics m;
  for (const char* d : {"accepted", "too_large", "not_now"}) {
    EXPECT_EQ(Counter(m, "cajal_admission_decisions_total", {{"decision", d}}), 0)
        << d << " is exported before the first decision";
  }
  m.AdmissionDecided(AdmissionDecision::kAccepted);
  m.AdmissionDecided(AdmissionDecision::kAccepted);
  m.AdmissionDecided(AdmissionDecision::kTooLarge);
  m.AdmissionDecided(AdmissionDecision::kNotNow);
  EXPECT_EQ(Counter(m, "cajal_admission_decisions_total", {{"decision", "accepted"}}), 2);
  EXPECT_EQ(Counter(m, "cajal_admission_decisions_total", {{"decision", "too_large"}}), 1);
  EXPECT_EQ(Counter(m, "cajal_admission_decisions_total", {{"decision", "not_now"}}), 1);

  m.SetJobResources(/*capacity_bytes=*/8'000'000'000, /*reserved_bytes=*/3'000'000'000,
                    /*jobs_per_gpu=*/{1, 0});
  EXPECT_EQ(Gauge(m, "cajal_job_memory_capacity_bytes"), 8e9);
  EXPECT_EQ(Gauge(m, "cajal_job_memory_reserved_bytes"), 3e9);
  EXPECT_EQ(Gauge(m, "cajal_gpu_jobs", {{"gpu", "0"}}), 1);
  EXPECT_EQ(Gauge(m, "cajal_gpu_jobs", {{"gpu", "1"}}), 0);
  m.SetJobResources(8'000'000'000, 0, {0, 0});
  EXPECT_EQ(Gauge(m, "cajal_job_memory_reserved_bytes"), 0);
  EXPECT_EQ(Gauge(m, "cajal_gpu_jobs", {{"gpu", "0"}}), 0);
}

// Per-GPU memory comes from the GPU source (GetGpuInfo in cajald), read at every refresh; a
// GPU whose read fails gets no series. Without GPUs there are none at all.
TEST(MetricsTest, GpuMemoryIsReadFromTheSource) {
  Metrics m;
  m.RefreshGpus();
  EXPECT_THAT(Exposition(m), Not(HasSubstr("cajal_gpu_memory_used_bytes{")));
  int64_t free_bytes = 70;
  m.SetGpuInfoSource(2, [&](int gpu) -> absl::StatusOr<GpuInfo> {
    if (gpu == 1) return absl::InternalError("cudaMemGetInfo failed");
    return GpuInfo{"Test GPU", 100, free_bytes};
  });
  m.RefreshGpus();
  EXPECT_EQ(Gauge(m, "cajal_gpu_memory_total_bytes", {{"gpu", "0"}}), 100);
  EXPECT_EQ(Gauge(m, "cajal_gpu_memory_used_bytes", {{"gpu", "0"}}), 30);
  EXPECT_EQ(Gauge(m, "cajal_gpu_memory_used_bytes", {{"gpu", "1"}}), -1) << "no series";
  free_bytes = 20;
  m.RefreshGpus();
  EXPECT_EQ(Gauge(m, "cajal_gpu_memory_used_bytes", {{"gpu", "0"}}), 80);
}

TEST(MetricsTest, BucketsIncreaseStrictly) {
  for (const auto* buckets : {&StepDurationBuckets(), &CheckpointDurationBuckets(),
                              &StoreWriteDurationBuckets(), &RpcDurationBuckets()}) {
    ASSERT_FALSE(buckets->empty());
    for (size_t i = 1; i < buckets->size(); ++i) EXPECT_LT((*buckets)[i - 1], (*buckets)[i]);
  }
}

TEST(MetricsTest, Labels) {
  EXPECT_EQ(JobStateLabel(v1::JOB_STATE_CANCELLING), "cancelling");
  EXPECT_EQ(JobStateLabel(v1::JOB_STATE_SUCCEEDED), "succeeded");
  EXPECT_EQ(GrpcCodeLabel(grpc::StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(GrpcCodeLabel(static_cast<grpc::StatusCode>(99)), "UNKNOWN");
}

// ---- The HTTP endpoint ---------------------------------------------------------------------

struct HttpResponse {
  int status = 0;
  std::string body;
};

// A minimal HTTP/1.0 GET on loopback (the test's client, not the server under test).
std::optional<HttpResponse> Get(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return std::nullopt;
  }
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: localhost\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return std::nullopt;
  }
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  HttpResponse r;
  if (std::sscanf(raw.c_str(), "HTTP/1.%*d %d", &r.status) != 1) return std::nullopt;
  const size_t body = raw.find("\r\n\r\n");
  if (body != std::string::npos) r.body = raw.substr(body + 4);
  return r;
}

TEST(MetricsEndpointTest, ServesMetricsHealthAndReadiness) {
  Metrics m;
  m.JobSubmitted();
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start("127.0.0.1", /*port=*/0, &m);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();
  ASSERT_GT(port, 0);

  std::optional<HttpResponse> metrics = Get(port, "/metrics");
  ASSERT_TRUE(metrics.has_value());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->body, HasSubstr("\ncajal_jobs_submitted_total 1"));
  EXPECT_THAT(metrics->body, HasSubstr("# HELP cajal_step_duration_seconds "));

  std::optional<HttpResponse> health = Get(port, "/healthz");
  ASSERT_TRUE(health.has_value());
  EXPECT_EQ(health->status, 200);

  std::optional<HttpResponse> ready = Get(port, "/readyz");
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->status, 503);  // not ready until the server says so
  (*endpoint)->SetReady(true);
  EXPECT_EQ(Get(port, "/readyz")->status, 200);
  (*endpoint)->SetReady(false);  // shutting down
  EXPECT_EQ(Get(port, "/readyz")->status, 503);
  EXPECT_EQ(Get(port, "/healthz")->status, 200);
}

// /metrics reads the GPU source at every scrape.
TEST(MetricsEndpointTest, GpuMemoryIsReadAtEveryScrape) {
  Metrics m;
  int64_t free_bytes = 900;
  m.SetGpuInfoSource(1, [&](int) -> absl::StatusOr<GpuInfo> {
    return GpuInfo{"Test GPU", 1000, free_bytes};
  });
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start("127.0.0.1", /*port=*/0, &m);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  std::optional<HttpResponse> first = Get((*endpoint)->port(), "/metrics");
  ASSERT_TRUE(first.has_value());
  EXPECT_THAT(first->body, HasSubstr("cajal_gpu_memory_used_bytes{gpu=\"0\"} 100"));
  free_bytes = 400;
  std::optional<HttpResponse> second = Get((*endpoint)->port(), "/metrics");
  ASSERT_TRUE(second.has_value());
  EXPECT_THAT(second->body, HasSubstr("cajal_gpu_memory_used_bytes{gpu=\"0\"} 600"));
}

TEST(MetricsEndpointTest, PortInUseIsUnavailable) {
  Metrics m;
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> first =
      MetricsEndpoint::Start("127.0.0.1", /*port=*/0, &m);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> second =
      MetricsEndpoint::Start("127.0.0.1", (*first)->port(), &m);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("--metrics_port"));
}

// ---- Logs ----------------------------------------------------------------------------------

google::protobuf::Struct ParseJson(const std::string& line) {
  google::protobuf::Struct object;
  const auto status = google::protobuf::util::JsonStringToMessage(line, &object);
  EXPECT_TRUE(status.ok()) << status << " in " << line;
  return object;
}

std::string Field(const google::protobuf::Struct& o, const std::string& key) {
  auto it = o.fields().find(key);
  return it == o.fields().end() ? "<absent>" : it->second.string_value();
}

const absl::Time kTime =
    absl::FromCivil(absl::CivilSecond(2024, 5, 1, 12, 0, 3), absl::UTCTimeZone()) +
    absl::Milliseconds(45);

TEST(LogTest, JsonLineHasTimeLevelMessageAndFields) {
  const std::string line =
      FormatLogLine(LogFormat::kJson, kTime, LogLevel::kInfo, "job state changed",
                    {{"job_id", "0123456789abcdef0123456789abcdef"}, {"state", "running"}});
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const google::protobuf::Struct o = ParseJson(line);
  EXPECT_EQ(Field(o, "time"), "2024-05-01T12:00:03.045Z");
  EXPECT_EQ(Field(o, "level"), "info");
  EXPECT_EQ(Field(o, "message"), "job state changed");
  EXPECT_EQ(Field(o, "job_id"), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(Field(o, "state"), "running");
}

TEST(LogTest, JsonEscapesQuotesNewlinesControlAndInvalidUtf8) {
  const std::string nasty = "a \"quoted\" \\path\\\nline2\ttab\x01 caf\xc3\xa9 bad\xff end";
  const std::string line =
      FormatLogLine(LogFormat::kJson, kTime, LogLevel::kError, nasty, {{"error", nasty}});
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;  // one line
  const google::protobuf::Struct o = ParseJson(line);
  const std::string expected =
      "a \"quoted\" \\path\\\nline2\ttab\x01 caf\xc3\xa9 bad\xef\xbf\xbd end";  // U+FFFD
  EXPECT_EQ(Field(o, "message"), expected);
  EXPECT_EQ(Field(o, "error"), expected);
  EXPECT_EQ(Field(o, "level"), "error");
}

TEST(LogTest, TextLineKeepsThePrefixAndStaysOnOneLine) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, kTime, LogLevel::kInfo,
                          "serving cajal.v1.TrainingService on 127.0.0.1:5, data in d", {}),
            "cajald: serving cajal.v1.TrainingService on 127.0.0.1:5, data in d\n");
  EXPECT_EQ(FormatLogLine(LogFormat::kText, kTime, LogLevel::kError, "job state changed",
                          {{"job_id", "abc"}, {"error", "two\nlines \"here\""}}),
            "cajald: error: job state changed job_id=abc error=\"two\\nlines \\\"here\\\"\"\n");
}

TEST(LogTest, ParseLogFormat) {
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  absl::StatusOr<LogFormat> bad = ParseLogFormat("xml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("--log_format"));
}

// Log() itself: many threads, every line on stderr is one whole JSON object.
TEST(LogTest, ConcurrentLinesOnStderrEachParse) {
  char path[] = "/tmp/cajal_log_test_XXXXXX";
  const int file = mkstemp(path);
  ASSERT_GE(file, 0);
  const int saved = dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  dup2(file, STDERR_FILENO);
  SetLogFormat(LogFormat::kJson);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 50; ++i) {
        const std::string id = absl::StrCat("job", t, "-", i);
        Log(LogLevel::kInfo, "job state changed \"x\"", {{"job_id", id}, {"state", "running"}});
      }
    });
  }
  for (auto& th : threads) th.join();
  SetLogFormat(LogFormat::kText);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string text;
  char buf[4096];
  ssize_t n;
  lseek(file, 0, SEEK_SET);
  while ((n = read(file, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  close(file);
  unlink(path);
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 200u);
  std::set<std::string> ids;
  for (const std::string& line : lines) {
    const google::protobuf::Struct o = ParseJson(line);
    EXPECT_EQ(Field(o, "message"), "job state changed \"x\"");
    EXPECT_EQ(Field(o, "level"), "info");
    EXPECT_NE(Field(o, "time"), "<absent>");
    ids.insert(Field(o, "job_id"));
  }
  EXPECT_EQ(ids.size(), 200u);
}

}  // namespace
}  // namespace cajal
