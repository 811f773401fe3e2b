// Every metric cajald exports, declared in one place (metrics.cc) with its help text, base
// unit and buckets; and the HTTP endpoint that serves them (with /healthz and /readyz).
//
//   Metrics& m = ServerMetrics();              // the process's metrics (what /metrics shows)
//   m.JobSubmitted();
//   m.JobStateChanged(v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED);
//   {
//     TrainingMeter meter(&m);                 // one per running job
//     meter.Step(/*seconds=*/0.004, /*samples=*/64);
//   }                                          // its throughput leaves the gauge here
//
//   ASSIGN_OR_RETURN(auto endpoint, MetricsEndpoint::Start("127.0.0.1", /*port=*/0, &m));
//   endpoint->port();  endpoint->SetReady(true);
//
// Names carry base units (seconds, bytes) and `_total` on counters; labels are bounded
// (job state, gRPC method and code, admission decision, GPU index, build version): never a
// job id. docs/observability.md
// lists every metric and the PromQL that reads it.
//
// Thread-safe: every method may be called from any thread (prometheus-cpp metrics are
// atomic; the throughput map has its own mutex).
#ifndef CAJAL_SERVICE_SERVER_METRICS_H_
#define CAJAL_SERVICE_SERVER_METRICS_H_

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cajal/v1/training_service.pb.h"
#include "core/backend/registry.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace cajal {

// Bucket upper bounds, in seconds (documented in metrics.cc and docs/observability.md).
const std::vector<double>& StepDurationBuckets();
const std::vector<double>& CheckpointDurationBuckets();
const std::vector<double>& StoreWriteDurationBuckets();
const std::vector<double>& RpcDurationBuckets();

// What SubmitJob decided about a job's resources (the `decision` label).
enum class AdmissionDecision {
  kAccepted,  // stored and queued
  kTooLarge,  // INVALID_ARGUMENT: over the memory for jobs (or a GPU's): it could never run here
  kNotNow,    // RESOURCE_EXHAUSTED: over what the server could give it now
};

// The lower-case state name used as the `state` label: "queued", "running", ...
std::string JobStateLabel(v1::JobState state);
// "OK", "NOT_FOUND", ... as gRPC's documentation spells the codes.
std::string GrpcCodeLabel(grpc::StatusCode code);

class Metrics {
 public:
  // `backend`: the compute backend's name for cajal_build_info.
  explicit Metrics(const std::string& backend = "onednn-cpu");

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Jobs.
  void JobSubmitted();
  // A transition the manager made: counts terminal outcomes (`from` is informational).
  void JobStateChanged(v1::JobState from, v1::JobState to);
  // The manager's exact counts (recomputed under its lock, so the gauges never drift).
  void SetJobCounts(const std::map<v1::JobState, int64_t>& by_state, int64_t queue_depth);

  // Resources.
  void AdmissionDecided(AdmissionDecision decision);
  // The memory for jobs (--max_job_memory), what the running jobs' estimates reserve of it,
  // and the jobs running on each GPU (one entry per GPU the server uses).
  void SetJobResources(int64_t capacity_bytes, int64_t reserved_bytes,
                       const std::vector<int>& jobs_per_gpu);
  // Where the per-GPU memory gauges come from; read at every scrape (RefreshGpus).
  void SetGpuInfoSource(int gpus, std::function<absl::StatusOr<GpuInfo>(int)> info);
  // Reads the source for every GPU into cajal_gpu_memory_{total,used}_bytes; a GPU whose read
  // fails keeps its last values.
  void RefreshGpus();

  // Training. `samples` are the examples of one step.
  void StepDone(double seconds, int64_t samples);
  // Checkpoints: one call per attempt.
  void CheckpointWritten(double seconds, bool ok);

  // Store: one committed (or rolled back) write transaction.
  void StoreWrite(double seconds);

  // RPCs. `method` is "cajal.v1.TrainingService/SubmitJob" or "other"; `seconds` < 0 counts
  // the call without observing its duration (long-lived watch streams).
  void RpcDone(const std::string& method, grpc::StatusCode code, double seconds);

  // For TrainingMeter.
  void SetThroughput(const void* meter, double samples_per_second);
  void RemoveThroughput(const void* meter);

 private:
  // The constructor's parts: each declares a group of metrics on `r`.
  void DeclareJobs(prometheus::Registry& r);
  void DeclareTraining(prometheus::Registry& r);
  void DeclareResources(prometheus::Registry& r);
  void DeclareStorageAndRpcs(prometheus::Registry& r);

  std::shared_ptr<prometheus::Registry> registry_;

  prometheus::Counter* jobs_submitted_;
  prometheus::Counter* jobs_succeeded_;
  prometheus::Counter* jobs_failed_;
  prometheus::Counter* jobs_cancelled_;
  prometheus::Family<prometheus::Gauge>* jobs_;
  prometheus::Gauge* queue_depth_;

  prometheus::Counter* steps_;
  prometheus::Counter* samples_;
  prometheus::Histogram* step_duration_;
  prometheus::Gauge* throughput_;

  prometheus::Family<prometheus::Counter>* admission_decisions_;
  prometheus::Gauge* job_memory_capacity_;
  prometheus::Gauge* job_memory_reserved_;
  prometheus::Family<prometheus::Gauge>* gpu_jobs_;
  prometheus::Family<prometheus::Gauge>* gpu_memory_total_;
  prometheus::Family<prometheus::Gauge>* gpu_memory_used_;

  prometheus::Histogram* checkpoint_duration_;
  prometheus::Counter* checkpoint_failures_;
  prometheus::Histogram* store_write_duration_;

  prometheus::Family<prometheus::Counter>* rpc_requests_;
  prometheus::Family<prometheus::Histogram>* rpc_duration_;

  absl::Mutex throughput_mu_;
  std::map<const void*, double> throughput_by_meter_ ABSL_GUARDED_BY(throughput_mu_);

  absl::Mutex gpu_mu_;
  int gpus_ ABSL_GUARDED_BY(gpu_mu_) = 0;
  std::function<absl::StatusOr<GpuInfo>(int)> gpu_info_ ABSL_GUARDED_BY(gpu_mu_);
};

// The process's metrics: what cajald's /metrics serves. Created on first use.
Metrics& ServerMetrics();

// Times one running job's steps and keeps its share of the throughput gauge. Its
// contribution leaves the gauge when it is destroyed, however the job ends. Not thread-safe:
// one per job thread.
class TrainingMeter {
 public:
  explicit TrainingMeter(Metrics* metrics) : metrics_(metrics) {}
  ~TrainingMeter() { metrics_->RemoveThroughput(this); }
  TrainingMeter(const TrainingMeter&) = delete;
  TrainingMeter& operator=(const TrainingMeter&) = delete;

  // One finished step. The gauge shows an exponential moving average over recent steps
  // (samples and seconds averaged separately, so it is a true rate).
  void Step(double seconds, int64_t samples);

 private:
  Metrics* metrics_;
  double avg_seconds_ = 0;
  double avg_samples_ = 0;
  bool first_ = true;
};

// Counts every gRPC call by method and code and times it (builder.experimental()
// .SetInterceptorCreators). Methods outside the services cajald registers are labelled
// "other", so a client cannot create label values.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewRpcMetricsInterceptorFactory(Metrics* metrics);

// The HTTP endpoint: prometheus-cpp's pull Exposer (civetweb) serving /metrics, plus
// /healthz (200 while the process serves HTTP) and /readyz (200 when SetReady(true), else
// 503) registered on the same civetweb server.
class MetricsEndpoint {
 public:
  // `port` 0 picks a free one. kUnavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& host, int port,
                                                                Metrics* metrics);
  ~MetricsEndpoint();

  int port() const { return port_; }
  void SetReady(bool ready) { ready_.store(ready); }
  bool ready() const { return ready_.load(); }

 private:
  MetricsEndpoint() = default;
  std::atomic<bool> ready_{false};
  int port_ = 0;
  std::shared_ptr<prometheus::Collectable> scrape_;  // what /metrics collects (the Exposer
                                                     // holds it weakly)
  // Destroyed first: stops civetweb's threads before anything its handlers read goes away.
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_METRICS_H_
