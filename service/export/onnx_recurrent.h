// cajal's recurrent layers (rnn, lstm, gru; stacked, bidirectional, last step or all) as ONNX
// RNN/LSTM/GRU nodes. Our parameters are PyTorch's tensors (docs/rnn.md); ONNX wants other
// gate orders, one W/R/B tensor per node with the directions stacked, and (T, N, F) sequences:
//
//   gates      ours (PyTorch)   ONNX
//   lstm       i, f, g, o       i, o, f, c
//   gru        r, z, n          z, r, h   (linear_before_reset = 1: PyTorch's and cuDNN's GRU)
//   peephole   i, f, o          i, o, f   (LSTM input P)
//   bias       b_ih, b_hh       B = [Wb, Rb], the same two vectors
//
// Used by onnx_export.cc only; not thread-safe (it writes into one GraphBuilder).
#ifndef CAJAL_SERVICE_EXPORT_ONNX_RECURRENT_H_
#define CAJAL_SERVICE_EXPORT_ONNX_RECURRENT_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/model_file.h"
#include "core/layers/layers.h"
#include "service/export/onnx_graph.h"

namespace cajal {

// A stored parameter of the layer by its name after the layer prefix ("weight_ih_l0"), checked
// against `shape`; the error names the layer and the tensor.
using ParamLookup =
    std::function<absl::StatusOr<const NamedTensor*>(const std::string& name, const Shape& shape)>;

class RecurrentEmitter {
 public:
  // `hint`: a name for the layer's values ("layers.2.lstm.").
  RecurrentEmitter(GraphBuilder* graph, std::string hint, ParamLookup param)
      : g_(graph), hint_(std::move(hint)), param_(std::move(param)) {}

  // x: (N, T, F), or an image (N, C, H, W) read as H steps of C·W features (channel-major,
  // as the oneDNN kernel reorders it). Returns (N, T, D·H) with return_sequences, else the
  // last step (N, D·H): PyTorch's output[:, -1], for the reverse direction too (docs/rnn.md).
  absl::StatusOr<std::string> Emit(const RecurrentSpec& r, const std::string& x, const Shape& in);

 private:
  // The node inputs W, R, B (and P for a peephole lstm) of stacked layer `l`, whose inputs have
  // `features` per step.
  absl::StatusOr<std::vector<std::string>> Weights(const RecurrentSpec& r, int l, int64_t features);
  std::string Op(const std::string& op, const std::vector<std::string>& inputs);
  std::string Transpose(const std::string& x, const std::vector<int64_t>& perm);
  std::string Reshape(const std::string& x, const std::vector<int64_t>& shape);

  GraphBuilder* g_;
  std::string hint_;
  ParamLookup param_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_EXPORT_ONNX_RECURRENT_H_
