#include "service/spec/convert.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/data/dataset.h"
#include "core/util/status_macros.h"
#include "google/protobuf/util/message_differencer.h"

namespace cajal {
namespace {

using v1::JobSpec;

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// Checks lo <= v <= hi for integers.
absl::Status IntIn(const std::string& path, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo) {
    return Bad(path, lo == 1 ? absl::StrCat("must be > 0, got ", v)
                             : absl::StrCat("must be >= ", lo, ", got ", v));
  }
  if (v > hi) return Bad(path, absl::StrCat("must be <= ", hi, ", got ", v));
  return absl::OkStatus();
}

// Protobuf enums are open: a client can send a number no value has. Refuse it, naming it.
template <class IsValid>
absl::Status KnownEnum(const std::string& path, int value, IsValid is_valid) {
  if (!is_valid(value)) return Bad(path, absl::StrCat("unknown enum value ", value));
  return absl::OkStatus();
}

enum class Range { kPositive, kNonNegative, kUnit, kUnitOpen, kAny };

absl::Status Real(const std::string& path, double v, Range range) {
  if (!std::isfinite(v)) return Bad(path, absl::StrCat("must be a finite number, got ", v));
  switch (range) {
    case Range::kPositive:
      if (v <= 0) return Bad(path, absl::StrCat("must be > 0, got ", v));
      break;
    case Range::kNonNegative:
      if (v < 0) return Bad(path, absl::StrCat("must be >= 0, got ", v));
      break;
    case Range::kUnit:
      if (v < 0 || v > 1) return Bad(path, absl::StrCat("must be in [0, 1], got ", v));
      break;
    case Range::kUnitOpen:
      if (v < 0 || v >= 1) return Bad(path, absl::StrCat("must be in [0, 1), got ", v));
      break;
    case Range::kAny:
      break;
  }
  return absl::OkStatus();
}

absl::Status ValidateLayer(const v1::Layer& l, const std::string& p) {
  switch (l.kind_case()) {
    case v1::Layer::kDense:
      RETURN_IF_ERROR(IntIn(p + ".dense.units", l.dense().units(), 1, kMaxUnits));
      break;
    case v1::Layer::kActivation:
      RETURN_IF_ERROR(
          KnownEnum(p + ".activation.kind", l.activation().kind(), v1::ActivationKind_IsValid));
      if (l.activation().kind() == v1::ACTIVATION_KIND_UNSPECIFIED) {
        return Bad(p + ".activation.kind",
                   "required (linear, sigmoid, tanh, relu, leaky_relu, prelu, softmax)");
      }
      if (l.activation().has_slope()) {
        RETURN_IF_ERROR(Real(p + ".activation.slope", l.activation().slope(), Range::kAny));
      }
      break;
    case v1::Layer::kThreshold:
      RETURN_IF_ERROR(Real(p + ".threshold.threshold", l.threshold().threshold(), Range::kAny));
      break;
    case v1::Layer::kConv2D: {
      const auto& c = l.conv2d();
      const std::string q = p + ".conv2d";
      RETURN_IF_ERROR(IntIn(q + ".filters", c.filters(), 1, kMaxUnits));
      RETURN_IF_ERROR(IntIn(q + ".kernel", c.kernel(), 1, 1024));
      if (c.has_stride()) RETURN_IF_ERROR(IntIn(q + ".stride", c.stride(), 1, 1024));
      RETURN_IF_ERROR(IntIn(q + ".padding", c.padding(), 0, 1024));
      if (c.has_dilation()) RETURN_IF_ERROR(IntIn(q + ".dilation", c.dilation(), 1, 1024));
      if (c.has_groups()) RETURN_IF_ERROR(IntIn(q + ".groups", c.groups(), 1, kMaxUnits));
      if (c.filters() % (c.has_groups() ? c.groups() : 1) != 0) {
        return Bad(q + ".filters",
                   absl::StrCat(c.filters(), " is not divisible by groups ", c.groups()));
      }
      break;
    }
    case v1::Layer::kMaxPool2D:
    case v1::Layer::kAvgPool2D: {
      const auto& pool = l.has_max_pool2d() ? l.max_pool2d() : l.avg_pool2d();
      const std::string q = p + (l.has_max_pool2d() ? ".max_pool2d" : ".avg_pool2d");
      RETURN_IF_ERROR(IntIn(q + ".kernel", pool.kernel(), 1, 1024));
      if (pool.has_stride()) RETURN_IF_ERROR(IntIn(q + ".stride", pool.stride(), 1, 1024));
      RETURN_IF_ERROR(IntIn(q + ".padding", pool.padding(), 0, pool.kernel() / 2));
      break;
    }
    case v1::Layer::kLrn: {
      const auto& n = l.lrn();
      if (n.has_size()) RETURN_IF_ERROR(IntIn(p + ".lrn.size", n.size(), 1, 1024));
      if (n.has_alpha()) RETURN_IF_ERROR(Real(p + ".lrn.alpha", n.alpha(), Range::kNonNegative));
      if (n.has_beta()) RETURN_IF_ERROR(Real(p + ".lrn.beta", n.beta(), Range::kNonNegative));
      if (n.has_k()) RETURN_IF_ERROR(Real(p + ".lrn.k", n.k(), Range::kPositive));
      break;
    }
    case v1::Layer::kBatchNorm:
      if (l.batch_norm().has_momentum()) {
        RETURN_IF_ERROR(Real(p + ".batch_norm.momentum", l.batch_norm().momentum(), Range::kUnit));
      }
      if (l.batch_norm().has_epsilon()) {
        RETURN_IF_ERROR(
            Real(p + ".batch_norm.epsilon", l.batch_norm().epsilon(), Range::kPositive));
      }
      break;
    case v1::Layer::kDropout:
      RETURN_IF_ERROR(Real(p + ".dropout.rate", l.dropout().rate(), Range::kUnitOpen));
      break;
    case v1::Layer::kFlatten:
      break;
    case v1::Layer::kRnn:
      RETURN_IF_ERROR(
          KnownEnum(p + ".rnn.activation", l.rnn().activation(), v1::RnnActivation_IsValid));
      RETURN_IF_ERROR(IntIn(p + ".rnn.units", l.rnn().units(), 1, kMaxUnits));
      if (l.rnn().has_layers()) RETURN_IF_ERROR(IntIn(p + ".rnn.layers", l.rnn().layers(), 1, 64));
      break;
    case v1::Layer::kLstm:
      RETURN_IF_ERROR(IntIn(p + ".lstm.units", l.lstm().units(), 1, kMaxUnits));
      if (l.lstm().has_layers())
        RETURN_IF_ERROR(IntIn(p + ".lstm.layers", l.lstm().layers(), 1, 64));
      break;
    case v1::Layer::kGru:
      RETURN_IF_ERROR(IntIn(p + ".gru.units", l.gru().units(), 1, kMaxUnits));
      if (l.gru().has_layers()) RETURN_IF_ERROR(IntIn(p + ".gru.layers", l.gru().layers(), 1, 64));
      break;
    case v1::Layer::KIND_NOT_SET:
      return Bad(p,
                 "sets no layer kind (one of dense, activation, threshold, conv2d, max_pool2d, "
                 "avg_pool2d, lrn, batch_norm, dropout, flatten, rnn, lstm, gru)");
  }
  return absl::OkStatus();
}

// A data file is a path or an uploaded data set's id, exactly one. `path_field` is the full
// field path of the path (data.train.csv.path); `dataset_name` the sibling field's name.
absl::Status FileOrDataset(const std::string& path_field, const std::string& path,
                           const std::string& dataset_name, const std::string& dataset) {
  const std::string parent = path_field.substr(0, path_field.rfind('.') + 1);
  const std::string dataset_field = parent + dataset_name;
  if (path.empty() && dataset.empty()) {
    return Bad(path_field,
               absl::StrCat("required (or ", dataset_field, ": the id of an uploaded data set)"));
  }
  if (!path.empty() && !dataset.empty()) {
    return Bad(dataset_field,
               absl::StrCat("set either ", path_field, " or ", dataset_field, ", not both"));
  }
  if (!dataset.empty()) return ValidateDatasetId(dataset_field, dataset);
  return absl::OkStatus();
}

absl::Status ValidateSource(const v1::DataSource& s, const std::string& p) {
  switch (s.source_case()) {
    case v1::DataSource::kBuiltin:
      if (!IsBuiltin(s.builtin())) {
        return Bad(p + ".builtin", absl::StrCat("unknown data set \"", s.builtin(),
                                                "\" (known: fashion-mnist, and, or, xor, adding)"));
      }
      break;
    case v1::DataSource::kIdx:
      RETURN_IF_ERROR(FileOrDataset(p + ".idx.images", s.idx().images(), "images_dataset",
                                    s.idx().images_dataset()));
      RETURN_IF_ERROR(FileOrDataset(p + ".idx.labels", s.idx().labels(), "labels_dataset",
                                    s.idx().labels_dataset()));
      break;
    case v1::DataSource::kCsv:
      RETURN_IF_ERROR(FileOrDataset(p + ".csv.path", s.csv().path(), "dataset", s.csv().dataset()));
      break;
    case v1::DataSource::SOURCE_NOT_SET:
      return Bad(p, "set one of builtin, idx, csv");
  }
  if (s.shape_size() > 3) return Bad(p + ".shape", "at most 3 dimensions (C, H, W)");
  for (int i = 0; i < s.shape_size(); ++i) {
    RETURN_IF_ERROR(IntIn(absl::StrCat(p, ".shape.", i), s.shape(i), 1, 1 << 16));
  }
  if (s.has_sequence_length()) {
    RETURN_IF_ERROR(IntIn(p + ".sequence_length", s.sequence_length(), 2, 10000));
  }
  if (s.has_examples()) RETURN_IF_ERROR(IntIn(p + ".examples", s.examples(), 1, 10000000));
  return absl::OkStatus();
}

Activation ActivationOf(v1::ActivationKind k) {
  switch (k) {
    case v1::ACTIVATION_KIND_SIGMOID:
      return Activation::kSigmoid;
    case v1::ACTIVATION_KIND_TANH:
      return Activation::kTanh;
    case v1::ACTIVATION_KIND_RELU:
      return Activation::kRelu;
    case v1::ACTIVATION_KIND_LEAKY_RELU:
      return Activation::kLeakyRelu;
    case v1::ACTIVATION_KIND_PRELU:
      return Activation::kPrelu;
    case v1::ACTIVATION_KIND_SOFTMAX:
      return Activation::kSoftmax;
    default:
      return Activation::kLinear;
  }
}

LayerSpec LayerOf(const v1::Layer& l) {
  switch (l.kind_case()) {
    case v1::Layer::kDense:
      return DenseSpec{l.dense().units(), !l.dense().has_use_bias() || l.dense().use_bias()};
    case v1::Layer::kActivation:
      return ActivationSpec{ActivationOf(l.activation().kind()),
                            l.activation().has_slope() ? l.activation().slope() : 0.01f};
    case v1::Layer::kThreshold:
      return ThresholdSpec{l.threshold().threshold()};
    case v1::Layer::kConv2D: {
      const auto& c = l.conv2d();
      return Conv2dSpec{c.filters(),
                        c.kernel(),
                        c.has_stride() ? c.stride() : 1,
                        c.padding(),
                        c.has_dilation() ? c.dilation() : 1,
                        c.has_groups() ? c.groups() : 1,
                        !c.has_use_bias() || c.use_bias()};
    }
    case v1::Layer::kMaxPool2D:
    case v1::Layer::kAvgPool2D: {
      const auto& p = l.has_max_pool2d() ? l.max_pool2d() : l.avg_pool2d();
      return Pool2dSpec{l.has_max_pool2d(), p.kernel(), p.has_stride() ? p.stride() : p.kernel(),
                        p.padding()};
    }
    case v1::Layer::kLrn: {
      const auto& n = l.lrn();
      return LrnSpec{n.has_size() ? n.size() : 5, n.has_alpha() ? n.alpha() : 1e-4f,
                     n.has_beta() ? n.beta() : 0.75f, n.has_k() ? n.k() : 2.0f};
    }
    case v1::Layer::kBatchNorm:
      return BatchNormSpec{l.batch_norm().has_momentum() ? l.batch_norm().momentum() : 0.9f,
                           l.batch_norm().has_epsilon() ? l.batch_norm().epsilon() : 1e-5f};
    case v1::Layer::kDropout:
      return DropoutSpec{l.dropout().rate()};
    case v1::Layer::kRnn: {
      const auto& r = l.rnn();
      return RecurrentSpec{r.activation() == v1::RNN_ACTIVATION_RELU ? RecurrentCell::kRnnRelu
                                                                     : RecurrentCell::kRnnTanh,
                           r.units(),
                           r.has_layers() ? r.layers() : 1,
                           r.bidirectional(),
                           r.return_sequences(),
                           false};
    }
    case v1::Layer::kLstm: {
      const auto& r = l.lstm();
      return RecurrentSpec{
          RecurrentCell::kLstm, r.units(),   r.has_layers() ? r.layers() : 1, r.bidirectional(),
          r.return_sequences(), r.peephole()};
    }
    case v1::Layer::kGru: {
      const auto& r = l.gru();
      return RecurrentSpec{
          RecurrentCell::kGru,  r.units(), r.has_layers() ? r.layers() : 1, r.bidirectional(),
          r.return_sequences(), false};
    }
    default:
      return FlattenSpec{};
  }
}

DataSourceConfig SourceOf(const v1::DataSource& s, uint64_t seed) {
  DataSourceConfig c;
  switch (s.source_case()) {
    case v1::DataSource::kBuiltin:
      c.kind = DataSourceConfig::Kind::kBuiltin;
      c.builtin = s.builtin();
      break;
    case v1::DataSource::kIdx:
      c.kind = DataSourceConfig::Kind::kIdx;
      c.images = s.idx().images();
      c.labels = s.idx().labels();
      break;
    case v1::DataSource::kCsv:
      c.kind = DataSourceConfig::Kind::kCsv;
      c.csv_path = s.csv().path();
      c.csv.label_column = s.csv().has_label_column() ? s.csv().label_column() : -1;
      c.csv.header = s.csv().header();
      c.csv.regression = s.csv().regression();
      break;
    default:
      break;
  }
  c.shape.assign(s.shape().begin(), s.shape().end());
  c.builtin_options.sequence_length = s.has_sequence_length() ? s.sequence_length() : 50;
  c.builtin_options.examples = s.has_examples() ? s.examples() : 10000;
  c.builtin_options.seed = seed + 1;
  return c;
}

OptimizerKind OptimizerOf(v1::OptimizerKind k) {
  switch (k) {
    case v1::OPTIMIZER_KIND_MOMENTUM:
      return OptimizerKind::kMomentum;
    case v1::OPTIMIZER_KIND_NESTEROV:
      return OptimizerKind::kNesterov;
    case v1::OPTIMIZER_KIND_RMSPROP:
      return OptimizerKind::kRmsprop;
    case v1::OPTIMIZER_KIND_ADAGRAD:
      return OptimizerKind::kAdagrad;
    case v1::OPTIMIZER_KIND_ADAM:
      return OptimizerKind::kAdam;
    case v1::OPTIMIZER_KIND_ADADELTA:
      return OptimizerKind::kAdadelta;
    case v1::OPTIMIZER_KIND_HESSIAN_FREE:
      return OptimizerKind::kHessianFree;
    case v1::OPTIMIZER_KIND_PERCEPTRON_RULE:
      return OptimizerKind::kPerceptronRule;
    default:
      return OptimizerKind::kSgd;
  }
}

}  // namespace

bool IsDatasetId(const std::string& id) {
  return id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

absl::Status ValidateDatasetId(const std::string& field, const std::string& id) {
  if (IsDatasetId(id)) return absl::OkStatus();
  return Bad(field, "must be a data set id: 32 lowercase hex characters, as UploadDataset returns");
}

absl::Status RequireLocalData(const v1::JobSpec& spec) {
  for (const auto& [where, src] : {std::make_pair("data.train", &spec.data().train()),
                                   std::make_pair("data.test", &spec.data().test())}) {
    std::string field;
    if (!src->csv().dataset().empty()) field = ".csv.dataset";
    if (!src->idx().images_dataset().empty()) field = ".idx.images_dataset";
    if (!src->idx().labels_dataset().empty()) field = ".idx.labels_dataset";
    if (!field.empty()) {
      return Bad(absl::StrCat(where, field),
                 "names a data set uploaded to a cajald server, but this command reads local "
                 "files: name the file's path instead (or submit the job to the server)");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSpec(const JobSpec& spec) {
  const auto& m = spec.model();
  RETURN_IF_ERROR(KnownEnum("model.preset", m.preset(), v1::Preset_IsValid));
  RETURN_IF_ERROR(KnownEnum("model.init.kind", m.init().kind(), v1::InitKind_IsValid));
  RETURN_IF_ERROR(KnownEnum("data.normalize", spec.data().normalize(), v1::Normalize_IsValid));
  RETURN_IF_ERROR(KnownEnum("optimizer.kind", spec.optimizer().kind(), v1::OptimizerKind_IsValid));
  RETURN_IF_ERROR(KnownEnum("training.loss", spec.training().loss(), v1::Loss_IsValid));
  RETURN_IF_ERROR(KnownEnum("training.device", spec.training().device(), v1::Device_IsValid));
  if (m.preset() == v1::PRESET_UNSPECIFIED && m.layers_size() == 0) {
    return Bad("model",
               "set preset (perceptron, mlp, lenet, alexnet, rnn, lstm, gru, "
               "autoencoder) or layers");
  }
  if (m.preset() != v1::PRESET_UNSPECIFIED && m.layers_size() > 0) {
    return Bad("model", "set either preset or layers, not both");
  }
  RETURN_IF_ERROR(IntIn("model.layers", m.layers_size(), 0, kMaxLayers));
  for (int i = 0; i < m.layers_size(); ++i) {
    RETURN_IF_ERROR(ValidateLayer(m.layers(i), absl::StrCat("model.layers.", i)));
  }
  if (m.init().has_range())
    RETURN_IF_ERROR(Real("model.init.range", m.init().range(), Range::kPositive));
  if (m.init().has_std()) RETURN_IF_ERROR(Real("model.init.std", m.init().std(), Range::kPositive));
  if (m.init().has_gain())
    RETURN_IF_ERROR(Real("model.init.gain", m.init().gain(), Range::kPositive));
  RETURN_IF_ERROR(Real("model.init.bias", m.init().bias(), Range::kAny));

  const auto& d = spec.data();
  if (!d.has_train()) return Bad("data.train", "required (builtin, idx or csv)");
  RETURN_IF_ERROR(ValidateSource(d.train(), "data.train"));
  if (d.has_test()) RETURN_IF_ERROR(ValidateSource(d.test(), "data.test"));
  RETURN_IF_ERROR(Real("data.validation_fraction", d.validation_fraction(), Range::kUnitOpen));

  const auto& o = spec.optimizer();
  if (o.has_hessian_free()) {
    const auto& h = o.hessian_free();
    const std::string q = "optimizer.hessian_free";
    if (o.kind() != v1::OPTIMIZER_KIND_HESSIAN_FREE) {
      return Bad(q, "is set but optimizer.kind is not hessian_free");
    }
    if (h.has_damping()) RETURN_IF_ERROR(Real(q + ".damping", h.damping(), Range::kPositive));
    if (h.has_cg_max_iterations()) {
      RETURN_IF_ERROR(IntIn(q + ".cg_max_iterations", h.cg_max_iterations(), 1, 10000));
    }
    RETURN_IF_ERROR(IntIn(q + ".curvature_batch_size", h.curvature_batch_size(), 0, kMaxBatch));
    RETURN_IF_ERROR(IntIn(q + ".gradient_batch_size", h.gradient_batch_size(), 0, kMaxBatch));
    const int64_t gradient_batch =
        h.gradient_batch_size() > 0 ? h.gradient_batch_size() : spec.training().batch_size();
    if (h.curvature_batch_size() > gradient_batch) {
      return Bad(q + ".curvature_batch_size",
                 absl::StrCat(h.curvature_batch_size(), " exceeds the gradient batch of ",
                              gradient_batch, "; the curvature batch is a subset of it"));
    }
    RETURN_IF_ERROR(Real(q + ".structural_damping", h.structural_damping(), Range::kNonNegative));
    if (h.structural_damping() > 0) {
      return Bad(q + ".structural_damping",
                 "applies to recurrent layers, which hessian_free does not support yet");
    }
  }
  if (o.has_learning_rate()) {
    RETURN_IF_ERROR(Real("optimizer.learning_rate", o.learning_rate(), Range::kPositive));
  }
  if (o.has_momentum()) RETURN_IF_ERROR(Real("optimizer.momentum", o.momentum(), Range::kUnitOpen));
  if (o.has_beta1()) RETURN_IF_ERROR(Real("optimizer.beta1", o.beta1(), Range::kUnitOpen));
  if (o.has_beta2()) RETURN_IF_ERROR(Real("optimizer.beta2", o.beta2(), Range::kUnitOpen));
  if (o.has_epsilon()) RETURN_IF_ERROR(Real("optimizer.epsilon", o.epsilon(), Range::kPositive));
  if (o.has_rho()) RETURN_IF_ERROR(Real("optimizer.rho", o.rho(), Range::kUnitOpen));
  RETURN_IF_ERROR(Real("optimizer.weight_decay", o.weight_decay(), Range::kNonNegative));
  RETURN_IF_ERROR(Real("optimizer.clip_norm", o.clip_norm(), Range::kNonNegative));

  const auto& t = spec.training();
  RETURN_IF_ERROR(IntIn("training.epochs", t.epochs(), 1, kMaxEpochs));
  RETURN_IF_ERROR(IntIn("training.batch_size", t.batch_size(), 1, kMaxBatch));
  RETURN_IF_ERROR(IntIn("training.max_steps", t.max_steps(), 0, int64_t{1} << 40));
  RETURN_IF_ERROR(
      IntIn("training.early_stopping.patience", t.early_stopping().patience(), 0, kMaxEpochs));
  RETURN_IF_ERROR(Real("training.early_stopping.min_delta", t.early_stopping().min_delta(),
                       Range::kNonNegative));
  RETURN_IF_ERROR(
      IntIn("training.checkpoint_every_steps", t.checkpoint_every_steps(), 0, int64_t{1} << 40));
  RETURN_IF_ERROR(IntIn("training.threads", t.threads(), 0, 1024));
  RETURN_IF_ERROR(IntIn("training.log_every_steps", t.log_every_steps(), 0, int64_t{1} << 40));
  if (spec.labels_size() > 64) return Bad("labels", "at most 64 labels");
  for (const auto& [k, v] : spec.labels()) {
    if (k.empty() || k.size() > 63)
      return Bad("labels", absl::StrCat("key \"", k, "\" must have 1 to 63 characters"));
    if (v.size() > 63)
      return Bad(absl::StrCat("labels.", k), "value must have at most 63 characters");
  }
  return absl::OkStatus();
}

absl::StatusOr<JobConfig> ToJobConfig(const JobSpec& spec) {
  RETURN_IF_ERROR(ValidateSpec(spec));
  JobConfig c;
  const auto& m = spec.model();
  switch (m.preset()) {
    case v1::PRESET_PERCEPTRON:
      c.preset = Preset::kPerceptron;
      break;
    case v1::PRESET_MLP:
      c.preset = Preset::kMlp;
      break;
    case v1::PRESET_LENET:
      c.preset = Preset::kLenet;
      break;
    case v1::PRESET_ALEXNET:
      c.preset = Preset::kAlexnet;
      break;
    case v1::PRESET_RNN:
      c.preset = Preset::kRnn;
      break;
    case v1::PRESET_LSTM:
      c.preset = Preset::kLstm;
      break;
    case v1::PRESET_GRU:
      c.preset = Preset::kGru;
      break;
    case v1::PRESET_AUTOENCODER:
      c.preset = Preset::kAutoencoder;
      break;
    default:
      break;
  }
  for (const auto& l : m.layers()) c.layers.push_back(LayerOf(l));
  const auto& in = m.init();
  switch (in.kind()) {
    case v1::INIT_KIND_RANDOM_UNIFORM:
      c.init.kind = InitKind::kRandomUniform;
      break;
    case v1::INIT_KIND_RANDOM_NORMAL:
      c.init.kind = InitKind::kRandomNormal;
      break;
    case v1::INIT_KIND_XAVIER_UNIFORM:
      c.init.kind = InitKind::kXavierUniform;
      break;
    case v1::INIT_KIND_XAVIER_NORMAL:
      c.init.kind = InitKind::kXavierNormal;
      break;
    case v1::INIT_KIND_HE_UNIFORM:
      c.init.kind = InitKind::kHeUniform;
      break;
    case v1::INIT_KIND_HE_NORMAL:
      c.init.kind = InitKind::kHeNormal;
      break;
    case v1::INIT_KIND_ZEROS:
      c.init.kind = InitKind::kZeros;
      break;
    default:
      // The perceptron classically starts from zero weights.
      c.init.kind = m.preset() == v1::PRESET_PERCEPTRON ? InitKind::kZeros : InitKind::kDefault;
  }
  if (in.has_range()) c.init.range = in.range();
  if (in.has_std()) c.init.std = in.std();
  if (in.has_gain()) c.init.gain = in.gain();
  c.init.bias = in.bias();

  const auto& t = spec.training();
  c.seed = t.seed();
  const auto& d = spec.data();
  c.train = SourceOf(d.train(), c.seed);
  if (d.has_test()) c.test = SourceOf(d.test(), c.seed);
  switch (d.normalize()) {
    case v1::NORMALIZE_SCALE:
      c.normalize = NormalizeKind::kScale;
      break;
    case v1::NORMALIZE_STANDARDIZE:
      c.normalize = NormalizeKind::kStandardize;
      break;
    default:
      c.normalize = NormalizeKind::kNone;
  }
  c.validation_fraction = d.validation_fraction();
  c.shuffle = !d.has_shuffle() || d.shuffle();

  const auto& o = spec.optimizer();
  OptimizerConfig& oc = c.optimizer;
  v1::OptimizerKind kind = o.kind();
  if (kind == v1::OPTIMIZER_KIND_UNSPECIFIED) {
    kind = m.preset() == v1::PRESET_PERCEPTRON ? v1::OPTIMIZER_KIND_PERCEPTRON_RULE
                                               : v1::OPTIMIZER_KIND_SGD;
  }
  oc.kind = OptimizerOf(kind);
  // PyTorch's defaults for each kind.
  switch (oc.kind) {
    case OptimizerKind::kAdam:
      oc.learning_rate = 1e-3f;
      oc.epsilon = 1e-8f;
      break;
    case OptimizerKind::kAdadelta:
      oc.learning_rate = 1.0f;
      oc.rho = 0.9f;
      oc.epsilon = 1e-6f;
      break;
    case OptimizerKind::kAdagrad:
      oc.learning_rate = 1e-2f;
      oc.epsilon = 1e-10f;
      break;
    case OptimizerKind::kRmsprop:
      oc.learning_rate = 1e-2f;
      oc.rho = 0.99f;
      oc.epsilon = 1e-8f;
      break;
    case OptimizerKind::kPerceptronRule:
      oc.learning_rate = 1.0f;
      break;
    default:
      oc.learning_rate = 1e-2f;
  }
  if (o.has_learning_rate()) oc.learning_rate = o.learning_rate();
  if (o.has_momentum()) oc.momentum = o.momentum();
  if (o.has_beta1()) oc.beta1 = o.beta1();
  if (o.has_beta2()) oc.beta2 = o.beta2();
  if (o.has_epsilon()) oc.epsilon = o.epsilon();
  if (o.has_rho()) oc.rho = o.rho();
  oc.weight_decay = o.weight_decay();
  oc.clip_norm = o.clip_norm();
  if (oc.kind == OptimizerKind::kHessianFree) {
    // Martens 2010's defaults (HessianFreeConfig); the gradient batch is the training batch.
    const auto& h = o.hessian_free();
    if (h.has_damping()) oc.hessian_free.damping = h.damping();
    if (h.has_cg_max_iterations()) oc.hessian_free.cg_max_iterations = h.cg_max_iterations();
    oc.hessian_free.curvature_batch_size = h.curvature_batch_size();
    oc.hessian_free.structural_damping = h.structural_damping();
  }

  switch (t.loss()) {
    case v1::LOSS_MSE:
      c.loss = LossKind::kMse;
      break;
    case v1::LOSS_BINARY_CROSS_ENTROPY:
      c.loss = LossKind::kBinaryCrossEntropy;
      break;
    case v1::LOSS_CROSS_ENTROPY:
      c.loss = LossKind::kCrossEntropy;
      break;
    default:
      // Threshold units and autoencoders are trained on squared error; classifiers on
      // cross-entropy.
      c.loss = m.preset() == v1::PRESET_PERCEPTRON || m.preset() == v1::PRESET_AUTOENCODER ||
                       oc.kind == OptimizerKind::kPerceptronRule
                   ? LossKind::kMse
                   : LossKind::kCrossEntropy;
  }
  c.epochs = t.epochs();
  c.batch_size = t.batch_size();
  if (oc.kind == OptimizerKind::kHessianFree && o.hessian_free().gradient_batch_size() > 0) {
    c.batch_size = o.hessian_free().gradient_batch_size();
  }
  c.reconstruct = m.preset() == v1::PRESET_AUTOENCODER;
  c.max_steps = t.max_steps();
  c.patience = t.early_stopping().patience();
  c.min_delta = t.early_stopping().min_delta();
  c.threads = t.threads();
  c.log_every_steps = t.log_every_steps();
  switch (t.device()) {
    case v1::DEVICE_CPU:
      c.device = DeviceChoice::kCpu;
      break;
    case v1::DEVICE_GPU:
      c.device = DeviceChoice::kGpu;
      break;
    default:
      c.device = DeviceChoice::kAuto;
  }
  c.sync_batch_norm = t.sync_batch_norm();
  return c;
}

bool SameTraining(const v1::JobSpec& a, const v1::JobSpec& b) {
  auto training_part = [](v1::JobSpec s) {
    s.clear_labels();
    v1::Training* t = s.mutable_training();
    t->clear_log_every_steps();
    t->clear_checkpoint_every_steps();
    t->clear_tfevents();
    return s;
  };
  return google::protobuf::util::MessageDifferencer::Equals(training_part(a), training_part(b));
}

v1::MemoryEstimate ToProto(const MemoryEstimate& e) {
  v1::MemoryEstimate p;
  p.set_total_bytes(e.total_bytes());
  p.set_host_bytes(e.host_bytes);
  p.set_device_bytes(e.device_bytes);
  p.set_parameters(e.parameters);
  if (!e.items.empty()) {
    const MemoryItem& big = e.Biggest();
    v1::MemoryItem* b = p.mutable_biggest();
    b->set_where(big.where);
    b->set_what(big.what);
    b->set_bytes(big.bytes);
    b->set_device(big.device);
  }
  return p;
}

}  // namespace cajal
