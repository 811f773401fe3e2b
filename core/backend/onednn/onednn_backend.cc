// The CPU backend: dispatches each layer kind to its oneDNN kernel maker.
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/backend/backend.h"
#include "core/backend/onednn/kernels.h"

namespace cajal {
namespace {

class OneDnnBackend : public Backend {
 public:
  std::string name() const override { return "cpu"; }

  absl::StatusOr<std::unique_ptr<Kernel>> MakeKernel(const LayerSpec& layer,
                                                     const KernelArgs& args) override {
    if (const auto* d = std::get_if<DenseSpec>(&layer)) return onednn::MakeDense(*d, args);
    if (const auto* a = std::get_if<ActivationSpec>(&layer))
      return onednn::MakeActivation(*a, args);
    if (const auto* t = std::get_if<ThresholdSpec>(&layer)) return onednn::MakeThreshold(*t, args);
    if (std::holds_alternative<FlattenSpec>(layer)) return onednn::MakeFlatten(args);
    if (const auto* d = std::get_if<DropoutSpec>(&layer)) return onednn::MakeDropout(*d, args);
    if (const auto* r = std::get_if<RecurrentSpec>(&layer)) return onednn::MakeRecurrent(*r, args);
    if (const auto* c = std::get_if<Conv2dSpec>(&layer)) return onednn::MakeConv2d(*c, args);
    if (const auto* p = std::get_if<Pool2dSpec>(&layer)) return onednn::MakePool2d(*p, args);
    if (const auto* n = std::get_if<LrnSpec>(&layer)) return onednn::MakeLrn(*n, args);
    if (const auto* b = std::get_if<BatchNormSpec>(&layer)) return onednn::MakeBatchNorm(*b, args);
    return absl::UnimplementedError(
        absl::StrCat("the cpu backend cannot run ", LayerKindName(layer), " layers yet"));
  }
};

}  // namespace

Backend* CpuBackend() {
  static Backend* backend = new OneDnnBackend();
  return backend;
}

}  // namespace cajal
