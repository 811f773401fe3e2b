#include "service/export/onnx_graph.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace cajal {
namespace {

void SetTensorType(onnx::ValueInfoProto* v, const std::string& name, const std::string& batch_dim,
                   const std::vector<int64_t>& dims) {
  v->set_name(name);
  onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto_DataType_FLOAT);
  onnx::TensorShapeProto* shape = t->mutable_shape();
  shape->add_dim()->set_dim_param(batch_dim);
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

onnx::AttributeProto* NewAttr(onnx::NodeProto* node, const std::string& name,
                              onnx::AttributeProto_AttributeType type) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(type);
  return a;
}

}  // namespace

std::string GraphBuilder::Fresh(const std::string& hint) {
  std::string name = hint;
  int& n = next_[hint];
  while (!taken_.insert(name).second) name = absl::StrCat(hint, "_", ++n);
  return name;
}

std::string GraphBuilder::Floats(const std::string& hint, const std::vector<int64_t>& dims,
                                 const std::vector<float>& values) {
  onnx::TensorProto* t = graph_->add_initializer();
  t->set_name(Fresh(hint));
  t->set_data_type(onnx::TensorProto_DataType_FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  // raw_data is little-endian float32, which is this machine's layout.
  std::string* raw = t->mutable_raw_data();
  raw->resize(values.size() * sizeof(float));
  if (!values.empty()) std::memcpy(raw->data(), values.data(), raw->size());
  return t->name();
}

std::string GraphBuilder::Int64s(const std::vector<int64_t>& values, bool scalar) {
  auto [it, added] = int64s_.try_emplace({values, scalar});
  if (!added) return it->second;
  onnx::TensorProto* t = graph_->add_initializer();
  t->set_name(Fresh(scalar ? "const_scalar" : "const_shape"));
  t->set_data_type(onnx::TensorProto_DataType_INT64);
  if (!scalar) t->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
  it->second = t->name();
  return t->name();
}

std::string GraphBuilder::Node(const std::string& op, const std::vector<std::string>& inputs,
                               const std::string& hint, int outputs) {
  onnx::NodeProto* node = graph_->add_node();
  node->set_op_type(op);
  for (const std::string& in : inputs) node->add_input(in);
  for (int i = 0; i < outputs; ++i) node->add_output(Fresh(hint));
  node->set_name(absl::StrCat(hint, "/", op, "_", graph_->node_size()));
  last_ = node;
  return node->output(0);
}

void GraphBuilder::Attr(onnx::NodeProto* node, const std::string& name, int64_t value) {
  NewAttr(node, name, onnx::AttributeProto_AttributeType_INT)->set_i(value);
}

void GraphBuilder::Attr(onnx::NodeProto* node, const std::string& name, float value) {
  NewAttr(node, name, onnx::AttributeProto_AttributeType_FLOAT)->set_f(value);
}

void GraphBuilder::Attr(onnx::NodeProto* node, const std::string& name, const std::string& value) {
  NewAttr(node, name, onnx::AttributeProto_AttributeType_STRING)->set_s(value);
}

void GraphBuilder::Attr(onnx::NodeProto* node, const std::string& name,
                        const std::vector<int64_t>& values) {
  onnx::AttributeProto* a = NewAttr(node, name, onnx::AttributeProto_AttributeType_INTS);
  for (int64_t v : values) a->add_ints(v);
}

void GraphBuilder::Attr(onnx::NodeProto* node, const std::string& name,
                        const std::vector<std::string>& values) {
  onnx::AttributeProto* a = NewAttr(node, name, onnx::AttributeProto_AttributeType_STRINGS);
  for (const std::string& v : values) a->add_strings(v);
}

void GraphBuilder::Input(const std::string& name, const std::string& batch_dim,
                         const std::vector<int64_t>& dims) {
  taken_.insert(name);
  SetTensorType(graph_->add_input(), name, batch_dim, dims);
}

void GraphBuilder::Output(const std::string& name, const std::string& batch_dim,
                          const std::vector<int64_t>& dims) {
  SetTensorType(graph_->add_output(), name, batch_dim, dims);
}

}  // namespace cajal
