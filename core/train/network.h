// A sequential network: the layers, their parameters in one ParamStore, and one compiled Plan
// per (batch size, mode). The plan is the tape: Forward runs the kernels in order, recording
// every activation in its own buffer; Backward replays them in reverse.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Network> net, Network::Create(layers, {784}, CpuBackend()));
//   RETURN_IF_ERROR(InitializeParams(init, seed, &net->params()));
//   ASSIGN_OR_RETURN(Plan* plan, net->GetPlan(/*batch=*/64, Mode::kTrain));
//   GatherBatch(..., plan->input(), ...);   // device memory: through Backend::CopyToDevice
//   RETURN_IF_ERROR(plan->Forward(step));
//   loss->Compute(plan->activation(k), ..., plan->diff(k));
//   RETURN_IF_ERROR(plan->Backward(/*from=*/k));  // gradients land in net->params().grads()
//
// Every buffer is in the backend's memory. Not thread-safe: one network belongs to one
// training thread.
#ifndef CAJAL_CORE_TRAIN_NETWORK_H_
#define CAJAL_CORE_TRAIN_NETWORK_H_

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/layers/layers.h"
#include "core/tensor/tensor.h"

namespace cajal {

// Told after each layer's backward pass, while the layers below it still run: the layer's
// parameter gradients are final from then on (data-parallel training starts reducing them).
class BackwardListener {
 public:
  virtual ~BackwardListener() = default;
  virtual absl::Status OnLayerBackward(int layer) = 0;
};

// The kernels and buffers of a network for one batch size and mode.
class Plan {
 public:
  int64_t batch() const { return batch_; }
  // activation(0) is the input (batch, input shape); activation(i + 1) is layer i's output.
  float* input() { return activations_[0].floats(); }
  float* activation(int i) { return activations_[i].floats(); }
  const float* output() const { return activations_.back().floats(); }
  // diff(i): the gradient of the loss with respect to activation(i), for i >= 1.
  float* diff(int i) { return diffs_[i].floats(); }

  // Errors name the layer ("model.layers.3 (conv2d): ...").
  absl::Status Forward(int64_t step);
  // Backpropagates from diff(from) through layers from−1 … 0, telling `listener` (if any)
  // after each. Training plans only.
  absl::Status Backward(int from, BackwardListener* listener = nullptr);

 private:
  friend class Network;
  int64_t batch_ = 0;
  const std::vector<LayerSpec>* layers_ = nullptr;
  std::vector<DeviceBuffer> activations_;
  std::vector<DeviceBuffer> diffs_;
  std::vector<std::unique_ptr<Kernel>> kernels_;
};

struct NetworkOptions {
  uint64_t seed = 0;  // stochastic layers draw from (seed, layer, step, index)
  // Data-parallel training with training.sync_batch_norm: batch norm reduces its statistics
  // over this collective.
  Collective* sync_batch_norm = nullptr;
};

class Network {
 public:
  // Infers every shape, declares every parameter and allocates them in the backend's memory;
  // compiles nothing yet. Errors name the layer ("model.layers.3 (conv2d): ...");
  // kResourceExhausted when the parameters do not fit.
  static absl::StatusOr<std::unique_ptr<Network>> Create(std::vector<LayerSpec> layers, Shape input,
                                                         Backend* backend,
                                                         const NetworkOptions& options = {});

  const std::vector<LayerSpec>& layers() const { return layers_; }
  const Shape& input_shape() const { return shapes_.front(); }
  const Shape& output_shape() const { return shapes_.back(); }
  // shapes()[i] is activation i's shape per example.
  const std::vector<Shape>& shapes() const { return shapes_; }
  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }
  // The store indices of layer i's parameters.
  const std::vector<int>& layer_params(int i) const { return layer_params_[i]; }
  Backend* backend() const { return backend_; }

  // The plan for (batch, mode), compiled on first use and kept. Errors come from the backend.
  absl::StatusOr<Plan*> GetPlan(int64_t batch, Mode mode);

 private:
  Network() = default;

  std::vector<LayerSpec> layers_;
  std::vector<Shape> shapes_;
  std::vector<std::vector<int>> layer_params_;  // store indices per layer
  ParamStore params_;
  Backend* backend_ = nullptr;
  NetworkOptions options_;
  std::map<std::pair<int64_t, Mode>, std::unique_ptr<Plan>> plans_;
};

// "model.layers.<i> (<kind>): " for errors about layer i.
std::string LayerPrefix(const std::vector<LayerSpec>& layers, int i);

}  // namespace cajal

#endif  // CAJAL_CORE_TRAIN_NETWORK_H_
