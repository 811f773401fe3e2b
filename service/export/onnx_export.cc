#include "service/export/onnx_export.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "onnx/onnx_pb.h"
#include "service/export/onnx_graph.h"
#include "service/export/onnx_recurrent.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"

namespace cajal {
namespace {

// The layers as training built them: the spec's list, or the preset for the stored input
// shape and outputs (as TrainingJob::Build does).
absl::StatusOr<std::vector<LayerSpec>> ModelLayers(const JobConfig& config, const ModelInfo& info) {
  if (config.preset == Preset::kNone) return config.layers;
  const int outputs = info.num_classes > 0 ? info.num_classes : info.target_dim;
  return PresetLayers(config.preset, info.input, outputs);
}

class Exporter {
 public:
  Exporter(const ModelFile& model, onnx::GraphProto* graph) : model_(model), g_(graph) {
    for (const NamedTensor& t : model.params) params_[t.name] = &t;
  }

  absl::Status Build(const JobConfig& config, const std::vector<LayerSpec>& layers) {
    ASSIGN_OR_RETURN(std::vector<Shape> shapes, InferShapes(layers, model_.info.input));
    g_.Input("input", "N", model_.info.input);
    ASSIGN_OR_RETURN(std::string x, Normalize("input"));
    std::vector<std::string> values = {x};  // values[i]: activation i (0: the input)
    for (size_t i = 0; i < layers.size(); ++i) {
      where_ = absl::StrCat("model.layers.", i, " (", LayerKindName(layers[i]), ")");
      prefix_ = absl::StrCat("layers.", i, ".", LayerKindName(layers[i]), ".");
      const Shape& in = shapes[i];
      ASSIGN_OR_RETURN(x, std::visit([&](const auto& l) { return Emit(l, x, in); }, layers[i]));
      values.push_back(x);
    }
    return Outputs(config, layers, shapes, values);
  }

 private:
  // A stored parameter of this layer, checked against the shape the layer needs.
  absl::StatusOr<const NamedTensor*> Param(const std::string& name, const Shape& shape) {
    const std::string full = prefix_ + name;
    auto it = params_.find(full);
    if (it == params_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where_, ": the model file has no parameter ", full));
    }
    if (it->second->shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          where_, ": parameter ", full, " has shape ", ShapeToString(it->second->shape),
          " in the model file, the layer needs ", ShapeToString(shape)));
    }
    return it->second;
  }
  absl::StatusOr<std::string> Initializer(const std::string& name, const Shape& shape) {
    ASSIGN_OR_RETURN(const NamedTensor* t, Param(name, shape));
    return g_.Floats(t->name, t->shape, t->data);
  }

  // (x - shift) * scale per channel, with the constants shaped to broadcast over (N, ...):
  // (C, 1, 1) for images, (F) for flat and sequence examples (core/data/dataset.h).
  absl::StatusOr<std::string> Normalize(const std::string& x) {
    const Shape& in = model_.info.input;
    const Normalization& norm = model_.info.normalization;
    const int64_t channels = in.size() == 3 ? in[0] : in.back();
    const int64_t stride = in.size() == 3 ? in[1] * in[2] : 1;
    if (static_cast<int64_t>(norm.shift.size()) != channels || norm.channel_stride != stride) {
      return absl::InvalidArgumentError(
          absl::StrCat("the model file's normalization has ", norm.shift.size(), " channels of ",
                       norm.channel_stride, " features, the input ", ShapeToString(in), " has ",
                       channels, " of ", stride));
    }
    bool shift = false, scale = false;
    for (size_t c = 0; c < norm.shift.size(); ++c) {
      shift = shift || norm.shift[c] != 0.0f;
      scale = scale || norm.scale[c] != 1.0f;
    }
    const std::vector<int64_t> dims =
        in.size() == 3 ? std::vector<int64_t>{channels, 1, 1} : std::vector<int64_t>{channels};
    std::string y = x;
    if (shift) y = g_.Node("Sub", {y, g_.Floats("input_shift", dims, norm.shift)}, "input_sub");
    if (scale) y = g_.Node("Mul", {y, g_.Floats("input_scale", dims, norm.scale)}, "input_mul");
    return y;
  }

  std::string Op(const std::string& op, const std::vector<std::string>& inputs) {
    return g_.Node(op, inputs, prefix_.substr(0, prefix_.size() - 1));
  }

  absl::StatusOr<std::string> Emit(const DenseSpec& d, std::string x, const Shape& in) {
    const int64_t features = NumElements(in);
    if (in.size() > 1) {
      x = Op("Flatten", {x});
      GraphBuilder::Attr(g_.last(), "axis", int64_t{1});
    }
    std::vector<std::string> inputs = {x, ""};
    ASSIGN_OR_RETURN(inputs[1], Initializer("weight", {d.units, features}));
    if (d.use_bias) {
      ASSIGN_OR_RETURN(std::string b, Initializer("bias", {d.units}));
      inputs.push_back(b);
    }
    const std::string y = Op("Gemm", inputs);
    GraphBuilder::Attr(g_.last(), "transB", int64_t{1});
    return y;
  }

  absl::StatusOr<std::string> Emit(const ActivationSpec& a, std::string x, const Shape& in) {
    switch (a.kind) {
      case Activation::kLinear:
        return x;
      case Activation::kSigmoid:
        return Op("Sigmoid", {x});
      case Activation::kTanh:
        return Op("Tanh", {x});
      case Activation::kRelu:
        return Op("Relu", {x});
      case Activation::kLeakyRelu: {
        const std::string y = Op("LeakyRelu", {x});
        GraphBuilder::Attr(g_.last(), "alpha", a.slope);
        return y;
      }
      case Activation::kPrelu: {
        // One slope per channel: dimension 0 of an image, the features of a sequence or a
        // flat example (core/layers/layers.h), broadcast as (C, 1, 1) or (F).
        const int64_t channels = in.size() == 2 ? in[1] : in[0];
        ASSIGN_OR_RETURN(const NamedTensor* slope, Param("slope", {channels}));
        const std::vector<int64_t> dims =
            in.size() == 3 ? std::vector<int64_t>{channels, 1, 1} : std::vector<int64_t>{channels};
        return Op("PRelu", {x, g_.Floats(slope->name, dims, slope->data)});
      }
      case Activation::kSoftmax: {
        const std::string y = Op("Softmax", {x});
        GraphBuilder::Attr(g_.last(), "axis", int64_t{-1});
        return y;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(where_, ": unknown activation"));
  }

  // 1 where x > threshold, else 0, as float.
  absl::StatusOr<std::string> Emit(const ThresholdSpec& t, std::string x, const Shape&) {
    const std::string gt = Op("Greater", {x, g_.Floats(prefix_ + "threshold", {}, {t.threshold})});
    const std::string y = Op("Cast", {gt});
    GraphBuilder::Attr(g_.last(), "to", int64_t{onnx::TensorProto_DataType_FLOAT});
    return y;
  }

  absl::StatusOr<std::string> Emit(const Conv2dSpec& c, std::string x, const Shape& in) {
    std::vector<std::string> inputs = {x, ""};
    ASSIGN_OR_RETURN(inputs[1],
                     Initializer("weight", {c.filters, in[0] / c.groups, c.kernel, c.kernel}));
    if (c.use_bias) {
      ASSIGN_OR_RETURN(std::string b, Initializer("bias", {c.filters}));
      inputs.push_back(b);
    }
    const std::string y = Op("Conv", inputs);
    onnx::NodeProto* n = g_.last();
    GraphBuilder::Attr(n, "kernel_shape", std::vector<int64_t>{c.kernel, c.kernel});
    GraphBuilder::Attr(n, "strides", std::vector<int64_t>{c.stride, c.stride});
    GraphBuilder::Attr(n, "pads", std::vector<int64_t>(4, c.padding));
    GraphBuilder::Attr(n, "dilations", std::vector<int64_t>{c.dilation, c.dilation});
    GraphBuilder::Attr(n, "group", int64_t{c.groups});
    return y;
  }

  // Floor-mode output sizes; average pooling counts the padding (docs/cnn.md), as
  // count_include_pad = 1 does.
  absl::StatusOr<std::string> Emit(const Pool2dSpec& p, std::string x, const Shape&) {
    const int64_t stride = p.stride > 0 ? p.stride : p.kernel;
    const std::string y = Op(p.max ? "MaxPool" : "AveragePool", {x});
    onnx::NodeProto* n = g_.last();
    GraphBuilder::Attr(n, "kernel_shape", std::vector<int64_t>{p.kernel, p.kernel});
    GraphBuilder::Attr(n, "strides", std::vector<int64_t>{stride, stride});
    GraphBuilder::Attr(n, "pads", std::vector<int64_t>(4, p.padding));
    if (!p.max) GraphBuilder::Attr(n, "count_include_pad", int64_t{1});
    return y;
  }

  // ONNX's LRN divides alpha by size, as oneDNN does; the spec's alpha is the paper's
  // (docs/cnn.md), so the attribute is alpha·size, the value the oneDNN kernel is given.
  absl::StatusOr<std::string> Emit(const LrnSpec& l, std::string x, const Shape&) {
    if (l.size % 2 == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          where_, ": size ", l.size,
          " cannot be exported faithfully: ONNX's LRN window for an even size is not the one "
          "cajal's kernel sums (channels c-(size-1)/2 .. c+(size-1)/2); use an odd size"));
    }
    const std::string y = Op("LRN", {x});
    onnx::NodeProto* n = g_.last();
    GraphBuilder::Attr(n, "size", int64_t{l.size});
    GraphBuilder::Attr(n, "alpha", l.alpha * static_cast<float>(l.size));
    GraphBuilder::Attr(n, "beta", l.beta);
    GraphBuilder::Attr(n, "bias", l.k);
    return y;
  }

  absl::StatusOr<std::string> Emit(const BatchNormSpec& b, std::string x, const Shape& in) {
    const Shape c = {in[0]};
    std::vector<std::string> inputs = {x};
    for (const char* name : {"scale", "shift", "running_mean", "running_var"}) {
      ASSIGN_OR_RETURN(std::string v, Initializer(name, c));
      inputs.push_back(v);
    }
    const std::string y = Op("BatchNormalization", inputs);
    GraphBuilder::Attr(g_.last(), "epsilon", b.epsilon);
    return y;
  }

  absl::StatusOr<std::string> Emit(const DropoutSpec&, std::string x, const Shape&) { return x; }

  absl::StatusOr<std::string> Emit(const FlattenSpec&, std::string x, const Shape&) {
    const std::string y = Op("Flatten", {x});
    GraphBuilder::Attr(g_.last(), "axis", int64_t{1});
    return y;
  }

  absl::StatusOr<std::string> Emit(const RecurrentSpec& r, std::string x, const Shape& in) {
    RecurrentEmitter emitter(&g_, prefix_, [this](const std::string& name, const Shape& shape) {
      return Param(name, shape);
    });
    return emitter.Emit(r, x, in);
  }

  // "logits" and "probabilities" for the classification losses, else "outputs".
  absl::Status Outputs(const JobConfig& config, const std::vector<LayerSpec>& layers,
                       const std::vector<Shape>& shapes, const std::vector<std::string>& values) {
    const bool reconstruct = config.reconstruct || config.preset == Preset::kAutoencoder;
    const bool ce = config.loss == LossKind::kCrossEntropy;
    const bool bce = config.loss == LossKind::kBinaryCrossEntropy;
    const size_t last = layers.size();
    if (reconstruct || model_.info.num_classes == 0 || !(ce || bce)) {
      Named("outputs", values[last], shapes[last]);
      return absl::OkStatus();
    }
    const auto* act = std::get_if<ActivationSpec>(&layers.back());
    const Activation fused_kind = ce ? Activation::kSoftmax : Activation::kSigmoid;
    const bool fused = layers.size() >= 2 && act != nullptr && act->kind == fused_kind;
    const size_t at = fused ? last - 1 : last;
    std::string logits = values[at];
    const int64_t d = NumElements(shapes[at]);
    if (shapes[at].size() > 1) {
      logits = g_.Node("Flatten", {logits}, "logits_flat");
      GraphBuilder::Attr(g_.last(), "axis", int64_t{1});
    }
    Named("logits", logits, {d});
    std::string probabilities;
    if (fused) {
      // The network's own softmax/sigmoid, which is what cajal's evaluation reads.
      probabilities = values[last];
      if (shapes[last].size() > 1) {
        probabilities = g_.Node("Flatten", {probabilities}, "probabilities_flat");
        GraphBuilder::Attr(g_.last(), "axis", int64_t{1});
      }
    } else {
      probabilities = g_.Node(ce ? "Softmax" : "Sigmoid", {logits}, "probabilities_of_logits");
      if (ce) GraphBuilder::Attr(g_.last(), "axis", int64_t{-1});
    }
    Named("probabilities", probabilities, {d});
    return absl::OkStatus();
  }

  // Exposes `value` as the graph output `name` (an Identity, so a value may be both an
  // intermediate and an output under its contract name).
  void Named(const std::string& name, const std::string& value, const Shape& shape) {
    g_.Node("Identity", {value}, name);
    g_.Output(g_.last()->output(0), "N", shape);
  }

  const ModelFile& model_;
  GraphBuilder g_;
  std::map<std::string, const NamedTensor*> params_;
  std::string where_;   // "model.layers.3 (lrn)", for messages
  std::string prefix_;  // "layers.3.lrn.", the layer's parameter names
};

}  // namespace

absl::StatusOr<std::string> ExportOnnx(const ModelFile& model) {
  if (!model.info.present) {
    return absl::InvalidArgumentError(
        "the model file is format version 1, which does not store the input shape and the "
        "normalization statistics an export needs; train the model again with this version");
  }
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(model.spec_json);
  if (!spec.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model file's spec: ", spec.status().message()));
  }
  ASSIGN_OR_RETURN(JobConfig config, ToJobConfig(*spec));
  ASSIGN_OR_RETURN(std::vector<LayerSpec> layers, ModelLayers(config, model.info));
  if (layers.empty()) return absl::InvalidArgumentError("the model file's spec has no layers");

  onnx::ModelProto proto;
  proto.set_ir_version(kOnnxIrVersion);
  proto.set_producer_name("cajal");
  proto.set_producer_version(CAJAL_VERSION);
  proto.set_doc_string(
      "Exported by cajal export. Input: raw features (normalization folded in); outputs: see "
      "docs/serving.md.");
  onnx::OperatorSetIdProto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  onnx::GraphProto* graph = proto.mutable_graph();
  graph->set_name("cajal");
  Exporter exporter(model, graph);
  RETURN_IF_ERROR(exporter.Build(config, layers));
  auto* classes = proto.add_metadata_props();
  classes->set_key("cajal.num_classes");
  classes->set_value(absl::StrCat(model.info.num_classes));
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) {
    return absl::InvalidArgumentError(
        "the exported model cannot be serialized (an ONNX file holds at most 2 GiB)");
  }
  return bytes;
}

absl::Status ExportOnnxFile(const std::string& model_path, const std::string& onnx_path) {
  ASSIGN_OR_RETURN(ModelFile model, ReadModelFile(model_path));
  ASSIGN_OR_RETURN(std::string bytes, ExportOnnx(model));
  // A name of its own per call, so concurrent exports of one model never share a temp file.
  static std::atomic<int> counter{0};
  const std::string tmp = absl::StrCat(onnx_path, ".", ::getpid(), ".", counter++);
  RETURN_IF_ERROR(WriteFileAtomically(tmp, bytes));
  if (std::rename(tmp.c_str(), onnx_path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename to ", onnx_path, ": ", err));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> OnnxBesideModel(const std::string& model_path) {
  const size_t slash = model_path.find_last_of('/');
  const std::string onnx_path =
      (slash == std::string::npos ? std::string() : model_path.substr(0, slash + 1)) + "model.onnx";
  struct stat model_st, onnx_st;
  if (::stat(model_path.c_str(), &model_st) != 0) {
    return absl::NotFoundError(
        absl::StrCat("the job's model file is missing: ", std::strerror(errno)));
  }
  if (::stat(onnx_path.c_str(), &onnx_st) == 0 &&
      (onnx_st.st_mtim.tv_sec > model_st.st_mtim.tv_sec ||
       (onnx_st.st_mtim.tv_sec == model_st.st_mtim.tv_sec &&
        onnx_st.st_mtim.tv_nsec > model_st.st_mtim.tv_nsec))) {
    return onnx_path;
  }
  absl::Status s = ExportOnnxFile(model_path, onnx_path);
  if (s.code() == absl::StatusCode::kInvalidArgument) {
    return absl::FailedPreconditionError(
        absl::StrCat("the model cannot be exported to ONNX: ", s.message()));
  }
  RETURN_IF_ERROR(s);
  return onnx_path;
}

}  // namespace cajal
