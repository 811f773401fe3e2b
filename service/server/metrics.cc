#include "service/server/metrics.h"

#include <CivetServer.h>  // CivetCallbacks: the Exposer takes civetweb's callbacks
#include <civetweb.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "service/server/logging.h"

#ifndef CAJAL_VERSION
#define CAJAL_VERSION "unknown"
#endif

namespace cajal {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

constexpr v1::JobState kStates[] = {v1::JOB_STATE_QUEUED,     v1::JOB_STATE_RUNNING,
                                    v1::JOB_STATE_CANCELLING, v1::JOB_STATE_SUCCEEDED,
                                    v1::JOB_STATE_FAILED,     v1::JOB_STATE_CANCELLED};

// Weight of the newest step in TrainingMeter's moving averages: about the last 10 steps count.
constexpr double kThroughputSmoothing = 0.1;

// When this process started, from /proc (the kernel's record, not the time metrics were first
// touched); now if /proc cannot be read.
double ProcessStartTimeSeconds() {
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // Field 2 (comm) may hold spaces: fields are counted from the last ')'.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return now;
  std::istringstream rest(stat.substr(paren + 2));
  std::string field;
  double start_ticks = -1;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 22) start_ticks = std::stod(field);
  }
  std::ifstream proc_stat("/proc/stat");
  std::string key;
  double boot_time = -1;
  while (proc_stat >> key) {
    if (key == "btime") {
      proc_stat >> boot_time;
      break;
    }
  }
  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  if (start_ticks < 0 || boot_time < 0 || ticks_per_second <= 0) return now;
  return boot_time + start_ticks / static_cast<double>(ticks_per_second);
}

}  // namespace

// ---- Buckets -------------------------------------------------------------------------------
// All use the 1-2.5-5 series, so adjacent buckets differ by 2-2.5x and quantile estimates err
// by at most that factor inside the range.

// A step is one batch forward + backward + update: ~100 µs for a small MLP batch, ~1 s for
// an AlexNet batch on CPU. 100 µs .. 10 s.
const std::vector<double>& StepDurationBuckets() {
  static const auto* b =
      new std::vector<double>{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                              0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return *b;
}

// A checkpoint serializes parameters + optimizer state and fsyncs: ~1 ms for kilobytes,
// seconds for AlexNet's ~700 MB with Adam. 1 ms .. 60 s.
const std::vector<double>& CheckpointDurationBuckets() {
  static const auto* b = new std::vector<double>{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,      2.5,   5,    10,    30,   60};
  return *b;
}

// A SQLite transaction with synchronous=FULL is bounded below by one fsync (~100 µs on NVMe,
// ~10 ms on network disks) and above by busy_timeout (5 s). 100 µs .. 5 s.
const std::vector<double>& StoreWriteDurationBuckets() {
  static const auto* b = new std::vector<double>{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  return *b;
}

// Unary calls on loopback take ~100 µs; SubmitJob adds a
// durable write; DownloadModel streams a model. 100 µs .. 30 s.
const std::vector<double>& RpcDurationBuckets() {
  static const auto* b =
      new std::vector<double>{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                              0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
  return *b;
}

std::string JobStateLabel(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  constexpr std::string_view kPrefix = "JOB_STATE_";
  if (name.rfind(kPrefix, 0) == 0) name = name.substr(kPrefix.size());
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

std::string GrpcCodeLabel(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";  // bounded even for a code gRPC adds later
  }
}

// ---- The metrics ---------------------------------------------------------------------------

Metrics::Metrics(const std::string& backend) : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& r = *registry_;

  // Process.
  BuildGauge()
      .Name("cajal_build_info")
      .Help("Always 1; the labels say which cajald build and compute backend are running")
      .Register(r)
      .Add({{"version", CAJAL_VERSION}, {"backend", backend}})
      .Set(1);
  BuildGauge()
      .Name("process_start_time_seconds")
      .Help("Start time of the process since the Unix epoch, in seconds")
      .Register(r)
      .Add({})
      .Set(ProcessStartTimeSeconds());

  DeclareJobs(r);
  DeclareTraining(r);
  DeclareResources(r);
  DeclareStorageAndRpcs(r);
}

// Jobs.
void Metrics::DeclareJobs(prometheus::Registry& r) {
  jobs_submitted_ = &BuildCounter()
                         .Name("cajal_jobs_submitted_total")
                         .Help("Jobs accepted by SubmitJob (idempotent retries not counted)")
                         .Register(r)
                         .Add({});
  jobs_succeeded_ = &BuildCounter()
                         .Name("cajal_jobs_succeeded_total")
                         .Help("Jobs that reached SUCCEEDED")
                         .Register(r)
                         .Add({});
  jobs_failed_ = &BuildCounter()
                      .Name("cajal_jobs_failed_total")
                      .Help("Jobs that reached FAILED")
                      .Register(r)
                      .Add({});
  jobs_cancelled_ = &BuildCounter()
                         .Name("cajal_jobs_cancelled_total")
                         .Help("Jobs that reached CANCELLED")
                         .Register(r)
                         .Add({});
  jobs_ = &BuildGauge()
               .Name("cajal_jobs")
               .Help("Jobs this server holds, by state (terminal ones until deleted)")
               .Register(r);
  for (v1::JobState s : kStates) jobs_->Add({{"state", JobStateLabel(s)}});
  queue_depth_ = &BuildGauge()
                      .Name("cajal_queue_depth")
                      .Help(
                          "Jobs waiting for a worker: queued ones and interrupted ones that "
                          "will resume")
                      .Register(r)
                      .Add({});
}

// Training.
void Metrics::DeclareTraining(prometheus::Registry& r) {
  steps_ = &BuildCounter()
                .Name("cajal_steps_total")
                .Help("Training steps (batches) completed, all jobs")
                .Register(r)
                .Add({});
  samples_ = &BuildCounter()
                  .Name("cajal_samples_total")
                  .Help("Training examples processed, all jobs")
                  .Register(r)
                  .Add({});
  step_duration_ = &BuildHistogram()
                        .Name("cajal_step_duration_seconds")
                        .Help("Time of one training step (forward, backward, update), seconds")
                        .Register(r)
                        .Add({}, StepDurationBuckets());
  throughput_ = &BuildGauge()
                     .Name("cajal_training_throughput_samples_per_second")
                     .Help(
                         "Current training throughput summed over running jobs, examples "
                         "per second (moving average over recent steps); 0 when idle")
                     .Register(r)
                     .Add({});
  // Loss and accuracy are not exported: they are per job, and a job id must not be a label;
  // summed or averaged across different models they mean nothing. GetJobMetrics, WatchJob and
  // the job's TensorBoard events carry them (docs/observability.md).
}

// Resources (docs/resources.md).
void Metrics::DeclareResources(prometheus::Registry& r) {
  admission_decisions_ = &BuildCounter()
                              .Name("cajal_admission_decisions_total")
                              .Help(
                                  "SubmitJob's resource decisions: accepted, too_large "
                                  "(INVALID_ARGUMENT: could never fit), not_now "
                                  "(RESOURCE_EXHAUSTED: cannot fit now)")
                              .Register(r);
  for (const char* d : {"accepted", "too_large", "not_now"}) {
    admission_decisions_->Add({{"decision", d}});
  }
  job_memory_capacity_ = &BuildGauge()
                              .Name("cajal_job_memory_capacity_bytes")
                              .Help(
                                  "Memory the server's jobs may use together (--max_job_memory, "
                                  "or the process's budget at start), bytes")
                              .Register(r)
                              .Add({});
  job_memory_reserved_ = &BuildGauge()
                              .Name("cajal_job_memory_reserved_bytes")
                              .Help("Memory estimates of the running jobs together, bytes")
                              .Register(r)
                              .Add({});
  gpu_jobs_ = &BuildGauge()
                   .Name("cajal_gpu_jobs")
                   .Help("Jobs running on each GPU the server uses (0 or 1)")
                   .Register(r);
  gpu_memory_total_ = &BuildGauge()
                           .Name("cajal_gpu_memory_total_bytes")
                           .Help("Memory of each GPU the server uses, bytes")
                           .Register(r);
  gpu_memory_used_ = &BuildGauge()
                          .Name("cajal_gpu_memory_used_bytes")
                          .Help(
                              "Memory in use on each GPU the server uses (by any process), "
                              "bytes, read at every scrape")
                          .Register(r);
}

// Checkpoints, the store and RPCs.
void Metrics::DeclareStorageAndRpcs(prometheus::Registry& r) {
  checkpoint_duration_ = &BuildHistogram()
                              .Name("cajal_checkpoint_duration_seconds")
                              .Help(
                                  "Time to write one checkpoint (serialize, write, fsync, "
                                  "rename), seconds")
                              .Register(r)
                              .Add({}, CheckpointDurationBuckets());
  checkpoint_failures_ = &BuildCounter()
                              .Name("cajal_checkpoint_failures_total")
                              .Help("Checkpoint writes that failed (the job then fails)")
                              .Register(r)
                              .Add({});
  store_write_duration_ = &BuildHistogram()
                               .Name("cajal_store_write_duration_seconds")
                               .Help(
                                   "Time of one SQLite write transaction (BEGIN to COMMIT "
                                   "or ROLLBACK), seconds")
                               .Register(r)
                               .Add({}, StoreWriteDurationBuckets());

  // RPCs.
  rpc_requests_ = &BuildCounter()
                       .Name("cajal_rpc_requests_total")
                       .Help("gRPC calls finished, by method and status code")
                       .Register(r);
  rpc_duration_ = &BuildHistogram()
                       .Name("cajal_rpc_duration_seconds")
                       .Help(
                           "gRPC call latency by method, seconds (watch streams excluded: "
                           "they last as long as a job)")
                       .Register(r);
}

void Metrics::JobSubmitted() { jobs_submitted_->Increment(); }

void Metrics::JobStateChanged(v1::JobState /*from*/, v1::JobState to) {
  switch (to) {
    case v1::JOB_STATE_SUCCEEDED:
      jobs_succeeded_->Increment();
      break;
    case v1::JOB_STATE_FAILED:
      jobs_failed_->Increment();
      break;
    case v1::JOB_STATE_CANCELLED:
      jobs_cancelled_->Increment();
      break;
    default:
      break;
  }
}

void Metrics::SetJobCounts(const std::map<v1::JobState, int64_t>& by_state, int64_t queue_depth) {
  for (v1::JobState s : kStates) {
    auto it = by_state.find(s);
    jobs_->Add({{"state", JobStateLabel(s)}})
        .Set(it == by_state.end() ? 0.0 : static_cast<double>(it->second));
  }
  queue_depth_->Set(static_cast<double>(queue_depth));
}

void Metrics::AdmissionDecided(AdmissionDecision decision) {
  const char* label = decision == AdmissionDecision::kAccepted   ? "accepted"
                      : decision == AdmissionDecision::kTooLarge ? "too_large"
                                                                 : "not_now";
  admission_decisions_->Add({{"decision", label}}).Increment();
}

void Metrics::SetJobResources(int64_t capacity_bytes, int64_t reserved_bytes,
                              const std::vector<int>& jobs_per_gpu) {
  job_memory_capacity_->Set(static_cast<double>(capacity_bytes));
  job_memory_reserved_->Set(static_cast<double>(reserved_bytes));
  for (size_t g = 0; g < jobs_per_gpu.size(); ++g) {
    gpu_jobs_->Add({{"gpu", std::to_string(g)}}).Set(jobs_per_gpu[g]);
  }
}

void Metrics::SetGpuInfoSource(int gpus, std::function<absl::StatusOr<GpuInfo>(int)> info) {
  absl::MutexLock lock(&gpu_mu_);
  gpus_ = gpus;
  gpu_info_ = std::move(info);
}

void Metrics::RefreshGpus() {
  absl::MutexLock lock(&gpu_mu_);
  for (int g = 0; g < gpus_ && gpu_info_; ++g) {
    absl::StatusOr<GpuInfo> info = gpu_info_(g);
    if (!info.ok()) continue;
    const prometheus::Labels labels = {{"gpu", std::to_string(g)}};
    gpu_memory_total_->Add(labels).Set(static_cast<double>(info->total_bytes));
    gpu_memory_used_->Add(labels).Set(static_cast<double>(info->total_bytes - info->free_bytes));
  }
}

void Metrics::StepDone(double seconds, int64_t samples) {
  steps_->Increment();
  samples_->Increment(static_cast<double>(std::max<int64_t>(samples, 0)));
  step_duration_->Observe(seconds);
}

void Metrics::CheckpointWritten(double seconds, bool ok) {
  checkpoint_duration_->Observe(seconds);
  if (!ok) checkpoint_failures_->Increment();
}

void Metrics::StoreWrite(double seconds) { store_write_duration_->Observe(seconds); }

void Metrics::RpcDone(const std::string& method, grpc::StatusCode code, double seconds) {
  rpc_requests_->Add({{"method", method}, {"code", GrpcCodeLabel(code)}}).Increment();
  if (seconds >= 0) rpc_duration_->Add({{"method", method}}, RpcDurationBuckets()).Observe(seconds);
}

void Metrics::SetThroughput(const void* meter, double samples_per_second) {
  absl::MutexLock lock(&throughput_mu_);
  throughput_by_meter_[meter] = samples_per_second;
  double sum = 0;
  for (const auto& [m, v] : throughput_by_meter_) sum += v;
  throughput_->Set(sum);
}

void Metrics::RemoveThroughput(const void* meter) {
  absl::MutexLock lock(&throughput_mu_);
  throughput_by_meter_.erase(meter);
  double sum = 0;  // summed afresh, so an idle server shows exactly 0
  for (const auto& [m, v] : throughput_by_meter_) sum += v;
  throughput_->Set(sum);
}

Metrics& ServerMetrics() {
  static Metrics* metrics = new Metrics();
  return *metrics;
}

void TrainingMeter::Step(double seconds, int64_t samples) {
  metrics_->StepDone(seconds, samples);
  if (first_) {
    avg_seconds_ = seconds;
    avg_samples_ = static_cast<double>(samples);
    first_ = false;
  } else {
    avg_seconds_ += kThroughputSmoothing * (seconds - avg_seconds_);
    avg_samples_ += kThroughputSmoothing * (static_cast<double>(samples) - avg_samples_);
  }
  if (avg_seconds_ > 0) metrics_->SetThroughput(this, avg_samples_ / avg_seconds_);
}

// ---- RPC interceptor -----------------------------------------------------------------------

namespace {

// The methods cajald serves; anything else is "other".
std::set<std::string> KnownMethods() {
  std::set<std::string> known = {"grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch",
                                 "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"};
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "cajal.v1.TrainingService");
  for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
    known.insert(absl::StrCat(service->full_name(), "/", service->method(i)->name()));
  }
  return known;
}

class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(Metrics* metrics, std::string method, bool timed)
      : metrics_(metrics), method_(std::move(method)), timed_(timed), start_(absl::Now()) {}

  // A call that ends without sending a status was cancelled by its client.
  ~RpcMetricsInterceptor() override {
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      Record(status.error_code());
      // Faults of the server are logged here, once; a client's mistakes (INVALID_ARGUMENT,
      // NOT_FOUND, ...) are only counted: the client got the message.
      const grpc::StatusCode code = status.error_code();
      if (code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::UNKNOWN ||
          code == grpc::StatusCode::DATA_LOSS) {
        Log(LogLevel::kError, "rpc failed",
            {{"method", method_},
             {"code", GrpcCodeLabel(code)},
             {"error", status.error_message()}});
      }
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    recorded_ = true;
    metrics_->RpcDone(method_, code, timed_ ? absl::ToDoubleSeconds(absl::Now() - start_) : -1.0);
  }

  Metrics* metrics_;
  std::string method_;
  bool timed_;
  absl::Time start_;
  bool recorded_ = false;
};

class RpcMetricsFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsFactory(Metrics* metrics) : metrics_(metrics), known_(KnownMethods()) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    std::string method = info->method() != nullptr ? info->method() : "";
    if (!method.empty() && method[0] == '/') method.erase(0, 1);
    if (known_.count(method) == 0) method = "other";
    // Watch streams live as long as the job (or the client): their length is not a latency.
    const bool timed = method.size() < 5 || method.compare(method.size() - 5, 5, "Watch") != 0;
    const bool watch_job = method == "cajal.v1.TrainingService/WatchJob";
    return new RpcMetricsInterceptor(metrics_, std::move(method), timed && !watch_job);
  }

 private:
  Metrics* metrics_;
  const std::set<std::string> known_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewRpcMetricsInterceptorFactory(Metrics* metrics) {
  return std::make_unique<RpcMetricsFactory>(metrics);
}

// ---- HTTP endpoint -------------------------------------------------------------------------

namespace {

// civetweb calls init_context on the thread that constructs the Exposer, before serving any
// request: that is how the context (which Exposer keeps private) reaches us to register the
// probe handlers on the same server and port.
thread_local mg_context* constructing_context = nullptr;

int Reply(mg_connection* conn, int status, const char* body) {
  if (status == 200) {
    mg_send_http_ok(conn, "text/plain; charset=utf-8", static_cast<long long>(std::strlen(body)));
    mg_write(conn, body, std::strlen(body));
  } else {
    mg_send_http_error(conn, status, "%s", body);
  }
  return status;
}

int HealthHandler(mg_connection* conn, void* /*endpoint*/) { return Reply(conn, 200, "ok\n"); }

// What /metrics collects: the registry, after the gauges read at scrape time are refreshed.
class Scrape : public prometheus::Collectable {
 public:
  explicit Scrape(Metrics* metrics) : metrics_(metrics) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    metrics_->RefreshGpus();
    return metrics_->registry()->Collect();
  }

 private:
  Metrics* metrics_;
};

int ReadyHandler(mg_connection* conn, void* endpoint) {
  const bool ready = static_cast<const MetricsEndpoint*>(endpoint)->ready();
  return ready ? Reply(conn, 200, "ready\n") : Reply(conn, 503, "not ready\n");
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(const std::string& host,
                                                                        int port,
                                                                        Metrics* metrics) {
  std::unique_ptr<MetricsEndpoint> e(new MetricsEndpoint());
  const std::string address = host.find(':') != std::string::npos
                                  ? absl::StrCat("[", host, "]:", port)
                                  : absl::StrCat(host, ":", port);
  CivetCallbacks callbacks;
  callbacks.init_context = [](const mg_context* ctx) {
    constructing_context = const_cast<mg_context*>(ctx);
  };
  constructing_context = nullptr;
  try {
    e->exposer_ = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", address, "num_threads", "2"}, &callbacks);
  } catch (const std::exception& ex) {
    return absl::UnavailableError(absl::StrCat("--metrics_port: cannot listen on ", address,
                                               " (is the port in use?): ", ex.what()));
  }
  mg_context* ctx = constructing_context;
  constructing_context = nullptr;
  if (ctx == nullptr) return absl::InternalError("civetweb did not report its context");
  mg_set_request_handler(ctx, "/healthz", HealthHandler, e.get());
  mg_set_request_handler(ctx, "/readyz", ReadyHandler, e.get());
  e->scrape_ = std::make_shared<Scrape>(metrics);
  e->exposer_->RegisterCollectable(e->scrape_);
  const std::vector<int> ports = e->exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  e->port_ = ports[0];
  return e;
}

MetricsEndpoint::~MetricsEndpoint() = default;

}  // namespace cajal
