// Export of a trained model (model.cajal) to ONNX, opset 17, for ONNX Runtime, Triton and
// KServe. The exported graph is the inference network (docs/serving.md):
//
//   ASSIGN_OR_RETURN(ModelFile model, ReadModelFile("out/model.cajal"));
//   ASSIGN_OR_RETURN(std::string onnx, ExportOnnx(model));  // a serialized onnx.ModelProto
//
// The model's contract:
//   input  "input"          float32 (N, example shape...): raw features as the data files hold
//                           them (Fashion-MNIST pixels 0..255, CSV values as written); the
//                           spec's input normalization (scale, standardize) is folded into the
//                           graph with the training data's statistics.
//   output "logits"         float32 (N, D) for cross_entropy and binary_cross_entropy: what the
//                           loss reads (the input of a final softmax/sigmoid, if any).
//   output "probabilities"  float32 (N, D): softmax (cross_entropy) or sigmoid
//                           (binary_cross_entropy) of the logits.
//   output "outputs"        float32 (N, output shape...) instead, for mse, regression and
//                           autoencoders: the network's output.
// N is the dynamic dimension "N". Dropout is the identity, batch norm uses its running
// statistics, recurrent layers are ONNX RNN/LSTM/GRU nodes (peepholes as LSTM's P input, the
// GRU with linear_before_reset = 1).
//
// Errors (kInvalidArgument, naming the problem): a version 1 model file (it does not store the
// input shape and normalization), a spec that no longer parses, a parameter missing or of the
// wrong shape, and a layer that cannot be exported faithfully ("model.layers.3 (lrn): ...").
// Thread-safe: no shared state.
#ifndef CAJAL_SERVICE_EXPORT_ONNX_EXPORT_H_
#define CAJAL_SERVICE_EXPORT_ONNX_EXPORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/model_file.h"

namespace cajal {

inline constexpr int kOnnxOpset = 17;
inline constexpr int kOnnxIrVersion = 8;  // ONNX 1.12, the version Debian 12 ships

// The serialized onnx.ModelProto of `model`.
absl::StatusOr<std::string> ExportOnnx(const ModelFile& model);

// Reads `model_path`, exports it and writes `onnx_path` atomically (a concurrent reader sees
// the old file or the whole new one). Errors: ReadModelFile's and ExportOnnx's, and the write's
// (kInternal, kResourceExhausted, kPermissionDenied with the path).
absl::Status ExportOnnxFile(const std::string& model_path, const std::string& onnx_path);

// For the server: the ONNX export of the model file at `model_path`, written once beside it as
// model.onnx and reused while it is newer than the model file; returns its path. A model that
// cannot be exported is kFailedPrecondition with ExportOnnx's message (the request was fine;
// the job's model is not exportable). Safe to call concurrently for the same model.
absl::StatusOr<std::string> OnnxBesideModel(const std::string& model_path);

}  // namespace cajal

#endif  // CAJAL_SERVICE_EXPORT_ONNX_EXPORT_H_
