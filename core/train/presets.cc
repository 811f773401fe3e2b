// Preset architectures, adapted to the input shape and the number of outputs.
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/train/job.h"

namespace cajal {

absl::StatusOr<std::vector<LayerSpec>> PresetLayers(Preset preset, const Shape& /*input*/,
                                                    int classes) {
  const ActivationSpec relu{Activation::kRelu};
  switch (preset) {
    case Preset::kPerceptron:
      // One threshold unit for two classes, else one per class (one-vs-rest).
      return std::vector<LayerSpec>{DenseSpec{classes == 2 ? 1 : classes}, ThresholdSpec{}};
    case Preset::kMlp:
      return std::vector<LayerSpec>{DenseSpec{256}, relu, DenseSpec{128}, relu,
                                    DenseSpec{classes}};
    default:
      return absl::UnimplementedError(
          "model.preset: this preset needs layers the core does not provide yet");
  }
}

}  // namespace cajal
