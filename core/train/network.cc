#include "core/train/network.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace cajal {

void Plan::Forward(int64_t step) {
  for (auto& k : kernels_) k->Forward(step);
}

void Plan::Backward(int from) {
  for (int i = from - 1; i >= 0; --i) kernels_[i]->Backward();
}

absl::StatusOr<std::unique_ptr<Network>> Network::Create(std::vector<LayerSpec> layers, Shape input,
                                                         Backend* backend, uint64_t seed) {
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
  net->params_.Allocate();
  net->layers_ = std::move(layers);
  net->backend_ = backend;
  net->seed_ = seed;
  return net;
}

absl::StatusOr<Plan*> Network::GetPlan(int64_t batch, Mode mode) {
  auto key = std::make_pair(batch, mode);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();
  auto plan = std::make_unique<Plan>();
  plan->batch_ = batch;
  const size_t n = layers_.size();
  for (size_t i = 0; i <= n; ++i) {
    const size_t count = static_cast<size_t>(batch * NumElements(shapes_[i]));
    plan->activations_.emplace_back(count);
    // The input needs no gradient; the others do in training.
    plan->diffs_.emplace_back(mode == Mode::kTrain && i > 0 ? count : 0);
  }
  for (size_t i = 0; i < n; ++i) {
    KernelArgs args;
    args.batch = batch;
    args.input = shapes_[i];
    args.output = shapes_[i + 1];
    args.mode = mode;
    args.seed = seed_ * 1000003 + i;
    args.src = plan->activations_[i].data();
    args.dst = plan->activations_[i + 1].data();
    if (mode == Mode::kTrain) {
      args.diff_dst = plan->diffs_[i + 1].data();
      args.diff_src = i > 0 ? plan->diffs_[i].data() : nullptr;
    }
    for (int id : layer_params_[i]) {
      args.params.push_back(params_.value(id));
      args.grads.push_back(params_.grad(id));
    }
    absl::StatusOr<std::unique_ptr<Kernel>> kernel = backend_->MakeKernel(layers_[i], args);
    if (!kernel.ok()) {
      return absl::Status(kernel.status().code(),
                          absl::StrCat("model.layers.", i, " (", LayerKindName(layers_[i]),
                                       "): ", kernel.status().message()));
    }
    plan->kernels_.push_back(*std::move(kernel));
  }
  Plan* result = plan.get();
  plans_[key] = std::move(plan);
  return result;
}

}  // namespace cajal
