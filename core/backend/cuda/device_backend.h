// The device backend: the CUDA backend's layer algorithms, written against DeviceOps
// (device_ops.h) rather than against CUDA, so that the same code runs on a GPU (the CUDA
// backend, cuda_backend.h) and, in the CPU tests, on HostOps — an emulation of the device by
// plain loops in host memory that the host may not touch directly (host_visible() is false,
// so the data path uploads batches as it does to a GPU).
//
//   std::unique_ptr<Backend> gpu = MakeDeviceBackend(std::move(cuda_ops), "gpu:0");
//   std::unique_ptr<Backend> emulated = MakeEmulatedDeviceBackend();  // tests
//
// Every layer kind the CPU backend runs: dense (GEMMs), conv2d (DeviceOps::MakeConv2d: cuDNN),
// max/avg pooling, LRN, batch norm, dropout, flatten, activations, threshold, rnn/lstm/gru
// (GEMMs and the cells of recurrent_ops.h), the losses and every optimizer update (element
// operations). Not supported: batch norm with training.sync_batch_norm (kUnimplemented).
// Thread safety as Backend's; the device work of each host thread is ordered on its own.
#ifndef CAJAL_CORE_BACKEND_CUDA_DEVICE_BACKEND_H_
#define CAJAL_CORE_BACKEND_CUDA_DEVICE_BACKEND_H_

#include <memory>
#include <string>

#include "core/backend/backend.h"
#include "core/backend/cuda/device_ops.h"

namespace cajal {

// A GPU-kind backend called `name` computing with `ops`.
std::unique_ptr<Backend> MakeDeviceBackend(std::unique_ptr<device::DeviceOps> ops,
                                           std::string name);

// The device backend on HostOps: name "emulated-gpu", kind kGpu, no convolution.
std::unique_ptr<Backend> MakeEmulatedDeviceBackend();

}  // namespace cajal

#endif  // CAJAL_CORE_BACKEND_CUDA_DEVICE_BACKEND_H_
