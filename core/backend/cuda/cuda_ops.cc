// DeviceOps on a GPU: cudaMalloc'd memory, copies on the calling thread's stream, cuBLAS for
// the GEMM, kernels.cu for element operations and sums, cuDNN for the convolution (conv.cc);
// and the registry's entry points (cuda_backend.h).
#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/backend/cuda/conv.h"
#include "core/backend/cuda/cuda_backend.h"
#include "core/backend/cuda/cuda_util.h"
#include "core/backend/cuda/device_backend.h"
#include "core/backend/cuda/host_ops.h"
#include "core/backend/cuda/launch.h"
#include "core/util/status_macros.h"

namespace cajal::cuda {
namespace {

std::string Mib(size_t bytes) {
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

absl::Status OutOfMemory(const absl::Status& s, size_t bytes, const char* what, int device) {
  if (s.code() != absl::StatusCode::kResourceExhausted) return s;
  return absl::ResourceExhaustedError(absl::StrCat("out of ", what, " memory on gpu:", device,
                                                   ": cannot allocate ", bytes, " bytes (",
                                                   Mib(bytes), "); ", s.message()));
}

// Double-buffered batch staging: pinned host buffers the host fills, device buffers the copy
// engine fills from them on the context's copy stream, and a device-to-device copy on the
// compute stream, after the upload's event, into the destination. So the host→device transfer
// overlaps whatever the compute stream still runs, and the destination is written in order
// with the kernels that read it. Each slot's events keep its buffers from being reused early:
// the host waits on `sent` (the transfer left its pinned buffer) before refilling it, the copy
// stream on `moved` (the compute stream copied its device buffer out) before overwriting it.
class CudaUpload : public BatchUpload {
 public:
  explicit CudaUpload(int device) : device_(device) {}
  ~CudaUpload() override {
    for (Slot& s : slots_) {
      if (s.sent != nullptr) cudaEventDestroy(s.sent);
      if (s.moved != nullptr) cudaEventDestroy(s.moved);
    }
  }

  absl::Status Init(device::DeviceOps* ops, const std::vector<size_t>& part_bytes) {
    for (Slot& s : slots_) {
      for (size_t bytes : part_bytes) {
        ASSIGN_OR_RETURN(DeviceBuffer host, ops->AllocateHost(bytes));
        ASSIGN_OR_RETURN(DeviceBuffer staged, ops->Allocate(bytes));
        s.host.push_back(std::move(host));
        s.staged.push_back(std::move(staged));
      }
      RETURN_IF_ERROR(CudaStatus(cudaEventCreateWithFlags(&s.sent, cudaEventDisableTiming),
                                 "cudaEventCreateWithFlags"));
      RETURN_IF_ERROR(CudaStatus(cudaEventCreateWithFlags(&s.moved, cudaEventDisableTiming),
                                 "cudaEventCreateWithFlags"));
    }
    return absl::OkStatus();
  }

  absl::Status Acquire() override {
    current_ = 1 - current_;
    Slot& s = slots_[current_];
    s.wait_moved = s.used;
    if (s.used) RETURN_IF_ERROR(CudaStatus(cudaEventSynchronize(s.sent), "cudaEventSynchronize"));
    return absl::OkStatus();
  }

  void* host(int part) const override {
    return slots_[current_].host[static_cast<size_t>(part)].get();
  }

  absl::Status Send(int part, void* dst, size_t bytes) override {
    if (bytes == 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(ThreadContext * c, Context(device_));
    Slot& s = slots_[current_];
    void* staged = s.staged[static_cast<size_t>(part)].get();
    if (s.wait_moved) {  // once per batch: the slot's last batch has left its device buffers
      RETURN_IF_ERROR(
          CudaStatus(cudaStreamWaitEvent(c->copy_stream, s.moved, 0), "cudaStreamWaitEvent"));
      s.wait_moved = false;
    }
    RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(staged, host(part), bytes, cudaMemcpyHostToDevice, c->copy_stream),
        "cudaMemcpyAsync (batch upload)"));
    RETURN_IF_ERROR(CudaStatus(cudaEventRecord(s.sent, c->copy_stream), "cudaEventRecord"));
    RETURN_IF_ERROR(CudaStatus(cudaStreamWaitEvent(c->stream, s.sent, 0), "cudaStreamWaitEvent"));
    RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(dst, staged, bytes, cudaMemcpyDeviceToDevice, c->stream),
                   "cudaMemcpyAsync (batch upload)"));
    RETURN_IF_ERROR(CudaStatus(cudaEventRecord(s.moved, c->stream), "cudaEventRecord"));
    s.used = true;
    return absl::OkStatus();
  }

 private:
  struct Slot {
    std::vector<DeviceBuffer> host, staged;
    cudaEvent_t sent = nullptr, moved = nullptr;
    bool used = false;        // a batch went through this slot before
    bool wait_moved = false;  // this batch's first Send must wait for `moved`
  };
  int device_;
  std::array<Slot, 2> slots_;
  int current_ = 1;
};

class CudaOps : public device::DeviceOps {
 public:
  explicit CudaOps(int device) : device_(device) {}

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override {
    if (bytes == 0) return DeviceBuffer();
    ASSIGN_OR_RETURN(ThreadContext * c, Context(device_));
    void* p = nullptr;
    if (absl::Status s = CudaStatus(cudaMalloc(&p, bytes), "cudaMalloc"); !s.ok()) {
      return OutOfMemory(s, bytes, "GPU", device_);
    }
    DeviceBuffer buffer(p, bytes, [](void* q) { cudaFree(q); });
    RETURN_IF_ERROR(CudaStatus(cudaMemsetAsync(p, 0, bytes, c->stream), "cudaMemsetAsync"));
    // Zeroed before any thread's stream may use it.
    RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(c->stream), "cudaStreamSynchronize"));
    return buffer;
  }

  absl::StatusOr<DeviceBuffer> AllocateHost(size_t bytes) override {
    if (bytes == 0) return DeviceBuffer();
    RETURN_IF_ERROR(Context(device_).status());
    void* p = nullptr;
    if (absl::Status s = CudaStatus(cudaMallocHost(&p, bytes), "cudaMallocHost"); !s.ok()) {
      return OutOfMemory(s, bytes, "pinned host", device_);
    }
    std::memset(p, 0, bytes);
    return DeviceBuffer(p, bytes, [](void* q) { cudaFreeHost(q); });
  }

  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    return Copy(dst, src, bytes, cudaMemcpyHostToDevice, /*wait=*/true);
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    return Copy(dst, src, bytes, cudaMemcpyDeviceToHost, /*wait=*/true);
  }
  absl::Status CopyOnDevice(void* dst, const void* src, size_t bytes) override {
    if (dst == src) return absl::OkStatus();
    return Copy(dst, src, bytes, cudaMemcpyDeviceToDevice, /*wait=*/false);
  }

  absl::Status Synchronize() override {
    ASSIGN_OR_RETURN(ThreadContext * c, Context(device_));
    return CudaStatus(cudaStreamSynchronize(c->stream), "cudaStreamSynchronize");
  }

  absl::StatusOr<std::unique_ptr<BatchUpload>> MakeBatchUpload(
      const std::vector<size_t>& part_bytes) override {
    auto upload = std::make_unique<CudaUpload>(device_);
    RETURN_IF_ERROR(upload->Init(this, part_bytes));
    return std::unique_ptr<BatchUpload>(std::move(upload));
  }

  absl::Status Gemm(const device::GemmArgs& g) override {
    RETURN_IF_ERROR(device::CheckGemm(g));
    for (int64_t v : {g.m, g.n, g.k, g.lda, g.ldb, g.ldc}) {
      if (v > INT_MAX) {
        return absl::InvalidArgumentError(
            absl::StrCat("gemm: a size or leading dimension of ", v, " exceeds cuBLAS's int"));
      }
    }
    if (g.m == 0 || g.n == 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(ThreadContext * c, Context(device_));
    // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: the same buffers, with
    // the operands swapped and m and n exchanged.
    const auto op = [](bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; };
    ASSIGN_OR_RETURN(const CublasApi* blas, Cublas());
    return CublasStatus(blas->sgemm(c->cublas, op(g.trans_b), op(g.trans_a), static_cast<int>(g.n),
                                    static_cast<int>(g.m), static_cast<int>(g.k), &g.alpha, g.b,
                                    static_cast<int>(g.ldb), g.a, static_cast<int>(g.lda), &g.beta,
                                    g.c, static_cast<int>(g.ldc)),
                        "cublasSgemm");
  }

  absl::Status Run(const device::ElementOp& op, int64_t n) override {
    ASSIGN_OR_RETURN(ThreadContext * c, Context(device_));
    return CudaStatus(LaunchElementOp(op, n, c->stream), "an element kernel launch");
  }

  absl::Status ChannelSum(const device::ReduceTerm& term, const device::ReduceShape& shape,
                          float alpha, float* out) override {
    ASSIGN_OR_RETURN(ThreadContext * c, Context(device_));
    return CudaStatus(LaunchChannelSum(term, shape, alpha, out, c->stream),
                      "a channel-sum kernel launch");
  }

  absl::StatusOr<double> SumOfSquares(const float* x, int64_t n) override {
    ASSIGN_OR_RETURN(ThreadContext * c, Context(device_));
    RETURN_IF_ERROR(CudaStatus(LaunchSumOfSquares(x, n, c->partials, kSquareBlocks, c->stream),
                               "a sum-of-squares kernel launch"));
    RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(c->host_partials, c->partials, kSquareBlocks * sizeof(double),
                                   cudaMemcpyDeviceToHost, c->stream),
                   "cudaMemcpyAsync"));
    RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(c->stream), "cudaStreamSynchronize"));
    double sum = 0;
    for (int b = 0; b < kSquareBlocks; ++b) sum += c->host_partials[b];
    return sum;
  }

  absl::StatusOr<std::unique_ptr<Kernel>> MakeConv2d(const Conv2dSpec& spec,
                                                     const KernelArgs& args) override {
    return MakeCudnnConv2d(device_, this, spec, args);
  }
  int64_t Conv2dBytes(const Conv2dSpec& spec, const KernelArgs& args) const override {
    return CudnnConv2dBytes(device_, spec, args);
  }

 private:
  absl::Status Copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, bool wait) {
    if (bytes == 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(ThreadContext * c, Context(device_));
    RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(dst, src, bytes, kind, c->stream), "cudaMemcpyAsync"));
    if (!wait) return absl::OkStatus();
    return CudaStatus(cudaStreamSynchronize(c->stream), "cudaStreamSynchronize");
  }

  int device_;
};

}  // namespace

int VisibleDeviceCount() {
  static const int count = [] {
    int n = 0;
    // Without a driver this fails (cudaErrorInsufficientDriver, cudaErrorNoDevice): no GPU.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

absl::StatusOr<Backend*> GetBackend(int index) {
  const int count = VisibleDeviceCount();
  if (index < 0 || index >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpu ", index, " does not exist: ", count, " visible"));
  }
  static std::mutex mu;
  static std::vector<std::unique_ptr<Backend>>* backends =
      new std::vector<std::unique_ptr<Backend>>(static_cast<size_t>(count));
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<Backend>& slot = (*backends)[static_cast<size_t>(index)];
  if (slot == nullptr) {
    // Fails early, with CUDA's reason, when the device cannot be used.
    if (absl::Status s = Context(index).status(); !s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("gpu:", index, " cannot be used: ", s.message()));
    }
    slot = MakeDeviceBackend(std::make_unique<CudaOps>(index), absl::StrCat("gpu:", index));
  }
  return slot.get();
}

absl::StatusOr<GpuInfo> GetGpuInfo(int index) {
  const int count = VisibleDeviceCount();
  if (index < 0 || index >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpu ", index, " does not exist: ", count, " visible"));
  }
  cudaDeviceProp prop;
  RETURN_IF_ERROR(CudaStatus(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties"));
  RETURN_IF_ERROR(Context(index).status());
  size_t free_bytes = 0, total_bytes = 0;
  RETURN_IF_ERROR(CudaStatus(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo"));
  GpuInfo info;
  info.name = prop.name;
  info.total_bytes = static_cast<int64_t>(total_bytes);
  info.free_bytes = static_cast<int64_t>(free_bytes);
  return info;
}

absl::StatusOr<CUstream_st*> ThreadStream(int index) {
  ASSIGN_OR_RETURN(ThreadContext * c, Context(index));
  return c->stream;
}

}  // namespace cajal::cuda
