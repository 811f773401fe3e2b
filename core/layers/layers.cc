#include "core/layers/layers.h"

#include <type_traits>

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
  return absl::InvalidArgumentError(absl::StrCat(what, " (input shape ", ShapeToString(input), ")"));
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
    return ShapeError("needs an image input (C, H, W); add a data shape or remove the layer", input);
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
            if (input.size() == 3 && input[0] % c.groups != 0) {
              return ShapeError(absl::StrCat("input channels ", input[0],
                                             " are not divisible by groups ", c.groups),
                                input);
            }
            return ImageOutput(input, c.filters, c.kernel, c.stride, c.padding, c.dilation);
          },
          [&](const Pool2dSpec& p) -> absl::StatusOr<Shape> {
            if (input.size() != 3) return ImageOutput(input, 0, p.kernel, 1, 0, 1);
            return ImageOutput(input, static_cast<int>(input[0]), p.kernel,
                               p.stride > 0 ? p.stride : p.kernel, p.padding, /*dilation=*/1);
          },
          [&](const LrnSpec&) -> absl::StatusOr<Shape> {
            if (input.size() != 3) return ShapeError("needs an image input (C, H, W)", input);
            return input;
          },
          [&](const BatchNormSpec&) -> absl::StatusOr<Shape> { return input; },
          [&](const DropoutSpec&) -> absl::StatusOr<Shape> { return input; },
          [&](const FlattenSpec&) -> absl::StatusOr<Shape> { return Shape{NumElements(input)}; },
          [&](const RecurrentSpec& r) -> absl::StatusOr<Shape> {
            if (input.size() == 1) {
              return ShapeError(
                  "needs a sequence (T, F) or an image (C, H, W) read row by row, got flat "
                  "features",
                  input);
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
  for (size_t i = 0; i < layers.size(); ++i) {
    absl::StatusOr<Shape> out = OutputShape(layers[i], shapes.back());
    if (!out.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("model.layers.", i, " (",
                                                     LayerKindName(layers[i]),
                                                     "): ", out.status().message()));
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
              decls->push_back({prefix + "bias", {c.filters}, cin * k2, c.filters, ParamRole::kBias});
            }
          },
          [&](const BatchNormSpec&) {
            decls->push_back({prefix + "scale", {input[0]}, 1, 1, ParamRole::kScale});
            decls->push_back({prefix + "shift", {input[0]}, 1, 1, ParamRole::kShift});
          },
          [&](const auto&) {},
      },
      layer);
  (void)output;
}

}  // namespace cajal
