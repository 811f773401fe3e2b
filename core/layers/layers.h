// Layer descriptions, shape inference and parameter declarations, independent of any backend.
//
// A network is a list of LayerSpec applied in order to examples of a given Shape (without the
// batch dimension): (F) for flat features, (C, H, W) for images, (T, F) for sequences. Each
// layer kind documents its shape contract here; the kernels that run it live in backend/.
//
//   std::vector<LayerSpec> layers = {DenseSpec{256}, ActivationSpec{Activation::kRelu},
//                                     DenseSpec{10}};
//   absl::StatusOr<std::vector<Shape>> shapes = InferShapes(layers, /*input=*/{784});
//   // shapes: {(784,), (256,), (256,), (10,)}: the input, then each layer's output.
#ifndef CAJAL_CORE_LAYERS_LAYERS_H_
#define CAJAL_CORE_LAYERS_LAYERS_H_

#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor/tensor.h"

namespace cajal {

// (N, F) -> (N, units); an image or sequence input is flattened to F = C·H·W.
// Saves for backward: its input.
struct DenseSpec {
  int units = 0;
  bool use_bias = true;
};

enum class Activation { kLinear, kSigmoid, kTanh, kRelu, kLeakyRelu, kPrelu, kSoftmax };

// Any shape -> the same shape, elementwise; softmax runs over the last dimension; prelu learns
// one slope per channel (dimension 1 of the batch, or one per feature for flat inputs).
// Saves for backward: its output (its input for linear, leaky_relu with slope < 0, prelu).
struct ActivationSpec {
  Activation kind = Activation::kLinear;
  float slope = 0.01f;  // leaky_relu
};

// Any shape -> the same shape: 1 where x > threshold, else 0. No gradient: backward passes the
// error straight through, which turns SGD into Rosenblatt's rule (see optim/optimizer.h).
struct ThresholdSpec {
  float threshold = 0.0f;
};

// (N, C, H, W) -> (N, filters, H', W') with H' = (H + 2·padding − dilation·(kernel−1) − 1)/stride
// + 1.
struct Conv2dSpec {
  int filters = 0;
  int kernel = 0;
  int stride = 1;
  int padding = 0;
  int dilation = 1;
  int groups = 1;
  bool use_bias = true;
};

// (N, C, H, W) -> (N, C, H', W') with H' = (H + 2·padding − kernel)/stride + 1.
struct Pool2dSpec {
  bool max = true;
  int kernel = 0;
  int stride = 0;  // 0: equal to kernel
  int padding = 0;
};

// (N, C, H, W) -> same; across channels, the AlexNet paper's convention (alpha not divided by
// size).
struct LrnSpec {
  int size = 5;
  float alpha = 1e-4f;
  float beta = 0.75f;
  float k = 2.0f;
};

// (N, C, H, W) or (N, F) -> same; per channel (images) or per feature (flat). Parameters: scale,
// shift, and the non-trainable running_mean and running_var (ParamRole::kRunningMean/Var).
// Training normalizes with the batch statistics and updates
// running = momentum·running + (1 − momentum)·batch (PyTorch's momentum is 1 − this one; the
// running variance uses the unbiased batch variance, as PyTorch's); evaluation uses the running
// statistics. Saves for backward: its input and the batch mean and variance.
struct BatchNormSpec {
  float momentum = 0.9f;
  float epsilon = 1e-5f;
};

// Any shape -> same; inverted dropout in training, identity in evaluation.
struct DropoutSpec {
  float rate = 0.0f;
};

// (C, H, W) -> (C·H·W).
struct FlattenSpec {};

enum class RecurrentCell { kRnnTanh, kRnnRelu, kLstm, kGru };

// (T, F) per example -> (T, units·D) with return_sequences, else (units·D), D = 2 when
// bidirectional (directions concatenated). An image (C, H, W) is read as H steps of C·W
// features. The last step is PyTorch's output[:, -1]. Zero initial state. Parameters are
// PyTorch's nn.RNN/LSTM/GRU tensors by name and layout (weight_ih_l0, weight_hh_l0, bias_ih_l0,
// bias_hh_l0, ..._reverse), plus weight_peephole_l<l> (3, H) for a peephole lstm; the gru is
// the linear-before-reset form PyTorch and cuDNN use (docs/rnn.md).
// Saves for backward: its input, every stacked layer's output and the primitives' workspaces.
struct RecurrentSpec {
  RecurrentCell cell = RecurrentCell::kLstm;
  int units = 0;
  int layers = 1;
  bool bidirectional = false;
  bool return_sequences = false;
  bool peephole = false;  // lstm only
};

using LayerSpec = std::variant<DenseSpec, ActivationSpec, ThresholdSpec, Conv2dSpec, Pool2dSpec,
                               LrnSpec, BatchNormSpec, DropoutSpec, FlattenSpec, RecurrentSpec>;

// The field name of the layer kind in the job spec: "dense", "activation", "max_pool2d", ...
std::string LayerKindName(const LayerSpec& layer);

// The output shape of `layer` on examples of shape `input`. The error names the problem and the
// shapes; callers prefix the layer's position ("model.layers.3: ...").
absl::StatusOr<Shape> OutputShape(const LayerSpec& layer, const Shape& input);

// The input shape followed by the output shape of every layer. Errors are prefixed with
// "model.layers.<i> (<kind>): ". A dense layer takes an image (C, H, W) only when it is the
// network's input (or shape-preserving layers of it); after conv2d or pooling it needs a flatten.
absl::StatusOr<std::vector<Shape>> InferShapes(const std::vector<LayerSpec>& layers,
                                               const Shape& input);

// Appends the parameters of layer `index` (names "layers.<index>.<kind>.<param>") to `decls`.
void DeclareParams(const LayerSpec& layer, int index, const Shape& input, const Shape& output,
                   std::vector<ParamDecl>* decls);

}  // namespace cajal

#endif  // CAJAL_CORE_LAYERS_LAYERS_H_
