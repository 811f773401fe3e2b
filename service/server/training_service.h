// cajal.v1.TrainingService on gRPC's callback API: a thin adapter over JobManager.
//
// Unary calls that only read memory (GetJob, ListJobs, ListDatasets) finish inside the
// reaction; calls that touch the store (SubmitJob, CancelJob, GetJobMetrics, DeleteJob) are
// finished from the executor thread, and DeleteDataset from the data set executor. WatchJob,
// DownloadModel and UploadDataset are small reactor classes that own their state and delete
// themselves in OnDone. DownloadModel finds its files (exporting the model to ONNX on first
// request) on the artifact executor, so a slow export holds up neither a reaction nor the
// store's calls; an upload's writes run on the data set executor, one chunk at a time. No
// reaction blocks.
#ifndef CAJAL_SERVICE_SERVER_TRAINING_SERVICE_H_
#define CAJAL_SERVICE_SERVER_TRAINING_SERVICE_H_

#include "cajal/v1/training_service.grpc.pb.h"
#include "service/server/auth.h"
#include "service/server/datasets.h"
#include "service/server/executor.h"
#include "service/server/job_manager.h"

namespace cajal {

// Bytes per DownloadModel chunk.
inline constexpr size_t kModelChunkBytes = 256 * 1024;

class TrainingServiceImpl final : public v1::TrainingService::CallbackService {
 public:
  // `auth` checks every call; `max_watchers_per_job` bounds the WatchJob streams of one job.
  // `executor` runs the store's calls, `artifact_executor` DownloadModel's preparation;
  // `datasets` stores uploads, with its disk work on `dataset_executor`.
  TrainingServiceImpl(JobManager* manager, Executor* executor, Executor* artifact_executor,
                      const Authenticator* auth, int max_watchers_per_job, DatasetStore* datasets,
                      Executor* dataset_executor)
      : manager_(manager),
        executor_(executor),
        artifact_executor_(artifact_executor),
        auth_(auth),
        max_watchers_per_job_(max_watchers_per_job),
        datasets_(datasets),
        dataset_executor_(dataset_executor) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* ctx,
                                                   const v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* GetJobMetrics(grpc::CallbackServerContext* ctx,
                                          const v1::GetJobMetricsRequest* request,
                                          v1::GetJobMetricsResponse* response) override;
  grpc::ServerWriteReactor<v1::ModelChunk>* DownloadModel(
      grpc::CallbackServerContext* ctx, const v1::DownloadModelRequest* request) override;
  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* ctx,
                                      const v1::DeleteJobRequest* request,
                                      google::protobuf::Empty* response) override;
  grpc::ServerReadReactor<v1::UploadDatasetRequest>* UploadDataset(grpc::CallbackServerContext* ctx,
                                                                   v1::Dataset* response) override;
  grpc::ServerUnaryReactor* ListDatasets(grpc::CallbackServerContext* ctx,
                                         const v1::ListDatasetsRequest* request,
                                         v1::ListDatasetsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteDataset(grpc::CallbackServerContext* ctx,
                                          const v1::DeleteDatasetRequest* request,
                                          google::protobuf::Empty* response) override;

 private:
  // Where a unary call's work runs: inline in the reaction when it only reads memory, on the
  // executor when it touches the store, on the data set executor when it touches data sets.
  enum class Where { kInline, kExecutor, kDatasetExecutor };
  // Checks the caller, then runs `call` (which fills the response and returns the status the
  // RPC ends with) where `where` says, and finishes the call with its status.
  template <class Call>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, Where where, Call call);

  JobManager* manager_;
  Executor* executor_;
  Executor* artifact_executor_;
  const Authenticator* auth_;
  int max_watchers_per_job_;
  DatasetStore* datasets_;
  Executor* dataset_executor_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_TRAINING_SERVICE_H_
