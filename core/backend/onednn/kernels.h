// The oneDNN backend's kernel makers, one per layer kind. Each validates what the backend
// supports and builds every primitive for the batch size and mode in `args`.
#ifndef CAJAL_CORE_BACKEND_ONEDNN_KERNELS_H_
#define CAJAL_CORE_BACKEND_ONEDNN_KERNELS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"

namespace cajal::onednn {

absl::StatusOr<std::unique_ptr<Kernel>> MakeDense(const DenseSpec& spec, const KernelArgs& args);
absl::StatusOr<std::unique_ptr<Kernel>> MakeActivation(const ActivationSpec& spec,
                                                       const KernelArgs& args);
absl::StatusOr<std::unique_ptr<Kernel>> MakeThreshold(const ThresholdSpec& spec,
                                                      const KernelArgs& args);
absl::StatusOr<std::unique_ptr<Kernel>> MakeFlatten(const KernelArgs& args);
absl::StatusOr<std::unique_ptr<Kernel>> MakeDropout(const DropoutSpec& spec,
                                                    const KernelArgs& args);

}  // namespace cajal::onednn

#endif  // CAJAL_CORE_BACKEND_ONEDNN_KERNELS_H_
