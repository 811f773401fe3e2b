// Preset architectures, adapted to the input shape and the number of outputs.
#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/train/job.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

// The spatial size a window leaves: (size + 2·padding − kernel)/stride + 1.
int64_t After(int64_t size, int kernel, int stride, int padding) {
  return (size + 2 * padding - kernel) / stride + 1;
}

absl::Status NeedsImage(const char* preset, const Shape& input) {
  if (input.size() == 3) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "model.preset: ", preset, " needs image examples (C, H, W), but the data has shape ",
      ShapeToString(input), "; give the data source a shape (data.train.shape: [C, H, W])"));
}

// LeNet-5 (LeCun et al. 1998) with ReLU and max pooling:
//   conv 6@5×5 → relu → maxpool 2 → conv 16@5×5 → relu → maxpool 2 → flatten →
//   dense 120 → relu → dense 84 → relu → dense classes.
// Adapted to the input (C, H, W) with s = min(H, W): the first conv pads by 2 when s < 32, so
// a 28×28 image sees LeCun's 32×32 geometry (28 → 14 → 10 → 5); the second conv pads by 2 when
// its input is smaller than 5×5; a pool is left out when its input is smaller than 2×2.
absl::StatusOr<std::vector<LayerSpec>> Lenet(const Shape& input, int classes) {
  RETURN_IF_ERROR(NeedsImage("lenet", input));
  const ActivationSpec relu{Activation::kRelu};
  std::vector<LayerSpec> layers;
  int64_t s = std::min(input[1], input[2]);
  auto stage = [&](int filters, int padding) {
    layers.push_back(Conv2dSpec{filters, /*kernel=*/5, /*stride=*/1, padding});
    layers.push_back(relu);
    s = After(s, 5, 1, padding);
    if (s >= 2) {
      layers.push_back(Pool2dSpec{/*max=*/true, /*kernel=*/2, /*stride=*/2});
      s = After(s, 2, 2, 0);
    }
  };
  stage(6, s < 32 ? 2 : 0);
  stage(16, s < 5 ? 2 : 0);
  layers.insert(layers.end(),
                {FlattenSpec{}, DenseSpec{120}, relu, DenseSpec{84}, relu, DenseSpec{classes}});
  return layers;
}

// AlexNet (Krizhevsky et al. 2012) as one network with the paper's two towers as groups=2:
//   conv 96@11×11/4 → relu → lrn → maxpool 3/2 → conv 256@5×5 p2 g2 → relu → lrn → maxpool 3/2
//   → conv 384@3×3 p1 → relu → conv 384@3×3 p1 g2 → relu → conv 256@3×3 p1 g2 → relu →
//   maxpool 3/2 → flatten → dense 4096 → relu → dropout 0.5 → dense 4096 → relu →
//   dropout 0.5 → dense classes;  at 227×227×3: 55 → 27 → 27 → 13 → 13 → 6, 9216 features.
// Inputs smaller than 67×67 (the least that leaves every pool a 3×3 window) get the same
// structure scaled down: the first conv is 5×5, stride 1, padding 2 (a 28×28 image keeps its
// resolution), every conv and dense layer has a quarter of the filters/units (24, 64, 96, 96,
// 64; 1024, 1024), and a pool is left out when its input is smaller than 3×3.
absl::StatusOr<std::vector<LayerSpec>> Alexnet(const Shape& input, int classes) {
  RETURN_IF_ERROR(NeedsImage("alexnet", input));
  const ActivationSpec relu{Activation::kRelu};
  const LrnSpec lrn{/*size=*/5, /*alpha=*/1e-4f, /*beta=*/0.75f, /*k=*/2.0f};
  int64_t s = std::min(input[1], input[2]);
  const bool full = s >= 67;
  const int scale = full ? 1 : 4;
  std::vector<LayerSpec> layers;
  auto pool = [&] {
    if (s < 3) return;
    layers.push_back(Pool2dSpec{/*max=*/true, /*kernel=*/3, /*stride=*/2});
    s = After(s, 3, 2, 0);
  };
  if (full) {
    layers.push_back(Conv2dSpec{96, /*kernel=*/11, /*stride=*/4});
    s = After(s, 11, 4, 0);
  } else {
    layers.push_back(Conv2dSpec{96 / scale, /*kernel=*/5, /*stride=*/1, /*padding=*/2});
  }
  layers.insert(layers.end(), {relu, lrn});
  pool();
  layers.insert(layers.end(),
                {Conv2dSpec{256 / scale, 5, 1, /*padding=*/2, 1, /*groups=*/2}, relu, lrn});
  pool();
  layers.insert(layers.end(), {Conv2dSpec{384 / scale, 3, 1, /*padding=*/1}, relu,
                               Conv2dSpec{384 / scale, 3, 1, 1, 1, /*groups=*/2}, relu,
                               Conv2dSpec{256 / scale, 3, 1, 1, 1, /*groups=*/2}, relu});
  pool();
  const int units = 4096 / scale;
  layers.insert(layers.end(), {FlattenSpec{}, DenseSpec{units}, relu, DropoutSpec{0.5f},
                               DenseSpec{units}, relu, DropoutSpec{0.5f}, DenseSpec{classes}});
  return layers;
}

}  // namespace

absl::StatusOr<std::vector<LayerSpec>> PresetLayers(Preset preset, const Shape& input,
                                                    int classes) {
  const ActivationSpec relu{Activation::kRelu};
  switch (preset) {
    case Preset::kPerceptron:
      // One threshold unit for two classes, else one per class (one-vs-rest).
      return std::vector<LayerSpec>{DenseSpec{classes == 2 ? 1 : classes}, ThresholdSpec{}};
    case Preset::kMlp:
      return std::vector<LayerSpec>{DenseSpec{256}, relu, DenseSpec{128}, relu, DenseSpec{classes}};
    case Preset::kLenet:
      return Lenet(input, classes);
    case Preset::kAlexnet:
      return Alexnet(input, classes);
    case Preset::kRnn:
    case Preset::kLstm:
    case Preset::kGru: {
      // One recurrent layer of 128 over the sequence (an image's rows), last step -> classes.
      // A flat input gets InferShapes' error naming the layer and the shape.
      const RecurrentCell cell = preset == Preset::kRnn    ? RecurrentCell::kRnnTanh
                                 : preset == Preset::kLstm ? RecurrentCell::kLstm
                                                           : RecurrentCell::kGru;
      RecurrentSpec recurrent;
      recurrent.cell = cell;
      recurrent.units = 128;
      return std::vector<LayerSpec>{recurrent, DenseSpec{classes}};
    }
    case Preset::kAutoencoder: {
      // A deep autoencoder in the style of Hinton & Salakhutdinov (2006) and Martens (2010):
      // sigmoid encoder F → F·256/784 → /4 → /4 (a linear code layer), the mirror-image
      // decoder, and sigmoid outputs of F values: 784-256-64-16-64-256-784 for 28×28 images.
      // Its targets are its inputs (scale them to [0, 1]: data.normalize scale).
      const int64_t f = NumElements(input);
      const int h1 = static_cast<int>(std::max<int64_t>(4, f * 256 / 784));
      const int h2 = std::max(2, h1 / 4);
      const int code = std::max(2, h2 / 4);
      const ActivationSpec sigmoid{Activation::kSigmoid};
      return std::vector<LayerSpec>{
          DenseSpec{h1}, sigmoid, DenseSpec{h2}, sigmoid, DenseSpec{code},
          DenseSpec{h2}, sigmoid, DenseSpec{h1}, sigmoid, DenseSpec{static_cast<int>(f)},
          sigmoid};
    }
    default:
      return absl::UnimplementedError(
          "model.preset: this preset needs layers the core does not provide yet");
  }
}

}  // namespace cajal
