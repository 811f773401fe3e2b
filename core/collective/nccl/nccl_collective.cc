#include "core/collective/nccl/nccl_collective.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/cuda/cuda_backend.h"
#include "core/backend/registry.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

absl::Status CudaCall(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return absl::OkStatus();
  cudaGetLastError();
  return absl::InternalError(absl::StrCat(call, " failed: ", cudaGetErrorString(e)));
}

class NcclCollective : public Collective {
 public:
  NcclCollective(std::unique_ptr<Collective> host, int device)
      : host_(std::move(host)), device_(device) {}

  ~NcclCollective() override {
    if (comm_ != nullptr) ncclCommDestroy(comm_);
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  int local_size() const override { return host_->local_size(); }
  std::string name() const override {
    int version = 0;
    ncclGetVersion(&version);
    return absl::StrCat("NCCL ", version, " on gpu:", device_, ", ", host_->name());
  }

  absl::Status AllReduceSum(float* data, int64_t n) override {
    if (!OnDevice(data)) return host_->AllReduceSum(data, n);
    ASSIGN_OR_RETURN(cudaStream_t s, Ready());
    return Check(ncclAllReduce(data, data, static_cast<size_t>(n), ncclFloat, ncclSum, comm_, s),
                 "ncclAllReduce");
  }
  absl::Status AllReduceSum(double* data, int64_t n) override {
    return host_->AllReduceSum(data, n);
  }

  // On the device: the sum runs on NCCL's own stream once the compute stream has produced the
  // bucket, so the backward pass of the layers below overlaps it; Wait makes the compute stream
  // (not the host) wait for it.
  absl::StatusOr<Request> StartAllReduce(float* data, int64_t n) override {
    Pending p;
    if (!OnDevice(data)) {
      ASSIGN_OR_RETURN(p.host, host_->StartAllReduce(data, n));
    } else {
      ASSIGN_OR_RETURN(cudaStream_t compute, Ready());
      ASSIGN_OR_RETURN(cudaEvent_t ready, Event());
      ASSIGN_OR_RETURN(p.done, Event());
      p.device = true;
      RETURN_IF_ERROR(CudaCall(cudaEventRecord(ready, compute), "cudaEventRecord"));
      RETURN_IF_ERROR(CudaCall(cudaStreamWaitEvent(stream_, ready, 0), "cudaStreamWaitEvent"));
      RETURN_IF_ERROR(Check(
          ncclAllReduce(data, data, static_cast<size_t>(n), ncclFloat, ncclSum, comm_, stream_),
          "ncclAllReduce"));
      RETURN_IF_ERROR(CudaCall(cudaEventRecord(p.done, stream_), "cudaEventRecord"));
    }
    pending_.push_back(p);
    return static_cast<Request>(pending_.size() - 1);
  }

  absl::Status Wait(Request request) override {
    if (request < 0 || static_cast<size_t>(request) >= pending_.size()) {
      return absl::InternalError(absl::StrCat("Wait: no reduction ", request, " was started"));
    }
    Pending& p = pending_[static_cast<size_t>(request)];
    absl::Status s;
    if (!p.waited) {
      if (p.device) {
        absl::StatusOr<CUstream_st*> compute = cuda::ThreadStream(device_);
        s = compute.ok() ? CudaCall(cudaStreamWaitEvent(*compute, p.done, 0), "cudaStreamWaitEvent")
                         : compute.status();
      } else {
        s = host_->Wait(p.host);
      }
      p.waited = true;
    }
    // Every request of a step is waited for; then the list (and its events) start over.
    bool all = true;
    for (const Pending& q : pending_) all = all && q.waited;
    if (all) {
      pending_.clear();
      used_events_ = 0;
    }
    return s;
  }

  void Poll() override { host_->Poll(); }

  absl::Status Broadcast(float* data, int64_t n, int root) override {
    if (!OnDevice(data)) return host_->Broadcast(data, n, root);
    ASSIGN_OR_RETURN(cudaStream_t s, Ready());
    return Check(ncclBroadcast(data, data, static_cast<size_t>(n), ncclFloat, root, comm_, s),
                 "ncclBroadcast");
  }
  absl::Status Broadcast(std::string* bytes, int root) override {
    return host_->Broadcast(bytes, root);
  }
  absl::Status Barrier() override { return host_->Barrier(); }
  void Abort(const std::string& message, int code) override {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
    host_->Abort(message, code);
  }

 private:
  struct Pending {
    bool device = false;
    bool waited = false;
    Request host = 0;
    cudaEvent_t done = nullptr;
  };

  absl::Status Check(ncclResult_t r, const char* call) {
    if (r == ncclSuccess) return absl::OkStatus();
    std::string message = absl::StrCat(call, " failed: ", ncclGetErrorString(r));
    if (comm_ != nullptr) {
      const char* last = ncclGetLastError(comm_);
      if (last != nullptr && last[0] != '\0') absl::StrAppend(&message, " (", last, ")");
    }
    if (r == ncclRemoteError) return absl::UnavailableError(message);
    return absl::InternalError(message);
  }

  static bool OnDevice(const void* p) {
    cudaPointerAttributes attr;
    if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
  }

  // The communicator (made on first use, by every rank at the same call) and the calling
  // thread's compute stream, on this rank's GPU.
  absl::StatusOr<cudaStream_t> Ready() {
    ASSIGN_OR_RETURN(CUstream_st * compute, cuda::ThreadStream(device_));
    if (comm_ != nullptr) return compute;
    ncclUniqueId id;
    std::string bytes;
    if (rank() == 0) {
      RETURN_IF_ERROR(Check(ncclGetUniqueId(&id), "ncclGetUniqueId"));
      bytes.assign(reinterpret_cast<const char*>(&id), sizeof(id));
    }
    RETURN_IF_ERROR(host_->Broadcast(&bytes, 0));
    if (bytes.size() != sizeof(id)) {
      return absl::InternalError("NCCL bootstrap: rank 0 sent an id of the wrong size");
    }
    std::memcpy(&id, bytes.data(), sizeof(id));
    RETURN_IF_ERROR(Check(ncclCommInitRank(&comm_, size(), id, rank()), "ncclCommInitRank"));
    RETURN_IF_ERROR(CudaCall(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                             "cudaStreamCreateWithFlags"));
    return compute;
  }

  // An event for this step's requests, reused from step to step.
  absl::StatusOr<cudaEvent_t> Event() {
    if (used_events_ == events_.size()) {
      cudaEvent_t e = nullptr;
      RETURN_IF_ERROR(CudaCall(cudaEventCreateWithFlags(&e, cudaEventDisableTiming),
                               "cudaEventCreateWithFlags"));
      events_.push_back(e);
    }
    return events_[used_events_++];
  }

  std::unique_ptr<Collective> host_;
  int device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;  // NCCL's, for overlapped reductions
  std::vector<cudaEvent_t> events_;
  size_t used_events_ = 0;
  std::vector<Pending> pending_;
};

// This rank's index among the ranks on its machine.
int LocalRank(const Collective& host) {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMIX_LOCAL_RANK"}) {
    if (const char* v = std::getenv(var); v != nullptr) return std::atoi(v);
  }
  return host.rank() % std::max(1, host.local_size());
}

}  // namespace

std::unique_ptr<Collective> WrapForGpus(std::unique_ptr<Collective> host) {
  const int gpus = VisibleGpuCount();
  if (gpus == 0) return host;
  const int device = LocalRank(*host) % gpus;
  SetDefaultGpu(device);
  return std::make_unique<NcclCollective>(std::move(host), device);
}

}  // namespace cajal
