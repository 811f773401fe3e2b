#include "core/train/network.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

absl::Status InLayer(const std::vector<LayerSpec>& layers, int i, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(LayerPrefix(layers, i), s.message()));
}

}  // namespace

std::string LayerPrefix(const std::vector<LayerSpec>& layers, int i) {
  return absl::StrCat("model.layers.", i, " (", LayerKindName(layers[i]), "): ");
}

absl::Status Plan::Forward(int64_t step) {
  for (size_t i = 0; i < kernels_.size(); ++i) {
    RETURN_IF_ERROR(InLayer(*layers_, static_cast<int>(i), kernels_[i]->Forward(step)));
  }
  return absl::OkStatus();
}

absl::Status Plan::Backward(int from, BackwardListener* listener) {
  for (int i = from - 1; i >= 0; --i) {
    RETURN_IF_ERROR(InLayer(*layers_, i, kernels_[i]->Backward()));
    if (listener != nullptr) RETURN_IF_ERROR(listener->OnLayerBackward(i));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Network>> Network::Create(std::vector<LayerSpec> layers, Shape input,
                                                         Backend* backend,
                                                         const NetworkOptions& options) {
  if (layers.empty()) return absl::InvalidArgumentError("model.layers: must not be empty");
  std::unique_ptr<Network> net(new Network());
  ASSIGN_OR_RETURN(net->shapes_, InferShapes(layers, input));
  for (size_t i = 0; i < layers.size(); ++i) {
    std::vector<ParamDecl> decls;
    DeclareParams(layers[i], static_cast<int>(i), net->shapes_[i], net->shapes_[i + 1], &decls);
    std::vector<int> ids;
    for (ParamDecl& d : decls) ids.push_back(net->params_.Declare(std::move(d)));
    net->layer_params_.push_back(std::move(ids));
  }
  if (absl::Status s = net->params_.Allocate(backend); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("the network's parameters (", net->params_.total(),
                                               " values): ", s.message()));
  }
  net->layers_ = std::move(layers);
  net->backend_ = backend;
  net->options_ = options;
  return net;
}

absl::StatusOr<Plan*> Network::GetPlan(int64_t batch, Mode mode) {
  auto key = std::make_pair(batch, mode);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();
  auto plan = std::make_unique<Plan>();
  plan->batch_ = batch;
  plan->layers_ = &layers_;
  const size_t n = layers_.size();
  for (size_t i = 0; i <= n; ++i) {
    const size_t bytes = static_cast<size_t>(batch * NumElements(shapes_[i])) * sizeof(float);
    // The input needs no gradient; the others do in training.
    const size_t diff_bytes = mode == Mode::kTrain && i > 0 ? bytes : 0;
    absl::StatusOr<DeviceBuffer> a = backend_->Allocate(bytes);
    absl::StatusOr<DeviceBuffer> d = a.ok() ? backend_->Allocate(diff_bytes) : a.status();
    if (!d.ok()) {
      const std::string what =
          i == 0 ? std::string("the input batch: ")
                 : LayerPrefix(layers_, static_cast<int>(i - 1)) + "its output batch: ";
      return absl::Status(d.status().code(), absl::StrCat(what, d.status().message()));
    }
    plan->activations_.push_back(*std::move(a));
    plan->diffs_.push_back(*std::move(d));
  }
  for (size_t i = 0; i < n; ++i) {
    KernelArgs args;
    args.batch = batch;
    args.input = shapes_[i];
    args.output = shapes_[i + 1];
    args.mode = mode;
    args.seed = options_.seed;
    args.layer = static_cast<int>(i);
    args.src = plan->activations_[i].floats();
    args.dst = plan->activations_[i + 1].floats();
    if (mode == Mode::kTrain) {
      args.diff_dst = plan->diffs_[i + 1].floats();
      args.diff_src = i > 0 ? plan->diffs_[i].floats() : nullptr;
      args.sync_batch_norm = options_.sync_batch_norm;
    }
    const std::string prefix = absl::StrCat("layers.", i, ".", LayerKindName(layers_[i]), ".");
    for (int id : layer_params_[i]) {
      args.params.push_back(
          {params_.decl(id).name.substr(prefix.size()), params_.value(id), params_.grad(id)});
    }
    absl::StatusOr<std::unique_ptr<Kernel>> kernel = backend_->MakeKernel(layers_[i], args);
    if (!kernel.ok()) {
      return InLayer(layers_, static_cast<int>(i), kernel.status());
    }
    plan->kernels_.push_back(*std::move(kernel));
  }
  Plan* result = plan.get();
  plans_[key] = std::move(plan);
  return result;
}

}  // namespace cajal
