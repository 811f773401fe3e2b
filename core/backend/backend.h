// The backend boundary: what a device must provide to run a network.
//
// A Backend owns the memory its kernels compute on (Allocate), compiles one layer, for one
// batch size and mode, into a Kernel bound to fixed buffers, and runs the few whole-buffer
// operations the training loop needs (the loss, the optimizer update, gradient scaling). The
// Network calls Forward on every kernel in order and Backward in reverse. All primitives, plans
// and scratch memory are created in MakeKernel/MakeLoss, never inside a step.
//
//   Backend* backend = CpuBackend();               // or GetBackend(...) (backend/registry.h)
//   ASSIGN_OR_RETURN(DeviceBuffer x, backend->Allocate(64 * 784 * sizeof(float)));
//   ASSIGN_OR_RETURN(std::unique_ptr<Kernel> k, backend->MakeKernel(DenseSpec{256}, args));
//   RETURN_IF_ERROR(k->Forward(/*step=*/1));
//
// Buffers hold row-major tensors (N, shape...) of float (labels: int32) in the device's memory:
// the oneDNN backend's is host memory (host_visible() is true, copies are memcpy); the CUDA
// backend's is device memory, reached from the host only through CopyToDevice/CopyToHost.
//
// Errors: every call returns a Status instead of throwing. kResourceExhausted when memory runs
// out (the message says how much was asked for), kUnimplemented for a layer the backend cannot
// run, kInvalidArgument for an unsupported configuration, kInternal for a library failure (the
// message names the library call and the layer).
//
// Thread safety: a Backend may be shared by networks on different threads; a Kernel or
// LossKernel belongs to one network and is used by one thread at a time.
#ifndef CAJAL_CORE_BACKEND_BACKEND_H_
#define CAJAL_CORE_BACKEND_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/layers/layers.h"
#include "core/loss/loss.h"
#include "core/optim/update.h"
#include "core/tensor/tensor.h"

namespace cajal {

class Collective;

// Whether a kernel is built for training (saves what backward needs, dropout active, batch
// statistics) or for evaluation.
enum class Mode { kTrain, kEval };

// One parameter tensor bound to a kernel: its short name within the layer ("weight", "bias",
// "running_mean", "weight_ih_l1_reverse", ...: ParamDecl::name without "layers.<i>.<kind>."),
// its values and its gradient, in the backend's memory.
struct ParamBinding {
  std::string name;
  float* value = nullptr;
  float* grad = nullptr;
};

// Everything a kernel is bound to when it is made. Pointers stay valid for the kernel's life.
struct KernelArgs {
  int64_t batch = 0;
  Shape input;   // one example, without the batch dimension
  Shape output;  // one example
  Mode mode = Mode::kTrain;
  uint64_t seed = 0;  // the job's seed; stochastic layers draw from (seed, layer, step, index)
  int layer = 0;      // the layer's index in the network
  const float* src = nullptr;       // (batch, input...)
  float* dst = nullptr;             // (batch, output...)
  const float* diff_dst = nullptr;  // (batch, output...); training only
  float* diff_src = nullptr;        // (batch, input...); null: the input needs no gradient
  std::vector<ParamBinding> params;
  // Data-parallel training: batch norm with training.sync_batch_norm reduces its statistics
  // over this collective (null: per-process statistics).
  Collective* sync_batch_norm = nullptr;

  // The value or gradient of the parameter called `name`, or null when the layer has none
  // (a dense layer without bias).
  float* value(std::string_view name) const;
  float* grad(std::string_view name) const;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  // dst = layer(src). `step` seeds stochastic layers so a step is reproducible.
  virtual absl::Status Forward(int64_t step) = 0;
  // Writes (does not accumulate) the parameter gradients and, when diff_src is bound, the
  // input gradient. Needs the Forward of the same step to have run.
  virtual absl::Status Backward() = 0;
};

// The loss over a batch of network outputs x (n, d) in the backend's memory, with the
// gradient of each example's loss scaled by `grad_scale` (1/n for the batch mean; 1/(global
// batch) in data-parallel training) written to `grad` when it is not null. Targets are in the
// backend's memory too. Returns the summed loss and the number of correct predictions (see
// loss/loss.h), as host values.
class LossKernel {
 public:
  virtual ~LossKernel() = default;
  virtual absl::StatusOr<LossOutput> Compute(const float* x, int64_t n, const LossTargets& targets,
                                             double grad_scale, float* grad) = 0;
};

// Host staging for data batches on a device whose memory the host cannot reach
// (Backend::host_visible() false): buffers to gather a batch into, and a copy to the device
// that is ordered like a kernel launch without making the host wait. On a GPU the buffers are
// pinned and double-buffered, so the host gathers the next batch while the device still runs
// the current step, and the transfer runs on a copy engine, overlapped with that step.
//
//   RETURN_IF_ERROR(upload->Acquire());
//   Gather(static_cast<float*>(upload->host(0)), ...);
//   RETURN_IF_ERROR(upload->Send(0, plan->input(), bytes));
//   RETURN_IF_ERROR(plan->Forward(step));  // reads the new batch
//
// Belongs to one thread.
class BatchUpload {
 public:
  virtual ~BatchUpload() = default;
  // Makes the next set of host buffers current; waits (rarely) until the upload that last
  // read them has finished reading.
  virtual absl::Status Acquire() = 0;
  // The current host buffer of part `part`, of the size given when it was made.
  virtual void* host(int part) const = 0;
  // Copies the first `bytes` of part `part`'s current host buffer to device memory `dst`,
  // after every kernel launched before this call (which may still read dst) and before every
  // kernel launched after it.
  virtual absl::Status Send(int part, void* dst, size_t bytes) = 0;
};

enum class DeviceKind { kCpu, kGpu };

class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu", "gpu:0", ...
  virtual std::string name() const = 0;
  virtual DeviceKind kind() const = 0;

  // ---- Memory.
  // `bytes` of zero-filled device memory. kResourceExhausted when there is not enough.
  virtual absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) = 0;
  // Host memory the device copies from fastest (pinned on a GPU; plain on the CPU).
  virtual absl::StatusOr<DeviceBuffer> AllocateHost(size_t bytes) = 0;
  // Whether the host may read and write device buffers directly (then the copies below are
  // plain memcpy and callers may skip them).
  virtual bool host_visible() const = 0;
  // Copies; ordered with the kernels launched before them and complete when they return.
  virtual absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual absl::Status CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  // Waits until every kernel launched so far has finished (a no-op on the CPU).
  virtual absl::Status Synchronize() = 0;
  // Staging for data batches of parts of at most part_bytes[i] bytes each, made once per
  // job. The default: one set of AllocateHost buffers, sent with CopyToDevice.
  virtual absl::StatusOr<std::unique_ptr<BatchUpload>> MakeBatchUpload(
      const std::vector<size_t>& part_bytes);

  // ---- Kernels.
  // Compiles `layer`. Errors: kUnimplemented for a layer this backend cannot run,
  // kInvalidArgument for an unsupported configuration, kResourceExhausted for memory.
  virtual absl::StatusOr<std::unique_ptr<Kernel>> MakeKernel(const LayerSpec& layer,
                                                             const KernelArgs& args) = 0;
  // The loss for batches of at most `max_batch` examples of `d` outputs.
  virtual absl::StatusOr<std::unique_ptr<LossKernel>> MakeLoss(const LossConfig& config,
                                                               int64_t max_batch, int64_t d) = 0;
  // Bytes a kernel for `layer` would allocate besides the plan's activations and gradients
  // (workspaces, saved masks and statistics, reordered weights, scratch), computed without
  // allocating anything: what the memory estimate (train/memory.h) counts for it.
  virtual int64_t KernelBytes(const LayerSpec& layer, const KernelArgs& args) const = 0;

  // ---- Whole-buffer operations on device memory.
  // Σ x[i]² over n values (for gradient clipping), as a host value.
  virtual absl::StatusOr<double> SumOfSquares(const float* x, int64_t n) = 0;
  // x[i] *= a.
  virtual absl::Status Scale(float* x, int64_t n, float a) = 0;
  // One optimizer update of n parameters p from gradients g (optim/update.h), with state
  // buffers s0 and s1 as the kind needs them (null otherwise).
  virtual absl::Status ApplyUpdate(const UpdateParams& update, float* p, const float* g, float* s0,
                                   float* s1, int64_t n) = 0;
};

// The CPU backend (oneDNN). Never null; shared by all networks of the process.
Backend* CpuBackend();

}  // namespace cajal

#endif  // CAJAL_CORE_BACKEND_BACKEND_H_
