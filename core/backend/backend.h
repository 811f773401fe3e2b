// The backend boundary: what a device must provide to run a network.
//
// A Backend compiles one layer, for one batch size and mode, into a Kernel bound to fixed
// buffers; the Network calls Forward on every kernel in order and Backward in reverse. All
// primitives, plans and scratch memory are created in MakeKernel, never inside a step.
// Buffers hold row-major float tensors (N, shape...) in the device's memory: the oneDNN
// backend uses host memory; a CUDA backend would use device memory (see docs/architecture.md).
//
// Thread safety: a Backend may be shared by networks on different threads; a Kernel belongs to
// one network and is used by one thread at a time.
#ifndef CAJAL_CORE_BACKEND_BACKEND_H_
#define CAJAL_CORE_BACKEND_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/layers/layers.h"
#include "core/tensor/tensor.h"

namespace cajal {

// Whether a kernel is built for training (saves what backward needs, dropout active, batch
// statistics) or for evaluation.
enum class Mode { kTrain, kEval };

// Everything a kernel is bound to when it is made. Pointers stay valid for the kernel's life.
struct KernelArgs {
  int64_t batch = 0;
  Shape input;   // one example, without the batch dimension
  Shape output;  // one example
  Mode mode = Mode::kTrain;
  uint64_t seed = 0;           // for stochastic layers (dropout); combined with the step number
  const float* src = nullptr;  // (batch, input...)
  float* dst = nullptr;        // (batch, output...)
  const float* diff_dst = nullptr;  // (batch, output...); training only
  float* diff_src = nullptr;        // (batch, input...); null: the input needs no gradient
  // The layer's parameters in the order DeclareParams gives them, with their gradients.
  std::vector<float*> params;
  std::vector<float*> grads;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  // dst = layer(src). `step` seeds stochastic layers so a step is reproducible.
  virtual void Forward(int64_t step) = 0;
  // Writes (does not accumulate) the parameter gradients and, when diff_src is bound, the
  // input gradient. Needs the Forward of the same step to have run.
  virtual void Backward() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Compiles `layer`. Errors: kUnimplemented for a layer this backend cannot run,
  // kInvalidArgument for an unsupported configuration, kResourceExhausted for memory.
  virtual absl::StatusOr<std::unique_ptr<Kernel>> MakeKernel(const LayerSpec& layer,
                                                             const KernelArgs& args) = 0;
};

// The CPU backend (oneDNN). Never null; shared by all networks of the process.
Backend* CpuBackend();

}  // namespace cajal

#endif  // CAJAL_CORE_BACKEND_BACKEND_H_
