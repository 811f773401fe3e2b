#include "service/server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/backend/registry.h"
#include "core/data/dataset.h"
#include "core/train/memory.h"
#include "core/util/status_macros.h"
#include "service/server/logging.h"

namespace cajal {

absl::Status ValidateServerOptions(const ServerOptions& o) {
  auto bad = [](const std::string& flag, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", what));
  };
  if (o.port < 0 || o.port > 65535)
    return bad("port", absl::StrCat("must be in [0, 65535], got ", o.port));
  if (o.metrics_port < -1 || o.metrics_port > 65535) {
    return bad("metrics_port",
               absl::StrCat("must be in [0, 65535], or -1 for none, got ", o.metrics_port));
  }
  if (o.data_dir.empty()) return bad("data_dir", "required");
  if (o.max_concurrent_jobs < 1 || o.max_concurrent_jobs > 256) {
    return bad("max_concurrent_jobs",
               absl::StrCat("must be in [1, 256], got ", o.max_concurrent_jobs));
  }
  if (o.max_queued_jobs < 0) {
    return bad("max_queued_jobs", absl::StrCat("must be >= 0, got ", o.max_queued_jobs));
  }
  if (o.threads_per_job < 0) {
    return bad("threads_per_job", absl::StrCat("must be >= 0, got ", o.threads_per_job));
  }
  if (o.max_job_memory < 0) {
    return bad("max_job_memory", absl::StrCat("must be >= 0, got ", o.max_job_memory));
  }
  const int visible = VisibleGpuCount();
  if (o.gpus < -1 || o.gpus > visible) {
    return bad("gpus", absl::StrCat("must be in [0, ", visible,
                                    "] (the GPUs this process sees), "
                                    "or -1 for all of them, got ",
                                    o.gpus));
  }
  if (o.crash_loop_limit < 0) {
    return bad("crash_loop_limit", absl::StrCat("must be >= 0, got ", o.crash_loop_limit));
  }
  if (o.shutdown_grace < absl::ZeroDuration()) return bad("shutdown_grace", "must be >= 0");
  if (o.max_watchers_per_job < 1) {
    return bad("max_watchers_per_job", absl::StrCat("must be > 0, got ", o.max_watchers_per_job));
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return bad(o.tls_cert.empty() ? "tls_cert" : "tls_key", "--tls_cert and --tls_key go together");
  }
  if (o.max_dataset_bytes < 1) {
    return bad("max_dataset_bytes", absl::StrCat("must be > 0, got ", o.max_dataset_bytes));
  }
  if (o.max_datasets_bytes < 0) {
    return bad("max_datasets_bytes", absl::StrCat("must be >= 0, got ", o.max_datasets_bytes));
  }
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
    return bad("tls_client_ca",
               "needs --tls_cert and --tls_key (mTLS is TLS with client certificates)");
  }
  return absl::OkStatus();
}

std::vector<std::string> EffectiveDataRoots(const ServerOptions& o) {
  if (!o.data_roots.empty()) return o.data_roots;
  std::vector<std::string> roots = {o.data_dir + "/datasets"};
  std::error_code ec;
  if (std::filesystem::is_directory(BuiltinDataDir(), ec)) roots.push_back(BuiltinDataDir());
  return roots;
}

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, ": not a PEM file"));
  }
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& o) {
  if (o.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSIGN_OR_RETURN(pair.cert_chain, ReadPem("tls_cert", o.tls_cert));
  ASSIGN_OR_RETURN(pair.private_key, ReadPem("tls_key", o.tls_key));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!o.tls_client_ca.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem("tls_client_ca", o.tls_client_ca));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  } else {
    ssl.client_certificate_request = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  }
  return grpc::SslServerCredentials(ssl);
}

// Removes the reflection plugin from one builder. Linking grpc++_reflection registers the plugin
// for every server (a static initializer in the library), so not calling
// InitProtoReflectionServerBuilderPlugin() is not enough to turn reflection off.
// (Fix, found by tests/integration/security_test: under --auth_token_file reflection still
// listed the services without a token.)
class WithoutReflection : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(
        std::remove_if(plugins->begin(), plugins->end(),
                       [](const auto& p) { return p->name() == "proto_server_reflection"; }),
        plugins->end());
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::BuildAndStart(const ServerOptions& options) {
  RETURN_IF_ERROR(ValidateServerOptions(options));
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  if (!options.auth_token_file.empty()) {
    ASSIGN_OR_RETURN(std::string token, ReadTokenFile(options.auth_token_file));
    s->auth_ = Authenticator(std::move(token));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, Credentials(options));
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir + "/jobs", ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("--data_dir ", options.data_dir, ": cannot create: ", ec.message()));
  }
  ASSIGN_OR_RETURN(s->store_, Store::Open(options.data_dir + "/cajal.db"));
  DatasetLimits limits;
  limits.max_dataset_bytes = options.max_dataset_bytes;
  limits.max_total_bytes = options.max_datasets_bytes;
  ASSIGN_OR_RETURN(s->datasets_, DatasetStore::Open(options.data_dir + "/datasets", limits));
  ASSIGN_OR_RETURN(s->data_roots_, DataRoots::Create(EffectiveDataRoots(options)));
  Log(LogLevel::kInfo, "data roots",
      {{"roots", absl::StrJoin(s->data_roots_->dirs(), ",")},
       {"confinement", DataRoots::MechanismName(s->data_roots_->mechanism())}});
  s->job_data_ = std::make_unique<JobData>(s->data_roots_.get(), s->datasets_.get());
  ManagerOptions mo;
  mo.data = s->job_data_.get();
  mo.data_dir = options.data_dir;
  mo.max_concurrent_jobs = options.max_concurrent_jobs;
  mo.max_queued_jobs = options.max_queued_jobs;
  mo.threads_per_job = options.threads_per_job;
  mo.crash_loop_limit = options.crash_loop_limit;
  mo.admission.capacity = options.max_job_memory > 0
                              ? FlagBudget(options.max_job_memory, "--max_job_memory")
                              : DefaultJobMemory();
  mo.admission.gpus = options.gpus < 0 ? VisibleGpuCount() : options.gpus;
  Log(LogLevel::kInfo, "resources for jobs",
      {{"memory", FormatBytes(mo.admission.capacity.bytes)},
       {"memory_source", mo.admission.capacity.source},
       {"gpus", std::to_string(mo.admission.gpus)}});
  ServerMetrics().SetGpuInfoSource(mo.admission.gpus, GetGpuInfo);
  ASSIGN_OR_RETURN(s->manager_, JobManager::Create(mo, s->store_.get()));
  s->executor_ = std::make_unique<Executor>();
  s->artifact_executor_ = std::make_unique<Executor>();
  s->dataset_executor_ = std::make_unique<Executor>();
  s->service_ = std::make_unique<TrainingServiceImpl>(
      s->manager_.get(), s->executor_.get(), s->artifact_executor_.get(), &s->auth_,
      options.max_watchers_per_job, s->datasets_.get(), s->dataset_executor_.get());

  if (options.metrics_port >= 0) {
    ASSIGN_OR_RETURN(s->metrics_,
                     MetricsEndpoint::Start(options.host, options.metrics_port, &ServerMetrics()));
  }
  grpc::EnableDefaultHealthCheckService(true);
  // Reflection answers without credentials, so it is off when calls need a token.
  if (!s->auth_.enabled()) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (s->auth_.enabled()) builder.SetOption(std::make_unique<WithoutReflection>());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(NewRpcMetricsInterceptorFactory(&ServerMetrics()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port), credentials, &s->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.host, ":", options.port,
                                               " (is the port in use?)"));
  }
  auto* health = s->server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus("cajal.v1.TrainingService", true);
  s->manager_->Start();
  if (s->metrics_) s->metrics_->SetReady(true);  // serving, intake open
  return s;
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  // Probes see NOT_SERVING at once; then no new jobs; then RPCs drain.
  if (metrics_) metrics_->SetReady(false);
  server_->GetHealthCheckService()->Shutdown();
  manager_->StopIntake();
  const auto deadline = std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace / 2);
  server_->Shutdown(deadline);
  server_->Wait();
  manager_->Shutdown();
  executor_.reset();           // drains posted store work
  artifact_executor_.reset();  // downloads being prepared
  dataset_executor_.reset();   // and upload work (every upload stream has ended)
}

Server::~Server() {
  if (server_ != nullptr) Shutdown(options_.shutdown_grace);
}

}  // namespace cajal
