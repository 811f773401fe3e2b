// A small builder over onnx.GraphProto (libonnx-dev's generated onnx-ml.pb.h): unique value
// names, float and int64 initializers, nodes with attributes. It knows nothing of cajal's
// layers; onnx_export.cc does the mapping.
//
//   onnx::ModelProto model;
//   GraphBuilder g(model.mutable_graph());
//   std::string w = g.Floats("fc.weight", {10, 784}, data);
//   std::string y = g.Node("Gemm", {"input", w}, "fc");
//   g.Attr(g.last(), "transB", 1);
//
// Not thread-safe; one builder per export.
#ifndef CAJAL_SERVICE_EXPORT_ONNX_GRAPH_H_
#define CAJAL_SERVICE_EXPORT_ONNX_GRAPH_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "onnx/onnx_pb.h"

namespace cajal {

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* graph) : graph_(graph) {}

  // A value name not used before, made from `hint` (hint, hint_1, hint_2, ...).
  std::string Fresh(const std::string& hint);

  // A float32 initializer of shape `dims` holding `values` (row-major); returns its name.
  std::string Floats(const std::string& hint, const std::vector<int64_t>& dims,
                     const std::vector<float>& values);
  // A 1-D int64 initializer, or a scalar when `scalar`; the same values reuse one initializer.
  std::string Int64s(const std::vector<int64_t>& values, bool scalar = false);

  // Adds a node; its outputs are fresh names made from `hint` (one per `outputs`). Returns
  // the first output's name. An empty input name is an omitted optional input.
  std::string Node(const std::string& op, const std::vector<std::string>& inputs,
                   const std::string& hint, int outputs = 1);
  onnx::NodeProto* last() { return last_; }

  static void Attr(onnx::NodeProto* node, const std::string& name, int64_t value);
  static void Attr(onnx::NodeProto* node, const std::string& name, float value);
  static void Attr(onnx::NodeProto* node, const std::string& name, const std::string& value);
  static void Attr(onnx::NodeProto* node, const std::string& name,
                   const std::vector<int64_t>& values);
  static void Attr(onnx::NodeProto* node, const std::string& name,
                   const std::vector<std::string>& values);

  // Declares a graph input (its name is taken) or output of float32 with a dynamic first dimension
  // named `batch_dim` and the fixed dimensions `dims` after it.
  void Input(const std::string& name, const std::string& batch_dim,
             const std::vector<int64_t>& dims);
  void Output(const std::string& name, const std::string& batch_dim,
              const std::vector<int64_t>& dims);

 private:
  onnx::GraphProto* graph_;
  onnx::NodeProto* last_ = nullptr;
  std::set<std::string> taken_;      // every value name handed out
  std::map<std::string, int> next_;  // hint -> the last suffix tried
  std::map<std::pair<std::vector<int64_t>, bool>, std::string> int64s_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_EXPORT_ONNX_GRAPH_H_
