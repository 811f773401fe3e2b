// cajald: the gRPC server, assembled from its options.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Server> server, Server::BuildAndStart(options));
//   ... server->port() ...
//   server->Shutdown(absl::Seconds(20));   // health NOT_SERVING, drain, stop jobs
#ifndef CAJAL_SERVICE_SERVER_SERVER_H_
#define CAJAL_SERVICE_SERVER_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/server/auth.h"
#include "service/server/data_roots.h"
#include "service/server/datasets.h"
#include "service/server/executor.h"
#include "service/server/job_data.h"
#include "service/server/job_manager.h"
#include "service/server/metrics.h"
#include "service/server/store.h"
#include "service/server/training_service.h"

namespace cajal {

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 50051;  // 0: pick a free port (tests)
  // HTTP /metrics, /healthz, /readyz. 0: pick a free port (tests); -1: none (embedders;
  // cajald's --metrics_port defaults to 9464).
  int metrics_port = -1;
  std::string data_dir = "cajal-data";
  int max_concurrent_jobs = 1;
  int max_queued_jobs = 100;
  int threads_per_job = 0;
  // A job that was running when the server stopped uncleanly this many times in a row is
  // FAILED instead of run again (docs/durability.md); 0: never.
  int crash_loop_limit = 2;
  // Memory the jobs may use together, bytes (docs/resources.md). 0: what the process may use
  // when the server starts (cgroup memory.max or MemAvailable, less 10%), less its baseline.
  int64_t max_job_memory = 0;
  // GPUs to run jobs on, one job each: GPUs 0..gpus-1 of the visible ones. -1: all visible.
  int gpus = -1;
  int max_message_bytes = 4 << 20;
  int max_watchers_per_job = 4096;
  absl::Duration shutdown_grace = absl::Seconds(20);
  // Security (docs/security.md). Empty: off.
  std::string auth_token_file;  // every TrainingService call needs `authorization: Bearer <token>`
  std::string tls_cert;         // PEM certificate chain; with tls_key, serve TLS
  std::string tls_key;          // PEM private key
  std::string tls_client_ca;    // PEM CA: require and verify client certificates (mTLS)
  // Data (docs/security.md). Directories beneath which job specs may name files; empty:
  // DATA_DIR/datasets and the builtin data directory (BuiltinDataDir(), when it exists).
  std::vector<std::string> data_roots;
  int64_t max_dataset_bytes = int64_t{1} << 30;    // one uploaded data set
  int64_t max_datasets_bytes = int64_t{10} << 30;  // all uploaded data sets together
};

// The roots `options` asks for, defaults filled in.
std::vector<std::string> EffectiveDataRoots(const ServerOptions& options);

// kInvalidArgument naming the flag.
absl::Status ValidateServerOptions(const ServerOptions& options);

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> BuildAndStart(const ServerOptions& options);
  ~Server();

  int port() const { return port_; }
  // The bound metrics port; 0 when options.metrics_port is -1.
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  // Health turns NOT_SERVING, intake stops, in-flight RPCs get until `grace`/2 to finish,
  // running jobs stop at their next step. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  Server() = default;

  ServerOptions options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<DatasetStore> datasets_;
  std::unique_ptr<DataRoots> data_roots_;
  std::unique_ptr<JobData> job_data_;
  std::unique_ptr<JobManager> manager_;
  std::unique_ptr<Executor> executor_;           // the store's calls
  std::unique_ptr<Executor> artifact_executor_;  // DownloadModel's files (ONNX export)
  std::unique_ptr<Executor> dataset_executor_;   // uploads and deletions: disk I/O off reactions
  Authenticator auth_;
  std::unique_ptr<TrainingServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsEndpoint> metrics_;  // null when metrics_port is -1
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_SERVER_H_
