#include "service/server/training_service.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "service/server/grpc_status.h"

namespace cajal {
namespace {

// A stream that ends at once with an error.
template <class T>
class ErrorWriteReactor : public grpc::ServerWriteReactor<T> {
 public:
  explicit ErrorWriteReactor(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

// Streams a job's events from `from_sequence` on; ends when the job is terminal.
class WatchReactor : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  WatchReactor(JobManager* manager, Executor* executor, const v1::WatchJobRequest& request,
               int max_watchers)
      : next_(request.from_sequence()), max_watchers_(max_watchers) {
    if (next_ < 0) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("from_sequence: must be >= 0, got ", next_)));
      return;
    }
    absl::StatusOr<std::shared_ptr<EventLog>> log = manager->TryLog(request.id());
    if (!log.ok()) {
      Finish(ToGrpcStatus(log.status()));
      return;
    }
    if (*log) {
      Begin(*log);
      return;
    }
    // An old job's history must come from the store: load it off the reaction thread.
    executor->Post([this, manager, id = request.id()] {
      absl::StatusOr<std::shared_ptr<EventLog>> loaded = manager->Log(id);
      if (!loaded.ok()) {
        Finish(ToGrpcStatus(loaded.status()));
        return;
      }
      Begin(*loaded);
    });
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (ok) ++next_;
      if (!ok) cancelled_ = true;
    }
    Pump();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    Pump();
  }

  void OnDone() override {
    if (listener_) listener_->Detach();
    delete this;
  }

 private:
  // Forwards log notifications to the reactor until the reactor is done.
  class Listener : public EventListener {
   public:
    explicit Listener(WatchReactor* r) : reactor_(r) {}
    void OnEvents() override {
      absl::MutexLock lock(&mu_);
      if (reactor_ != nullptr) reactor_->Pump();
    }
    void Detach() {
      absl::MutexLock lock(&mu_);
      reactor_ = nullptr;
    }

   private:
    absl::Mutex mu_;
    WatchReactor* reactor_ ABSL_GUARDED_BY(mu_);
  };

  void Begin(std::shared_ptr<EventLog> log) {
    {
      absl::MutexLock lock(&mu_);
      log_ = std::move(log);
    }
    listener_ = std::make_shared<Listener>(this);
    if (!log_->Subscribe(listener_, max_watchers_)) {
      {
        absl::MutexLock lock(&mu_);
        finished_ = true;
      }
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("this job already has ", max_watchers_,
                                       " watchers (--max_watchers_per_job); retry later")));
      return;
    }
    Pump();
  }

  // Starts the next write, or finishes; never blocks.
  void Pump() {
    enum { kNothing, kWrite, kDone, kCancelled } action = kNothing;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || writing_ || log_ == nullptr) return;
      if (cancelled_) {
        action = kCancelled;
        finished_ = true;
      } else {
        std::vector<v1::JobEvent> out;
        const bool end = log_->Read(next_, 1, &out);
        if (!out.empty()) {
          current_ = std::move(out[0]);
          writing_ = true;
          action = kWrite;
        } else if (end) {
          action = kDone;
          finished_ = true;
        }
      }
    }
    switch (action) {
      case kWrite:
        StartWrite(&current_);
        break;
      case kDone:
        Finish(grpc::Status::OK);
        break;
      case kCancelled:
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the watch was cancelled"));
        break;
      case kNothing:
        break;
    }
  }

  absl::Mutex mu_;
  std::shared_ptr<EventLog> log_ ABSL_GUARDED_BY(mu_);
  int64_t next_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  v1::JobEvent current_;
  std::shared_ptr<Listener> listener_;
  const int max_watchers_;
};

// Streams a job's files in kModelChunkBytes pieces.
class DownloadReactor : public grpc::ServerWriteReactor<v1::ModelChunk> {
 public:
  // Streams the files one after the other, as much of each as it held when Begin was called.
  // Called once, from the executor that found the files.
  void Begin(const absl::StatusOr<std::vector<std::string>>& paths) {
    if (!paths.ok()) {
      Finish(ToGrpcStatus(paths.status()));
      return;
    }
    for (const std::string& path : *paths) {
      auto file = std::make_unique<std::ifstream>(path, std::ios::binary);
      if (!*file) {
        Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "the job's file is missing"));
        return;
      }
      file->seekg(0, std::ios::end);
      const int64_t size = static_cast<int64_t>(file->tellg());
      file->seekg(0);
      files_.push_back({std::move(file), size});
      size_ += size;
    }
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the download was cancelled"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  struct Part {
    std::unique_ptr<std::ifstream> file;
    int64_t remaining;
  };

  void Next() {
    while (current_ < files_.size() && files_[current_].remaining == 0) ++current_;
    if (current_ == files_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    Part& part = files_[current_];
    std::string* data = chunk_.mutable_data();
    data->resize(static_cast<size_t>(std::min<int64_t>(kModelChunkBytes, part.remaining)));
    part.file->read(data->data(), static_cast<std::streamsize>(data->size()));
    if (!*part.file) {
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "reading the job's file failed"));
      return;
    }
    part.remaining -= static_cast<int64_t>(data->size());
    chunk_.set_offset(offset_);
    chunk_.set_total_size(size_);
    offset_ += static_cast<int64_t>(data->size());
    StartWrite(&chunk_);
  }

  std::vector<Part> files_;
  size_t current_ = 0;
  int64_t size_ = 0;
  int64_t offset_ = 0;
  v1::ModelChunk chunk_;
};

// A read stream that ends at once with an error.
template <class T>
class ErrorReadReactor : public grpc::ServerReadReactor<T> {
 public:
  explicit ErrorReadReactor(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

// Receives one data set: the header, then the chunks, each written by the data set executor
// before the next read starts (so at most one chunk is held in memory per upload). Ends with
// the stored data set once the client half-closes and every byte checks out; anything else
// ends with an error and leaves nothing behind (the Upload removes its files when destroyed).
class UploadReactor : public grpc::ServerReadReactor<v1::UploadDatasetRequest> {
 public:
  UploadReactor(grpc::CallbackServerContext* ctx, DatasetStore* store, Executor* io,
                v1::Dataset* response)
      : ctx_(ctx), store_(store), io_(io), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    // The work touches the disk: off the reaction, on the executor, which then reads again or
    // finishes.
    io_->Post([this, ok] {
      const absl::Status s = ok ? Take() : End();
      if (!s.ok() || !ok) {
        upload_.reset();  // an unfinished upload removes its files here
        Finish(ToGrpcStatus(s));
        return;
      }
      StartRead(&request_);
    });
  }

  void OnDone() override { delete this; }

 private:
  // One message of the stream.
  absl::Status Take() {
    if (request_.has_header()) {
      if (upload_ != nullptr) {
        return absl::InvalidArgumentError("header: sent twice; send it once, first");
      }
      absl::StatusOr<std::unique_ptr<DatasetStore::Upload>> upload =
          store_->Begin(request_.header());
      if (!upload.ok()) return upload.status();
      upload_ = *std::move(upload);
      return absl::OkStatus();
    }
    if (upload_ == nullptr) {
      return absl::InvalidArgumentError("header: the first message must carry the header");
    }
    if (request_.part_case() != v1::UploadDatasetRequest::kChunk) {
      return absl::InvalidArgumentError("a message with neither header nor chunk");
    }
    absl::Status s = upload_->Append(request_.chunk());
    request_.clear_chunk();
    return s;
  }

  // The client half-closed, or the call broke.
  absl::Status End() {
    if (ctx_->IsCancelled()) return absl::CancelledError("the upload was cancelled");
    if (upload_ == nullptr) {
      return absl::InvalidArgumentError("header: the stream ended before the header");
    }
    absl::StatusOr<v1::Dataset> dataset = upload_->Commit();
    if (!dataset.ok()) return dataset.status();
    *response_ = *std::move(dataset);
    return absl::OkStatus();
  }

  grpc::CallbackServerContext* ctx_;
  DatasetStore* store_;
  Executor* io_;
  v1::Dataset* response_;
  v1::UploadDatasetRequest request_;
  std::unique_ptr<DatasetStore::Upload> upload_;
};

// Moves a result's value into the response; returns the status the RPC ends with.
template <class T>
absl::Status Fill(absl::StatusOr<T> result, T* response) {
  if (result.ok()) *response = *std::move(result);
  return result.status();
}

}  // namespace

template <class Call>
grpc::ServerUnaryReactor* TrainingServiceImpl::Unary(grpc::CallbackServerContext* ctx, Where where,
                                                     Call call) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (absl::Status auth = auth_->Check(*ctx); !auth.ok()) {
    reactor->Finish(ToGrpcStatus(auth));
    return reactor;
  }
  if (where == Where::kInline) {
    reactor->Finish(ToGrpcStatus(call()));
  } else {
    Executor* executor = where == Where::kExecutor ? executor_ : dataset_executor_;
    executor->Post([reactor, call = std::move(call)] { reactor->Finish(ToGrpcStatus(call())); });
  }
  return reactor;
}

grpc::ServerUnaryReactor* TrainingServiceImpl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                         const v1::SubmitJobRequest* request,
                                                         v1::Job* response) {
  return Unary(ctx, Where::kExecutor,
               [this, request, response] { return Fill(manager_->Submit(*request), response); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                      const v1::GetJobRequest* request,
                                                      v1::Job* response) {
  return Unary(ctx, Where::kInline,
               [this, request, response] { return Fill(manager_->Get(request->id()), response); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                        const v1::ListJobsRequest* request,
                                                        v1::ListJobsResponse* response) {
  return Unary(ctx, Where::kInline,
               [this, request, response] { return Fill(manager_->List(*request), response); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                         const v1::CancelJobRequest* request,
                                                         v1::Job* response) {
  return Unary(ctx, Where::kExecutor, [this, request, response] {
    return Fill(manager_->Cancel(request->id()), response);
  });
}

grpc::ServerWriteReactor<v1::JobEvent>* TrainingServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const v1::WatchJobRequest* request) {
  if (absl::Status auth = auth_->Check(*ctx); !auth.ok()) {
    return new ErrorWriteReactor<v1::JobEvent>(auth);
  }
  return new WatchReactor(manager_, executor_, *request, max_watchers_per_job_);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetJobMetrics(
    grpc::CallbackServerContext* ctx, const v1::GetJobMetricsRequest* request,
    v1::GetJobMetricsResponse* response) {
  return Unary(ctx, Where::kExecutor, [this, request, response] {
    absl::StatusOr<std::vector<v1::MetricPoint>> points = manager_->Metrics(request->id());
    if (points.ok()) {
      for (auto& p : *points) *response->add_points() = std::move(p);
    }
    return points.status();
  });
}

grpc::ServerWriteReactor<v1::ModelChunk>* TrainingServiceImpl::DownloadModel(
    grpc::CallbackServerContext* ctx, const v1::DownloadModelRequest* request) {
  if (absl::Status auth = auth_->Check(*ctx); !auth.ok()) {
    return new ErrorWriteReactor<v1::ModelChunk>(auth);
  }
  // Finding the files may export the model to ONNX (seconds for a large model) or list a
  // directory: never in the reaction.
  auto* reactor = new DownloadReactor();
  artifact_executor_->Post(
      [reactor, manager = manager_, id = request->id(), artifact = request->artifact()] {
        reactor->Begin(manager->ArtifactPaths(id, artifact));
      });
  return reactor;
}

grpc::ServerUnaryReactor* TrainingServiceImpl::DeleteJob(grpc::CallbackServerContext* ctx,
                                                         const v1::DeleteJobRequest* request,
                                                         google::protobuf::Empty* /*response*/) {
  return Unary(ctx, Where::kExecutor, [this, request] { return manager_->Delete(request->id()); });
}

grpc::ServerReadReactor<v1::UploadDatasetRequest>* TrainingServiceImpl::UploadDataset(
    grpc::CallbackServerContext* ctx, v1::Dataset* response) {
  if (absl::Status auth = auth_->Check(*ctx); !auth.ok()) {
    return new ErrorReadReactor<v1::UploadDatasetRequest>(auth);
  }
  return new UploadReactor(ctx, datasets_, dataset_executor_, response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListDatasets(grpc::CallbackServerContext* ctx,
                                                            const v1::ListDatasetsRequest* request,
                                                            v1::ListDatasetsResponse* response) {
  return Unary(ctx, Where::kInline,
               [this, request, response] { return Fill(datasets_->List(*request), response); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::DeleteDataset(
    grpc::CallbackServerContext* ctx, const v1::DeleteDatasetRequest* request,
    google::protobuf::Empty* /*response*/) {
  return Unary(ctx, Where::kDatasetExecutor,
               [this, request] { return datasets_->Delete(request->id()); });
}

}  // namespace cajal
