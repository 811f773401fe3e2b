// Helpers shared by the oneDNN kernels: the CPU engine, plain memory descriptors, and a kernel
// made of primitive steps built once and executed many times.
#ifndef CAJAL_CORE_BACKEND_ONEDNN_ONEDNN_UTIL_H_
#define CAJAL_CORE_BACKEND_ONEDNN_ONEDNN_UTIL_H_

#include <functional>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "core/backend/backend.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace cajal::onednn {

// The process-wide CPU engine.
const dnnl::engine& Engine();

// (batch, shape...) as oneDNN dims.
dnnl::memory::dims BatchDims(int64_t batch, const Shape& shape);

// A row-major (plain) f32 descriptor of any rank from 1 to 5.
dnnl::memory::desc PlainDesc(const dnnl::memory::dims& dims);

// Wraps caller-owned memory; oneDNN does not take ownership.
dnnl::memory Wrap(const dnnl::memory::desc& md, const float* data);

// Converts a oneDNN exception into a status naming what was being built.
absl::Status FromDnnlError(const dnnl::error& e, const char* what);
// Runs `steps` on `stream` and waits; a oneDNN failure becomes kInternal naming `what`.
absl::Status Execute(dnnl::stream& stream, std::vector<struct Step>& steps, const char* what);

// One primitive execution with its arguments, fixed at build time.
struct Step {
  dnnl::primitive primitive;
  std::unordered_map<int, dnnl::memory> args;
};

// A kernel whose forward and backward passes are sequences of oneDNN primitives.
class PrimitiveKernel : public Kernel {
 public:
  // `what` names the layer kind in errors ("dense").
  explicit PrimitiveKernel(const char* what = "layer") : stream_(Engine()), what_(what) {}
  absl::Status Forward(int64_t step) override;
  absl::Status Backward() override;

  std::vector<Step> forward;
  std::vector<Step> backward;
  // Scratch memory (workspaces, unused input gradients) owned by the kernel.
  std::vector<dnnl::memory> owned;

 private:
  dnnl::stream stream_;
  const char* what_;
};

// In training, a forward primitive that keeps a workspace for its backward (max pooling's arg
// max, LRN's scales) gets one, owned by `kernel` and bound to `fwd`; returns it, or an empty
// memory when there is none.
dnnl::memory AddWorkspace(const dnnl::primitive_desc_base& fwd_pd, bool train,
                          PrimitiveKernel* kernel, Step* fwd);

}  // namespace cajal::onednn

#endif  // CAJAL_CORE_BACKEND_ONEDNN_ONEDNN_UTIL_H_
