#include "core/layers/layers.h"

#include <string>
#include <type_traits>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cajal {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

absl::Status ShapeError(const std::string& what, const Shape& input) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " (input shape ", ShapeToString(input), ")"));
}

// Output size of a sliding window along one dimension, or -1 when the window does not fit.
int64_t WindowOutput(int64_t in, int kernel, int stride, int padding, int dilation) {
  const int64_t span = static_cast<int64_t>(dilation) * (kernel - 1) + 1;
  if (in + 2 * padding < span) return -1;
  return (in + 2 * padding - span) / stride + 1;
}

absl::StatusOr<Shape> ImageOutput(const Shape& input, int channels, int kernel, int stride,
                                  int padding, int dilation) {
  if (input.size() != 3) {
    return ShapeError("needs an image input (C, H, W); add a data shape or remove the layer",
                      input);
  }
  const int64_t h = WindowOutput(input[1], kernel, stride, padding, dilation);
  const int64_t w = WindowOutput(input[2], kernel, stride, padding, dilation);
  if (h <= 0 || w <= 0) {
    return ShapeError(absl::StrCat("kernel ", kernel, " (dilation ", dilation, ", padding ",
                                   padding, ") is larger than the input"),
                      input);
  }
  return Shape{channels, h, w};
}

// PyTorch's nn.RNN/LSTM/GRU parameters, in its order and layout, per layer l and direction
// (suffix "_reverse" for the second): weight_ih_l<l> (G·H, in), weight_hh_l<l> (G·H, H),
// bias_ih_l<l> (G·H), bias_hh_l<l> (G·H), then for a peephole lstm weight_peephole_l<l> (3, H)
// (rows i, f, o; PyTorch has none). Gates: rnn 1, lstm 4 (i, f, g, o), gru 3 (r, z, n).
// in = features per step for l = 0, else H·D. fan_in = H for all, so the default init is
// PyTorch's U(±1/√H). The oneDNN kernel maps this layout to its own each step (docs/rnn.md).
void DeclareRecurrentParams(const RecurrentSpec& r, const std::string& prefix, const Shape& input,
                            std::vector<ParamDecl>* decls) {
  const int64_t h = r.units;
  const int64_t gates = r.cell == RecurrentCell::kLstm ? 4 : r.cell == RecurrentCell::kGru ? 3 : 1;
  const int dirs = r.bidirectional ? 2 : 1;
  const int64_t features = input.size() == 3 ? input[0] * input[2] : input.back();
  for (int l = 0; l < r.layers; ++l) {
    const int64_t in = l == 0 ? features : h * dirs;
    for (int d = 0; d < dirs; ++d) {
      const std::string s = absl::StrCat("_l", l, d == 1 ? "_reverse" : "");
      decls->push_back(
          {prefix + "weight_ih" + s, {gates * h, in}, h, gates * h, ParamRole::kWeight});
      decls->push_back(
          {prefix + "weight_hh" + s, {gates * h, h}, h, gates * h, ParamRole::kWeight});
      decls->push_back({prefix + "bias_ih" + s, {gates * h}, h, gates * h, ParamRole::kBias});
      decls->push_back({prefix + "bias_hh" + s, {gates * h}, h, gates * h, ParamRole::kBias});
      if (r.peephole) {
        decls->push_back({prefix + "weight_peephole" + s, {3, h}, h, 3 * h, ParamRole::kWeight});
      }
    }
  }
}

}  // namespace

std::string LayerKindName(const LayerSpec& layer) {
  return std::visit(
      Overloaded{
          [](const DenseSpec&) -> std::string { return "dense"; },
          [](const ActivationSpec&) -> std::string { return "activation"; },
          [](const ThresholdSpec&) -> std::string { return "threshold"; },
          [](const Conv2dSpec&) -> std::string { return "conv2d"; },
          [](const Pool2dSpec& p) -> std::string { return p.max ? "max_pool2d" : "avg_pool2d"; },
          [](const LrnSpec&) -> std::string { return "lrn"; },
          [](const BatchNormSpec&) -> std::string { return "batch_norm"; },
          [](const DropoutSpec&) -> std::string { return "dropout"; },
          [](const FlattenSpec&) -> std::string { return "flatten"; },
          [](const RecurrentSpec& r) -> std::string {
            switch (r.cell) {
              case RecurrentCell::kLstm:
                return "lstm";
              case RecurrentCell::kGru:
                return "gru";
              default:
                return "rnn";
            }
          },
      },
      layer);
}

absl::StatusOr<Shape> OutputShape(const LayerSpec& layer, const Shape& input) {
  if (input.empty() || NumElements(input) <= 0) return ShapeError("empty input", input);
  return std::visit(
      Overloaded{
          [&](const DenseSpec& d) -> absl::StatusOr<Shape> { return Shape{d.units}; },
          [&](const ActivationSpec&) -> absl::StatusOr<Shape> { return input; },
          [&](const ThresholdSpec&) -> absl::StatusOr<Shape> { return input; },
          [&](const Conv2dSpec& c) -> absl::StatusOr<Shape> {
            if (c.filters < 1 || c.kernel < 1 || c.stride < 1 || c.padding < 0 || c.dilation < 1 ||
                c.groups < 1) {
              return ShapeError(
                  absl::StrCat("filters ", c.filters, ", kernel ", c.kernel, ", stride ", c.stride,
                               ", dilation ", c.dilation, " and groups ", c.groups,
                               " must be >= 1 and padding ", c.padding, " >= 0"),
                  input);
            }
            if (c.filters % c.groups != 0) {
              return ShapeError(
                  absl::StrCat("filters ", c.filters, " are not divisible by groups ", c.groups),
                  input);
            }
            if (input.size() == 3 && input[0] % c.groups != 0) {
              return ShapeError(absl::StrCat("input channels ", input[0],
                                             " are not divisible by groups ", c.groups),
                                input);
            }
            return ImageOutput(input, c.filters, c.kernel, c.stride, c.padding, c.dilation);
          },
          [&](const Pool2dSpec& p) -> absl::StatusOr<Shape> {
            if (p.kernel < 1 || p.stride < 0 || p.padding < 0 || 2 * p.padding > p.kernel) {
              return ShapeError(absl::StrCat("kernel ", p.kernel, " must be >= 1, stride ",
                                             p.stride, " >= 1 (0: the kernel) and padding ",
                                             p.padding, " at most half the kernel"),
                                input);
            }
            if (input.size() != 3) return ImageOutput(input, 0, p.kernel, 1, 0, 1);
            return ImageOutput(input, static_cast<int>(input[0]), p.kernel,
                               p.stride > 0 ? p.stride : p.kernel, p.padding, /*dilation=*/1);
          },
          [&](const LrnSpec& n) -> absl::StatusOr<Shape> {
            if (input.size() != 3) return ShapeError("needs an image input (C, H, W)", input);
            if (n.size < 1)
              return ShapeError(absl::StrCat("size ", n.size, " must be >= 1"), input);
            return input;
          },
          [&](const BatchNormSpec&) -> absl::StatusOr<Shape> {
            // A sequence (T, F) would normalize over its steps, not its features.
            if (input.size() == 2) {
              return ShapeError("needs flat features (F) or an image (C, H, W)", input);
            }
            return input;
          },
          [&](const DropoutSpec&) -> absl::StatusOr<Shape> { return input; },
          [&](const FlattenSpec&) -> absl::StatusOr<Shape> { return Shape{NumElements(input)}; },
          [&](const RecurrentSpec& r) -> absl::StatusOr<Shape> {
            if (input.size() == 1) {
              return ShapeError(
                  "needs a sequence (T, F) or an image (C, H, W) read row by row, got flat "
                  "features",
                  input);
            }
            if (input.size() > 3) {
              return ShapeError("needs a sequence (T, F) or an image (C, H, W)", input);
            }
            if (r.units <= 0)
              return ShapeError(absl::StrCat("units must be > 0, got ", r.units), input);
            if (r.layers <= 0) {
              return ShapeError(absl::StrCat("layers must be > 0, got ", r.layers), input);
            }
            if (r.peephole && r.cell != RecurrentCell::kLstm) {
              return ShapeError("peephole connections exist only in lstm layers", input);
            }
            const int64_t steps = input.size() == 3 ? input[1] : input[0];
            const int64_t out = static_cast<int64_t>(r.units) * (r.bidirectional ? 2 : 1);
            if (r.return_sequences) return Shape{steps, out};
            return Shape{out};
          },
      },
      layer);
}

absl::StatusOr<std::vector<Shape>> InferShapes(const std::vector<LayerSpec>& layers,
                                               const Shape& input) {
  std::vector<Shape> shapes = {input};
  // The last conv2d or pooling layer whose (C, H, W) output is still unflattened, if any.
  std::string feature_maps;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string where =
        absl::StrCat("model.layers.", i, " (", LayerKindName(layers[i]), "): ");
    // Dense flattens the network's own input image, but after conv2d or pooling the flattening
    // is a modelling choice that the spec should state.
    if (std::holds_alternative<DenseSpec>(layers[i]) && shapes.back().size() == 3 &&
        !feature_maps.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "its input ", ShapeToString(shapes.back()), " is feature maps from ",
                       feature_maps, "; add a flatten layer before the dense layer"));
    }
    absl::StatusOr<Shape> out = OutputShape(layers[i], shapes.back());
    if (!out.ok()) return absl::InvalidArgumentError(absl::StrCat(where, out.status().message()));
    if (std::holds_alternative<Conv2dSpec>(layers[i]) ||
        std::holds_alternative<Pool2dSpec>(layers[i])) {
      feature_maps = absl::StrCat("model.layers.", i, " (", LayerKindName(layers[i]), ")");
    } else if (out->size() != 3) {
      feature_maps.clear();
    }
    shapes.push_back(*std::move(out));
  }
  return shapes;
}

void DeclareParams(const LayerSpec& layer, int index, const Shape& input, const Shape& output,
                   std::vector<ParamDecl>* decls) {
  const std::string prefix = absl::StrCat("layers.", index, ".", LayerKindName(layer), ".");
  std::visit(
      Overloaded{
          [&](const DenseSpec& d) {
            const int64_t in = NumElements(input);
            decls->push_back({prefix + "weight", {d.units, in}, in, d.units, ParamRole::kWeight});
            if (d.use_bias) {
              decls->push_back({prefix + "bias", {d.units}, in, d.units, ParamRole::kBias});
            }
          },
          [&](const ActivationSpec& a) {
            if (a.kind != Activation::kPrelu) return;
            const int64_t channels = input.size() == 2 ? input[1] : input[0];
            decls->push_back({prefix + "slope", {channels}, 1, 1, ParamRole::kPreluSlope});
          },
          [&](const Conv2dSpec& c) {
            const int64_t cin = input[0] / c.groups;
            const int64_t k2 = static_cast<int64_t>(c.kernel) * c.kernel;
            decls->push_back({prefix + "weight",
                              {c.filters, cin, c.kernel, c.kernel},
                              cin * k2,
                              c.filters / c.groups * k2,
                              ParamRole::kWeight});
            if (c.use_bias) {
              decls->push_back(
                  {prefix + "bias", {c.filters}, cin * k2, c.filters, ParamRole::kBias});
            }
          },
          [&](const BatchNormSpec&) {
            decls->push_back({prefix + "scale", {input[0]}, 1, 1, ParamRole::kScale});
            decls->push_back({prefix + "shift", {input[0]}, 1, 1, ParamRole::kShift});
            decls->push_back({prefix + "running_mean", {input[0]}, 1, 1, ParamRole::kRunningMean});
            decls->push_back({prefix + "running_var", {input[0]}, 1, 1, ParamRole::kRunningVar});
          },
          [&](const RecurrentSpec& r) { DeclareRecurrentParams(r, prefix, input, decls); },
          [&](const auto&) {},
      },
      layer);
  (void)output;
}

}  // namespace cajal
