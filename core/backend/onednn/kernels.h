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
absl::StatusOr<std::unique_ptr<Kernel>> MakeConv2d(const Conv2dSpec& spec, const KernelArgs& args);
absl::StatusOr<std::unique_ptr<Kernel>> MakePool2d(const Pool2dSpec& spec, const KernelArgs& args);
absl::StatusOr<std::unique_ptr<Kernel>> MakeLrn(const LrnSpec& spec, const KernelArgs& args);
absl::StatusOr<std::unique_ptr<Kernel>> MakeBatchNorm(const BatchNormSpec& spec,
                                                      const KernelArgs& args);
// Batch norm whose statistics span every rank (KernelArgs::sync_batch_norm, training only);
// sync_batch_norm.cc.
absl::StatusOr<std::unique_ptr<Kernel>> MakeSyncBatchNorm(const BatchNormSpec& spec,
                                                          const KernelArgs& args);
// rnn, lstm (with optional peepholes) and gru layers: MakeLstm where LstmRuns, else
// MakeRecurrentPrimitives.
absl::StatusOr<std::unique_ptr<Kernel>> MakeRecurrent(const RecurrentSpec& spec,
                                                      const KernelArgs& args);
// Every recurrent layer on oneDNN's RNN primitives; see rnn.cc for the parameter mapping.
absl::StatusOr<std::unique_ptr<Kernel>> MakeRecurrentPrimitives(const RecurrentSpec& spec,
                                                                const KernelArgs& args);
// Unidirectional lstm stacks (with or without peepholes) on a GEMM tile of our own and
// dnnl_sgemm; see lstm.cc.
bool LstmRuns(const RecurrentSpec& spec);
absl::StatusOr<std::unique_ptr<Kernel>> MakeLstm(const RecurrentSpec& spec, const KernelArgs& args);

// What the kernel for `layer` allocates of its own (Backend::KernelBytes); kernel_bytes.cc.
int64_t KernelBytes(const LayerSpec& layer, const KernelArgs& args);

}  // namespace cajal::onednn

#endif  // CAJAL_CORE_BACKEND_ONEDNN_KERNELS_H_
