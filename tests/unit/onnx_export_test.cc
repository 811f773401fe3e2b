// ExportOnnx: the graph's contract (names, shapes, opset), the normalization folded in, the
// recurrent gate and peephole permutations, and every refusal. Numerical agreement with ONNX
// Runtime is tests/integration/onnx_export_test.sh.
#include "service/export/onnx_export.h"

#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "onnx/onnx_pb.h"
#include "service/spec/spec_loader.h"

namespace cajal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A model file for `spec_yaml` over examples of `input` shape, every parameter filled with
// 0, 1, 2, ... so a permutation shows in the values.
ModelFile MakeModel(const std::string& spec_yaml, const Shape& input, int classes = 3) {
  ModelFile f;
  absl::StatusOr<v1::JobSpec> spec =
      ParseSpec(spec_yaml, {"training.epochs=1", "training.batch_size=4"});
  EXPECT_TRUE(spec.ok()) << spec.status();
  f.spec_json = SpecToJson(*spec);
  f.info.present = true;
  f.info.input = input;
  f.info.num_classes = classes;
  const int64_t channels = input.size() == 3 ? input[0] : input.back();
  f.info.normalization.shift.assign(channels, 0.0f);
  f.info.normalization.scale.assign(channels, 1.0f);
  f.info.normalization.channel_stride = input.size() == 3 ? input[1] * input[2] : 1;
  return f;
}

void AddParam(ModelFile* f, const std::string& name, const Shape& shape) {
  std::vector<float> data(NumElements(shape));
  std::iota(data.begin(), data.end(), 0.0f);
  f->params.push_back({name, shape, data});
}

onnx::ModelProto Export(const ModelFile& f) {
  absl::StatusOr<std::string> bytes = ExportOnnx(f);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  onnx::ModelProto m;
  EXPECT_TRUE(bytes.ok() && m.ParseFromString(*bytes));
  return m;
}

std::vector<std::string> Ops(const onnx::ModelProto& m) {
  std::vector<std::string> ops;
  for (const auto& n : m.graph().node()) ops.push_back(n.op_type());
  return ops;
}

std::vector<float> Initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() != name) continue;
    std::vector<float> v(t.raw_data().size() / sizeof(float));
    std::memcpy(v.data(), t.raw_data().data(), t.raw_data().size());
    return v;
  }
  ADD_FAILURE() << "no initializer " << name;
  return {};
}

std::string Dims(const onnx::ValueInfoProto& v) {
  std::string s;
  for (const auto& d : v.type().tensor_type().shape().dim()) {
    absl::StrAppend(&s, s.empty() ? "" : "x",
                    d.dim_param().empty() ? absl::StrCat(d.dim_value()) : d.dim_param());
  }
  return s;
}

constexpr char kMlp[] = R"(
model: {layers: [{dense: {units: 4}}, {activation: {kind: relu}}, {dropout: {rate: 0.5}},
                 {dense: {units: 3, use_bias: false}}]}
data: {train: {builtin: xor}}
)";

TEST(OnnxExportTest, ContractOfAClassifier) {
  ModelFile f = MakeModel(kMlp, {1, 2, 2});
  AddParam(&f, "layers.0.dense.weight", {4, 4});
  AddParam(&f, "layers.0.dense.bias", {4});
  AddParam(&f, "layers.3.dense.weight", {3, 4});
  const onnx::ModelProto m = Export(f);
  EXPECT_EQ(m.ir_version(), 8);
  ASSERT_EQ(m.opset_import_size(), 1);
  EXPECT_EQ(m.opset_import(0).version(), 17);
  EXPECT_EQ(m.producer_name(), "cajal");
  ASSERT_EQ(m.graph().input_size(), 1);
  EXPECT_EQ(m.graph().input(0).name(), "input");
  EXPECT_EQ(Dims(m.graph().input(0)), "Nx1x2x2");
  ASSERT_EQ(m.graph().output_size(), 2);
  EXPECT_EQ(m.graph().output(0).name(), "logits");
  EXPECT_EQ(Dims(m.graph().output(0)), "Nx3");
  EXPECT_EQ(m.graph().output(1).name(), "probabilities");
  EXPECT_EQ(Dims(m.graph().output(1)), "Nx3");
  // Identity normalization adds no nodes; dropout is the identity; no bias, no third input.
  EXPECT_THAT(Ops(m),
              ElementsAre("Flatten", "Gemm", "Relu", "Gemm", "Identity", "Softmax", "Identity"));
  EXPECT_EQ(m.graph().node(3).input_size(), 2);
}

TEST(OnnxExportTest, NormalizationIsFoldedPerChannel) {
  ModelFile f = MakeModel(R"(
model: {layers: [{conv2d: {filters: 2, kernel: 1}}, {flatten: {}}, {dense: {units: 3}}]}
data: {train: {builtin: xor}, normalize: standardize}
)",
                          {2, 2, 2});
  f.info.normalization.shift = {0.5f, 1.5f};
  f.info.normalization.scale = {2.0f, 4.0f};
  AddParam(&f, "layers.0.conv2d.weight", {2, 2, 1, 1});
  AddParam(&f, "layers.0.conv2d.bias", {2});
  AddParam(&f, "layers.2.dense.weight", {3, 8});
  AddParam(&f, "layers.2.dense.bias", {3});
  const onnx::ModelProto m = Export(f);
  EXPECT_THAT(Ops(m), ElementsAre("Sub", "Mul", "Conv", "Flatten", "Gemm", "Identity", "Softmax",
                                  "Identity"));
  EXPECT_THAT(Initializer(m, "input_shift"), ElementsAre(0.5f, 1.5f));
  EXPECT_THAT(Initializer(m, "input_scale"), ElementsAre(2.0f, 4.0f));
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == "input_shift") {
      EXPECT_THAT(t.dims(), ElementsAre(2, 1, 1));
    }
  }
}

TEST(OnnxExportTest, MseModelsExposeOutputs) {
  ModelFile f = MakeModel(R"(
model: {layers: [{dense: {units: 2}}, {threshold: {threshold: 0.5}}]}
data: {train: {builtin: xor}}
optimizer: {kind: perceptron_rule}
training: {loss: mse}
)",
                          {2}, 2);
  AddParam(&f, "layers.0.dense.weight", {2, 2});
  AddParam(&f, "layers.0.dense.bias", {2});
  const onnx::ModelProto m = Export(f);
  ASSERT_EQ(m.graph().output_size(), 1);
  EXPECT_EQ(m.graph().output(0).name(), "outputs");
  EXPECT_THAT(Ops(m), ElementsAre("Gemm", "Greater", "Cast", "Identity"));
}

TEST(OnnxExportTest, FusedSoftmaxGivesItsInputAsLogits) {
  ModelFile f = MakeModel(R"(
model: {layers: [{dense: {units: 3}}, {activation: {kind: softmax}}]}
data: {train: {builtin: xor}}
)",
                          {2});
  AddParam(&f, "layers.0.dense.weight", {3, 2});
  AddParam(&f, "layers.0.dense.bias", {3});
  const onnx::ModelProto m = Export(f);
  EXPECT_THAT(Ops(m), ElementsAre("Gemm", "Softmax", "Identity", "Identity"));
  EXPECT_EQ(m.graph().node(2).input(0), m.graph().node(0).output(0)) << "logits: the Gemm";
  EXPECT_EQ(m.graph().node(3).input(0), m.graph().node(1).output(0)) << "probabilities";
}

// LSTM gates i, f, g, o -> ONNX i, o, f, c; peepholes i, f, o -> i, o, f; B = [b_ih, b_hh].
TEST(OnnxExportTest, LstmGatesAndPeepholesArePermuted) {
  ModelFile f = MakeModel(R"(
model: {layers: [{lstm: {units: 1, peephole: true}}, {dense: {units: 3}}]}
data: {train: {builtin: xor}}
)",
                          {4, 1});
  AddParam(&f, "layers.0.lstm.weight_ih_l0", {4, 1});
  AddParam(&f, "layers.0.lstm.weight_hh_l0", {4, 1});
  f.params.push_back({"layers.0.lstm.bias_ih_l0", {4}, {10, 11, 12, 13}});
  f.params.push_back({"layers.0.lstm.bias_hh_l0", {4}, {20, 21, 22, 23}});
  AddParam(&f, "layers.0.lstm.weight_peephole_l0", {3, 1});
  AddParam(&f, "layers.1.dense.weight", {3, 1});
  AddParam(&f, "layers.1.dense.bias", {3});
  const onnx::ModelProto m = Export(f);
  EXPECT_THAT(Initializer(m, "layers.0.lstm.l0.W"), ElementsAre(0, 3, 1, 2));
  EXPECT_THAT(Initializer(m, "layers.0.lstm.l0.R"), ElementsAre(0, 3, 1, 2));
  EXPECT_THAT(Initializer(m, "layers.0.lstm.l0.B"), ElementsAre(10, 13, 11, 12, 20, 23, 21, 22));
  EXPECT_THAT(Initializer(m, "layers.0.lstm.l0.P"), ElementsAre(0, 2, 1));
  const auto& lstm = m.graph().node(1);
  ASSERT_EQ(lstm.op_type(), "LSTM");
  ASSERT_EQ(lstm.input_size(), 8);
  EXPECT_EQ(lstm.input(4), "");
  EXPECT_EQ(lstm.input(7), "layers.0.lstm.l0.P");
  // (N, T, F) -> (T, N, F) in, last step out: Transpose, LSTM, Gather, Transpose, Reshape.
  EXPECT_THAT(Ops(m), ElementsAre("Transpose", "LSTM", "Gather", "Transpose", "Reshape", "Gemm",
                                  "Identity", "Softmax", "Identity"));
}

// GRU gates r, z, n -> ONNX z, r, h with linear_before_reset; both directions stacked.
TEST(OnnxExportTest, BidirectionalGruStacksDirections) {
  ModelFile f = MakeModel(R"(
model: {layers: [{gru: {units: 1, bidirectional: true, return_sequences: true}}, {flatten: {}},
                 {dense: {units: 3}}]}
data: {train: {builtin: xor}}
)",
                          {2, 1});
  for (const char* s : {"_l0", "_l0_reverse"}) {
    AddParam(&f, absl::StrCat("layers.0.gru.weight_ih", s), {3, 1});
    AddParam(&f, absl::StrCat("layers.0.gru.weight_hh", s), {3, 1});
    AddParam(&f, absl::StrCat("layers.0.gru.bias_ih", s), {3});
    AddParam(&f, absl::StrCat("layers.0.gru.bias_hh", s), {3});
  }
  AddParam(&f, "layers.2.dense.weight", {3, 4});
  AddParam(&f, "layers.2.dense.bias", {3});
  const onnx::ModelProto m = Export(f);
  EXPECT_THAT(Initializer(m, "layers.0.gru.l0.W"), ElementsAre(1, 0, 2, 1, 0, 2));
  const auto& gru = m.graph().node(1);
  ASSERT_EQ(gru.op_type(), "GRU");
  std::map<std::string, std::string> attrs;
  for (const auto& a : gru.attribute()) {
    attrs[a.name()] = a.has_s() ? a.s() : absl::StrCat(a.i());
  }
  EXPECT_EQ(attrs["direction"], "bidirectional");
  EXPECT_EQ(attrs["linear_before_reset"], "1");
  EXPECT_EQ(attrs["hidden_size"], "1");
}

TEST(OnnxExportTest, RefusalsNameTheProblem) {
  // A version 1 file has no input shape or normalization.
  ModelFile v1 = MakeModel(kMlp, {4});
  v1.info.present = false;
  EXPECT_THAT(std::string(ExportOnnx(v1).status().message()), HasSubstr("format version 1"));

  ModelFile lrn = MakeModel(R"(
model: {layers: [{lrn: {size: 2}}, {flatten: {}}, {dense: {units: 3}}]}
data: {train: {builtin: xor}}
)",
                            {2, 2, 2});
  AddParam(&lrn, "layers.2.dense.weight", {3, 8});
  AddParam(&lrn, "layers.2.dense.bias", {3});
  absl::Status s = ExportOnnx(lrn).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("model.layers.0 (lrn): size 2 cannot be exported faithfully"));

  ModelFile missing = MakeModel(kMlp, {4});
  AddParam(&missing, "layers.0.dense.weight", {4, 4});
  EXPECT_THAT(std::string(ExportOnnx(missing).status().message()),
              HasSubstr("model.layers.0 (dense): the model file has no parameter "
                        "layers.0.dense.bias"));

  ModelFile wrong = MakeModel(kMlp, {4});
  AddParam(&wrong, "layers.0.dense.weight", {4, 5});
  EXPECT_THAT(std::string(ExportOnnx(wrong).status().message()),
              HasSubstr("parameter layers.0.dense.weight has shape (4, 5) in the model file, "
                        "the layer needs (4, 4)"));

  ModelFile norm = MakeModel(kMlp, {4});
  norm.info.normalization.shift = {0, 0};
  EXPECT_THAT(std::string(ExportOnnx(norm).status().message()),
              HasSubstr("normalization has 2 channels"));
}

}  // namespace
}  // namespace cajal
