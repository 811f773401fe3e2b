#include "core/backend/cuda/cuda_util.h"

#include <dlfcn.h>

#include <map>
#include <memory>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace cajal::cuda {

absl::Status CudaStatus(cudaError_t error, const char* call) {
  if (error == cudaSuccess) return absl::OkStatus();
  // Non-sticky errors (a failed allocation) stay as the "last error" until read; later calls
  // would otherwise report them again.
  cudaGetLastError();
  const std::string message =
      absl::StrCat(call, " failed: ", cudaGetErrorName(error), ": ", cudaGetErrorString(error));
  switch (error) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(message);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorInitializationError:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<const CublasApi*> Cublas() {
  static const absl::StatusOr<const CublasApi*> api = []() -> absl::StatusOr<const CublasApi*> {
    const std::string name = absl::StrCat("libcublas.so.", CUBLAS_VER_MAJOR);
    void* lib = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("cannot load ", name, ": ", ::dlerror()));
    }
    auto* a = new CublasApi();
    bool found = true;
    auto bind = [&](auto* fn, const char* symbol) {
      *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(::dlsym(lib, symbol));
      found = found && *fn != nullptr;
    };
    bind(&a->create, "cublasCreate_v2");
    bind(&a->destroy, "cublasDestroy_v2");
    bind(&a->set_stream, "cublasSetStream_v2");
    bind(&a->set_math_mode, "cublasSetMathMode");
    bind(&a->sgemm, "cublasSgemm_v2");
    bind(&a->status_name, "cublasGetStatusName");
    bind(&a->status_string, "cublasGetStatusString");
    if (!found) {
      return absl::FailedPreconditionError(absl::StrCat(name, " lacks a function cajal calls"));
    }
    return a;
  }();
  return api;
}

absl::Status CublasStatus(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  absl::StatusOr<const CublasApi*> api = Cublas();
  const std::string message =
      api.ok() ? absl::StrCat(call, " failed: ", (*api)->status_name(status), ": ",
                              (*api)->status_string(status))
               : absl::StrCat(call, " failed: cuBLAS status ", static_cast<int>(status));
  if (status == CUBLAS_STATUS_ALLOC_FAILED) return absl::ResourceExhaustedError(message);
  if (status == CUBLAS_STATUS_NOT_INITIALIZED) return absl::FailedPreconditionError(message);
  return absl::InternalError(message);
}

absl::Status CudnnStatus(cudnnStatus_t status, const char* call) {
  if (status == CUDNN_STATUS_SUCCESS) return absl::OkStatus();
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  std::string message = absl::StrCat(call, " failed: ", cudnnGetErrorString(status));
  if (detail[0] != '\0') absl::StrAppend(&message, " (", detail, ")");
  if (status == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
      status == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::InternalError(message);
}

ThreadContext::~ThreadContext() {
  // Errors here are ignored: at process exit the CUDA runtime may already be unloading.
  if (cudnn != nullptr) cudnnDestroy(cudnn);
  if (cublas != nullptr) {
    if (absl::StatusOr<const CublasApi*> api = Cublas(); api.ok()) (*api)->destroy(cublas);
  }
  if (partials != nullptr) cudaFree(partials);
  if (host_partials != nullptr) cudaFreeHost(host_partials);
  if (copy_stream != nullptr) cudaStreamDestroy(copy_stream);
  if (stream != nullptr) cudaStreamDestroy(stream);
}

namespace {

absl::StatusOr<std::unique_ptr<ThreadContext>> MakeContext(int device) {
  auto c = std::make_unique<ThreadContext>();
  c->device = device;
  // Non-blocking streams: no implicit ordering with the legacy default stream, which other
  // libraries in the process may use.
  RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking),
                             "cudaStreamCreateWithFlags"));
  RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&c->copy_stream, cudaStreamNonBlocking),
                             "cudaStreamCreateWithFlags"));
  ASSIGN_OR_RETURN(const CublasApi* blas, Cublas());
  RETURN_IF_ERROR(CublasStatus(blas->create(&c->cublas), "cublasCreate"));
  RETURN_IF_ERROR(CublasStatus(blas->set_stream(c->cublas, c->stream), "cublasSetStream"));
  // FP32 products in FP32 (the default mode never rounds FP32 inputs to TF32; only
  // CUBLAS_TF32_TENSOR_OP_MATH would), so results compare with the CPU's.
  RETURN_IF_ERROR(
      CublasStatus(blas->set_math_mode(c->cublas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode"));
  RETURN_IF_ERROR(
      CudaStatus(cudaMalloc(reinterpret_cast<void**>(&c->partials), kSquareBlocks * sizeof(double)),
                 "cudaMalloc"));
  RETURN_IF_ERROR(CudaStatus(
      cudaMallocHost(reinterpret_cast<void**>(&c->host_partials), kSquareBlocks * sizeof(double)),
      "cudaMallocHost"));
  return c;
}

}  // namespace

absl::StatusOr<ThreadContext*> Context(int device) {
  thread_local std::map<int, std::unique_ptr<ThreadContext>> contexts;
  thread_local int current = -1;
  if (current != device) {
    RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
    current = device;
  }
  auto it = contexts.find(device);
  if (it == contexts.end()) {
    ASSIGN_OR_RETURN(std::unique_ptr<ThreadContext> c, MakeContext(device));
    it = contexts.emplace(device, std::move(c)).first;
  }
  return it->second.get();
}

absl::StatusOr<cudnnHandle_t> Cudnn(ThreadContext* context) {
  if (context->cudnn == nullptr) {
    cudnnHandle_t handle = nullptr;
    RETURN_IF_ERROR(CudnnStatus(cudnnCreate(&handle), "cudnnCreate"));
    if (absl::Status s = CudnnStatus(cudnnSetStream(handle, context->stream), "cudnnSetStream");
        !s.ok()) {
      cudnnDestroy(handle);
      return s;
    }
    context->cudnn = handle;
  }
  return context->cudnn;
}

}  // namespace cajal::cuda
