// Job specs: parsing (YAML, JSON, --set overrides), validation messages, conversion to JobConfig.
#include <stdlib.h>

#include <fstream>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/spec/convert.h"
#include "service/spec/spec_loader.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

// A valid spec with each top-level section replaceable: Spec({{"training", "{epochs: 0}"}}).
// A section set to "" is left out; keys not in the base are appended.
std::string Spec(const std::map<std::string, std::string>& sections = {}) {
  std::map<std::string, std::string> s = {
      {"model", "{layers: [{dense: {units: 4}}, {activation: {kind: relu}}, {dense: {units: 2}}]}"},
      {"data", "{train: {builtin: xor}}"},
      {"training", "{epochs: 1, batch_size: 4}"},
  };
  for (const auto& [k, v] : sections) s[k] = v;
  std::string text;
  for (const auto& [k, v] : s) {
    if (!v.empty()) absl::StrAppend(&text, k, ": ", v, "\n");
  }
  return text;
}

// ParseSpec then ToJobConfig: the path a spec takes through `cajal train`.
absl::Status ParseAndConvert(const std::string& text,
                             const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(text, overrides);
  if (!spec.ok()) return spec.status();
  return ToJobConfig(*spec).status();
}

JobConfig MustConvert(const std::string& text, const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(text, overrides);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return {};
  absl::StatusOr<JobConfig> config = ToJobConfig(*spec);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : JobConfig{};
}

TEST(SpecTest, SelfTestBaseSpecIsValid) { EXPECT_TRUE(ParseAndConvert(Spec()).ok()) << Spec(); }

TEST(SpecTest, ReadmeExampleParsesAndConverts) {
  const std::string path = std::string(CAJAL_SOURCE_DIR) + "/examples/mlp.yaml";
  absl::StatusOr<v1::JobSpec> spec = LoadSpecFile(path);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->model().layers_size(), 5);
  EXPECT_EQ(spec->model().layers(0).dense().units(), 256);
  EXPECT_EQ(spec->model().layers(1).activation().kind(), v1::ACTIVATION_KIND_RELU);
  EXPECT_EQ(spec->model().init().kind(), v1::INIT_KIND_HE_UNIFORM);
  EXPECT_EQ(spec->data().train().builtin(), "fashion-mnist");
  EXPECT_EQ(spec->optimizer().kind(), v1::OPTIMIZER_KIND_ADAM);

  absl::StatusOr<JobConfig> c = ToJobConfig(*spec);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->layers.size(), 5u);
  const int units[] = {256, 0, 128, 0, 10};
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    if (i % 2 == 0) {
      const auto* d = std::get_if<DenseSpec>(&c->layers[i]);
      ASSERT_NE(d, nullptr);
      EXPECT_EQ(d->units, units[i]);
      EXPECT_TRUE(d->use_bias);
    } else {
      const auto* a = std::get_if<ActivationSpec>(&c->layers[i]);
      ASSERT_NE(a, nullptr);
      EXPECT_EQ(a->kind, Activation::kRelu);
    }
  }
  EXPECT_EQ(c->preset, Preset::kNone);
  EXPECT_EQ(c->init.kind, InitKind::kHeUniform);
  EXPECT_EQ(c->train.kind, DataSourceConfig::Kind::kBuiltin);
  EXPECT_EQ(c->train.builtin, "fashion-mnist");
  EXPECT_EQ(c->test.kind, DataSourceConfig::Kind::kNone);
  EXPECT_EQ(c->normalize, NormalizeKind::kScale);
  EXPECT_EQ(c->validation_fraction, 0.0f);
  EXPECT_TRUE(c->shuffle);
  EXPECT_EQ(c->optimizer.kind, OptimizerKind::kAdam);
  EXPECT_FLOAT_EQ(c->optimizer.learning_rate, 0.001f);
  EXPECT_FLOAT_EQ(c->optimizer.beta1, 0.9f);
  EXPECT_FLOAT_EQ(c->optimizer.beta2, 0.999f);
  EXPECT_FLOAT_EQ(c->optimizer.epsilon, 1e-8f);
  EXPECT_EQ(c->loss, LossKind::kCrossEntropy);
  EXPECT_EQ(c->epochs, 5);
  EXPECT_EQ(c->batch_size, 64);
  EXPECT_EQ(c->seed, 1u);
  EXPECT_EQ(c->max_steps, 0);
  EXPECT_EQ(c->threads, 0);
}

TEST(SpecTest, DefaultsWhenFieldsAreAbsent) {
  const JobConfig c = MustConvert(Spec());
  EXPECT_EQ(c.optimizer.kind, OptimizerKind::kSgd);
  EXPECT_FLOAT_EQ(c.optimizer.learning_rate, 0.01f);
  EXPECT_EQ(c.loss, LossKind::kCrossEntropy);
  EXPECT_EQ(c.init.kind, InitKind::kDefault);
  EXPECT_EQ(c.normalize, NormalizeKind::kNone);
  EXPECT_TRUE(c.shuffle);
  EXPECT_EQ(c.seed, 0u);
  EXPECT_EQ(c.patience, 0);
}

TEST(SpecTest, PerceptronPresetDefaults) {
  const JobConfig c =
      MustConvert(Spec({{"model", "{preset: perceptron}"}, {"data", "{train: {builtin: and}}"}}));
  EXPECT_EQ(c.preset, Preset::kPerceptron);
  EXPECT_TRUE(c.layers.empty());
  EXPECT_EQ(c.optimizer.kind, OptimizerKind::kPerceptronRule);
  EXPECT_FLOAT_EQ(c.optimizer.learning_rate, 1.0f);
  EXPECT_EQ(c.loss, LossKind::kMse);
  EXPECT_EQ(c.init.kind, InitKind::kZeros);
}

TEST(SpecTest, OptimizerDefaultsArePyTorchs) {
  JobConfig c = MustConvert(Spec({{"optimizer", "{kind: rmsprop}"}}));
  EXPECT_FLOAT_EQ(c.optimizer.learning_rate, 0.01f);
  EXPECT_FLOAT_EQ(c.optimizer.rho, 0.99f);
  EXPECT_FLOAT_EQ(c.optimizer.epsilon, 1e-8f);
  c = MustConvert(Spec({{"optimizer", "{kind: adadelta}"}}));
  EXPECT_FLOAT_EQ(c.optimizer.learning_rate, 1.0f);
  EXPECT_FLOAT_EQ(c.optimizer.rho, 0.9f);
  EXPECT_FLOAT_EQ(c.optimizer.epsilon, 1e-6f);
  c = MustConvert(Spec({{"optimizer", "{kind: adagrad}"}}));
  EXPECT_FLOAT_EQ(c.optimizer.epsilon, 1e-10f);
  c = MustConvert(Spec({{"optimizer", "{kind: momentum, momentum: 0.5, weight_decay: 0.1}"}}));
  EXPECT_EQ(c.optimizer.kind, OptimizerKind::kMomentum);
  EXPECT_FLOAT_EQ(c.optimizer.momentum, 0.5f);
  EXPECT_FLOAT_EQ(c.optimizer.weight_decay, 0.1f);
}

TEST(SpecTest, LayerDefaultsAndFields) {
  const JobConfig c = MustConvert(
      Spec({{"model",
             "{layers: [{conv2d: {filters: 4, kernel: 3}}, {max_pool2d: {kernel: 2}}, {lrn: {}},"
             " {batch_norm: {}}, {dropout: {rate: 0.5}}, {flatten: {}},"
             " {activation: {kind: leaky_relu}}, {dense: {units: 2, use_bias: false}}]}"}}));
  ASSERT_EQ(c.layers.size(), 8u);
  const auto& conv = std::get<Conv2dSpec>(c.layers[0]);
  EXPECT_EQ(conv.filters, 4);
  EXPECT_EQ(conv.stride, 1);
  EXPECT_EQ(conv.dilation, 1);
  EXPECT_EQ(conv.groups, 1);
  EXPECT_TRUE(conv.use_bias);
  const auto& pool = std::get<Pool2dSpec>(c.layers[1]);
  EXPECT_TRUE(pool.max);
  EXPECT_EQ(pool.stride, 2);  // defaults to the kernel
  const auto& lrn = std::get<LrnSpec>(c.layers[2]);
  EXPECT_EQ(lrn.size, 5);
  EXPECT_FLOAT_EQ(lrn.alpha, 1e-4f);
  EXPECT_FLOAT_EQ(lrn.beta, 0.75f);
  EXPECT_FLOAT_EQ(lrn.k, 2.0f);
  EXPECT_FLOAT_EQ(std::get<BatchNormSpec>(c.layers[3]).momentum, 0.9f);
  EXPECT_FLOAT_EQ(std::get<DropoutSpec>(c.layers[4]).rate, 0.5f);
  EXPECT_FLOAT_EQ(std::get<ActivationSpec>(c.layers[6]).slope, 0.01f);
  EXPECT_FALSE(std::get<DenseSpec>(c.layers[7]).use_bias);
}

// Enum values: lower case without prefix, the proto's own name, any case, '-' for '_'.
TEST(SpecTest, EnumSpellings) {
  for (const std::string kind : {"relu", "ACTIVATION_KIND_RELU", "Relu", "RELU"}) {
    SCOPED_TRACE(kind);
    const JobConfig c = MustConvert(
        Spec({{"model", absl::StrCat("{layers: [{dense: {units: 2}}, {activation: {kind: ", kind,
                                     "}}]}")}}));
    ASSERT_EQ(c.layers.size(), 2u);
    EXPECT_EQ(std::get<ActivationSpec>(c.layers[1]).kind, Activation::kRelu);
  }
  // Hyphens are read as underscores: he-uniform is he_uniform.
  for (const std::string init : {"he_uniform", "he-uniform", "INIT_KIND_HE_UNIFORM"}) {
    SCOPED_TRACE(init);
    const JobConfig c = MustConvert(Spec(
        {{"model", absl::StrCat("{layers: [{dense: {units: 2}}], init: {kind: ", init, "}}")}}));
    EXPECT_EQ(c.init.kind, InitKind::kHeUniform);
  }
  EXPECT_EQ(MustConvert(Spec({{"model",
                               "{layers: [{dense: {units: 2}}, "
                               "{activation: {kind: leaky-relu, slope: 0.2}}]}"}}))
                .layers.size(),
            2u);
}

TEST(SpecTest, JsonInputWithProtoAndCamelCaseNames) {
  const std::string json = R"({
    "model": {"layers": [{"dense": {"units": 8, "useBias": false}},
                         {"activation": {"kind": "ACTIVATION_KIND_TANH"}},
                         {"dense": {"units": 2}}]},
    "data": {"train": {"builtin": "or"}, "validationFraction": 0.25},
    "optimizer": {"kind": "nesterov", "learning_rate": 0.1},
    "training": {"epochs": 3, "batchSize": 2, "seed": "42", "max_steps": 7}
  })";
  const JobConfig c = MustConvert(json);
  ASSERT_EQ(c.layers.size(), 3u);
  EXPECT_EQ(std::get<DenseSpec>(c.layers[0]).units, 8);
  EXPECT_FALSE(std::get<DenseSpec>(c.layers[0]).use_bias);
  EXPECT_EQ(std::get<ActivationSpec>(c.layers[1]).kind, Activation::kTanh);
  EXPECT_EQ(c.train.builtin, "or");
  EXPECT_FLOAT_EQ(c.validation_fraction, 0.25f);
  EXPECT_EQ(c.optimizer.kind, OptimizerKind::kNesterov);
  EXPECT_FLOAT_EQ(c.optimizer.learning_rate, 0.1f);
  EXPECT_EQ(c.epochs, 3);
  EXPECT_EQ(c.batch_size, 2);
  EXPECT_EQ(c.seed, 42u);
  EXPECT_EQ(c.max_steps, 7);
}

TEST(SpecTest, SpecToJsonRoundTrips) {
  absl::StatusOr<v1::JobSpec> spec =
      LoadSpecFile(std::string(CAJAL_SOURCE_DIR) + "/examples/mlp.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  spec->mutable_training()->set_max_steps(int64_t{1} << 40);
  (*spec->mutable_labels())["team"] = "vision";
  const std::string json = SpecToJson(*spec);
  EXPECT_THAT(json, HasSubstr("\"batch_size\":64"));
  absl::StatusOr<v1::JobSpec> again = ParseSpec(json);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << json;
  EXPECT_EQ(again->SerializeAsString(), spec->SerializeAsString());
}

// ---------------------------------------------------------------------------------------------
// --set overrides

TEST(OverrideTest, SetsNestedFieldsByPathAndIndex) {
  const JobConfig c =
      MustConvert(Spec(), {"model.layers.0.dense.units=512", "optimizer.learning_rate=0.5",
                           "training.epochs=7", "data.normalize=standardize"});
  EXPECT_EQ(std::get<DenseSpec>(c.layers[0]).units, 512);
  EXPECT_FLOAT_EQ(c.optimizer.learning_rate, 0.5f);
  EXPECT_EQ(c.epochs, 7);
  EXPECT_EQ(c.normalize, NormalizeKind::kStandardize);
  EXPECT_EQ(c.batch_size, 4);  // untouched siblings survive
}

TEST(OverrideTest, LaterOverrideWins) {
  const JobConfig c = MustConvert(Spec(), {"training.epochs=2", "training.epochs=9"});
  EXPECT_EQ(c.epochs, 9);
}

TEST(OverrideTest, IndexEqualToSizeAppendsALayer) {
  const JobConfig c = MustConvert(
      Spec(), {"model.layers.3.activation.kind=softmax", "model.layers.4={dense: {units: 2}}"});
  ASSERT_EQ(c.layers.size(), 5u);
  EXPECT_EQ(std::get<ActivationSpec>(c.layers[3]).kind, Activation::kSoftmax);
  EXPECT_EQ(std::get<DenseSpec>(c.layers[4]).units, 2);
}

TEST(OverrideTest, CreatesMissingSectionsAndLists) {
  const JobConfig c =
      MustConvert(Spec({{"model", ""}}), {"model.layers.0.dense.units=2", "optimizer.kind=adam"});
  ASSERT_EQ(c.layers.size(), 1u);
  EXPECT_EQ(std::get<DenseSpec>(c.layers[0]).units, 2);
  EXPECT_EQ(c.optimizer.kind, OptimizerKind::kAdam);
}

TEST(OverrideTest, ReplacesAWholeSectionWithAFlowMap) {
  const JobConfig c = MustConvert(Spec(), {"data={train: {builtin: and}, normalize: scale}"});
  EXPECT_EQ(c.train.builtin, "and");
  EXPECT_EQ(c.normalize, NormalizeKind::kScale);
}

struct OverrideErrorCase {
  std::string name;
  std::string assignment;
  std::string message;
};

class OverrideErrorTest : public ::testing::TestWithParam<OverrideErrorCase> {};

TEST_P(OverrideErrorTest, NamesTheOverride) {
  const absl::Status s = ParseAndConvert(Spec(), {GetParam().assignment});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, OverrideErrorTest,
    ::testing::Values(
        OverrideErrorCase{"PastTheEnd", "model.layers.5.dense.units=2",
                          "--set model.layers.5.dense.units: model.layers.5 is past the end of a "
                          "list of 3"},
        OverrideErrorCase{"MissingEquals", "model.layers.0.dense.units",
                          "--set model.layers.0.dense.units: expected path=value"},
        OverrideErrorCase{"EmptyPath", "=5", "--set =5: expected path=value"},
        OverrideErrorCase{"EmptyElement", "training..epochs=5", "empty path element"},
        OverrideErrorCase{"IntoAScalar", "training.epochs.x=1", "is inside a value that is not"},
        OverrideErrorCase{"UnknownField", "training.epoch=5",
                          "training.epoch: unknown field (known: epochs, batch_size"},
        OverrideErrorCase{"WrongType", "training.epochs=five",
                          "training.epochs: expected an integer, got \"five\""},
        OverrideErrorCase{"BadYamlValue", "training.epochs=[1", "--set training.epochs: bad value"},
        OverrideErrorCase{"InvalidValue", "training.batch_size=-3",
                          "training.batch_size: must be > 0, got -3"}),
    [](const ::testing::TestParamInfo<OverrideErrorCase>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Bad specs: every message names the field and the problem.

struct BadSpecCase {
  std::string name;
  std::string text;
  absl::StatusCode code;
  std::string message;
};

class BadSpecTest : public ::testing::TestWithParam<BadSpecCase> {};

TEST_P(BadSpecTest, IsRefusedWithItsMessage) {
  const BadSpecCase& c = GetParam();
  const absl::Status s = ParseAndConvert(c.text);
  EXPECT_EQ(s.code(), c.code) << s << "\nspec:\n" << c.text;
  EXPECT_THAT(std::string(s.message()), HasSubstr(c.message)) << "spec:\n" << c.text;
}

std::string Layers(const std::string& layers) {
  return Spec({{"model", absl::StrCat("{layers: [", layers, "]}")}});
}

std::string ManyLayers(int n) {
  std::string layers;
  for (int i = 0; i < n; ++i) absl::StrAppend(&layers, i > 0 ? ", " : "", "{dense: {units: 2}}");
  return Layers(layers);
}

std::string ManyLabels(int n) {
  std::string labels = "{";
  for (int i = 0; i < n; ++i) absl::StrAppend(&labels, i > 0 ? ", " : "", "k", i, ": v");
  return Spec({{"labels", labels + "}"}});
}

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

INSTANTIATE_TEST_SUITE_P(
    Specs, BadSpecTest,
    ::testing::Values(
        // Structure and types (spec_loader).
        BadSpecCase{"UnknownTopLevelField", Spec({{"modle", "{}"}}), kInvalid,
                    "modle: unknown field (known: model, data, optimizer, training, labels)"},
        BadSpecCase{"UnknownLayerField", Layers("{dense: {unit: 4}}"), kInvalid,
                    "model.layers.0.dense.unit: unknown field (known: units, use_bias)"},
        BadSpecCase{"UnknownEnumValue", Layers("{dense: {units: 2}}, {activation: {kind: relux}}"),
                    kInvalid,
                    "model.layers.1.activation.kind: unknown value \"relux\" (known: linear, "
                    "sigmoid, tanh, relu, leaky_relu, prelu, softmax)"},
        BadSpecCase{"UnspecifiedEnumValue", Spec({{"optimizer", "{kind: unspecified}"}}), kInvalid,
                    "optimizer.kind: unknown value \"unspecified\" (known: sgd, momentum"},
        BadSpecCase{"LayerWithTwoKinds", Layers("{dense: {units: 2}, activation: {kind: relu}}"),
                    kInvalid, "model.layers.0: sets both dense and activation; set exactly one"},
        BadSpecCase{"SourceWithTwoKinds",
                    Spec({{"data", "{train: {builtin: xor, csv: {path: a}}}"}}), kInvalid,
                    "data.train: sets both builtin and csv; set exactly one"},
        BadSpecCase{"DuplicateField", Spec({{"training", "{epochs: 1, epochs: 2, batch_size: 4}"}}),
                    kInvalid, "training.epochs: set twice"},
        BadSpecCase{"DuplicateFieldInTwoSpellings",
                    Spec({{"training", "{epochs: 1, batch_size: 4, batchSize: 8}"}}), kInvalid,
                    "training.batchSize: set twice (also as batch_size)"},
        BadSpecCase{"StringForInt", Layers("{dense: {units: many}}"), kInvalid,
                    "model.layers.0.dense.units: expected an integer, got \"many\""},
        BadSpecCase{"FloatForInt", Layers("{dense: {units: 4.5}}"), kInvalid,
                    "model.layers.0.dense.units: expected an integer, got 4.5"},
        BadSpecCase{"MapForScalar", Spec({{"training", "{epochs: {n: 1}, batch_size: 4}"}}),
                    kInvalid, "training.epochs: expected an integer, got a map"},
        BadSpecCase{"ListForMessage", Spec({{"training", "[1, 2]"}}), kInvalid,
                    "training: expected a map of fields, got a list"},
        BadSpecCase{"ScalarForList", Spec({{"model", "{layers: 3}"}}), kInvalid,
                    "model.layers: expected a list"},
        BadSpecCase{"BadBool", Spec({{"data", "{train: {builtin: xor}, shuffle: maybe}"}}),
                    kInvalid, "data.shuffle: expected true or false, got \"maybe\""},
        BadSpecCase{"StringForFloat", Spec({{"optimizer", "{learning_rate: fast}"}}), kInvalid,
                    "optimizer.learning_rate: expected a number, got \"fast\""},
        BadSpecCase{"Int32OutOfRange", Spec({{"training", "{epochs: 3000000000, batch_size: 4}"}}),
                    kInvalid, "training.epochs: integer out of range: 3000000000"},
        BadSpecCase{"UnsignedOutOfRange",
                    Spec({{"training", "{epochs: 1, batch_size: 4, seed: 18446744073709551616}"}}),
                    kInvalid, "training.seed: integer out of range: 18446744073709551616"},
        BadSpecCase{
            "Int64OutOfRange",
            Spec({{"training", "{epochs: 1, batch_size: 4, max_steps: 99999999999999999999}"}}),
            kInvalid, "training.max_steps: integer out of range: 99999999999999999999"},
        BadSpecCase{"NegativeUnsigned",
                    Spec({{"training", "{epochs: 1, batch_size: 4, seed: -1}"}}), kInvalid,
                    "training.seed: integer out of range: -1"},
        BadSpecCase{"FloatOutOfRange", Spec({{"optimizer", "{learning_rate: 1e39}"}}), kInvalid,
                    "optimizer.learning_rate: number out of range: 1e39"},
        BadSpecCase{"NotYaml", "model: {layers: [", kInvalid,
                    "spec: not valid YAML or JSON at line"},
        BadSpecCase{"TopLevelList", "- 1\n- 2\n", kInvalid,
                    "spec: expected a map of fields at the top"},
        BadSpecCase{"OversizeText", Spec() + "#" + std::string(kMaxSpecBytes, 'x') + "\n", kInvalid,
                    "bytes is larger than the limit of 1048576"},
        // Values (convert).
        BadSpecCase{"NegativeBatchSize", Spec({{"training", "{epochs: 1, batch_size: -3}"}}),
                    kInvalid, "training.batch_size: must be > 0, got -3"},
        BadSpecCase{"HugeBatchSize", Spec({{"training", "{epochs: 1, batch_size: 70000}"}}),
                    kInvalid, "training.batch_size: must be <= 65536, got 70000"},
        BadSpecCase{"NanLearningRate", Spec({{"optimizer", "{learning_rate: .nan}"}}), kInvalid,
                    "optimizer.learning_rate: must be a finite number, got nan"},
        BadSpecCase{"InfiniteLearningRate", Spec({{"optimizer", "{learning_rate: .inf}"}}),
                    kInvalid, "optimizer.learning_rate: must be a finite number, got inf"},
        BadSpecCase{"ZeroLearningRate", Spec({{"optimizer", "{learning_rate: 0}"}}), kInvalid,
                    "optimizer.learning_rate: must be > 0, got 0"},
        BadSpecCase{"MomentumOne", Spec({{"optimizer", "{kind: momentum, momentum: 1}"}}), kInvalid,
                    "optimizer.momentum: must be in [0, 1), got 1"},
        BadSpecCase{"HessianFreeZeroDamping",
                    Spec({{"optimizer", "{kind: hessian_free, hessian_free: {damping: 0}}"}}),
                    kInvalid, "optimizer.hessian_free.damping: must be > 0, got 0"},
        BadSpecCase{
            "HessianFreeZeroCgIterations",
            Spec({{"optimizer", "{kind: hessian_free, hessian_free: {cg_max_iterations: 0}}"}}),
            kInvalid, "optimizer.hessian_free.cg_max_iterations: must be > 0, got 0"},
        BadSpecCase{
            "HessianFreeCurvatureBatchTooLarge",
            Spec({{"optimizer", "{kind: hessian_free, hessian_free: {curvature_batch_size: 9}}"},
                  {"training", "{epochs: 1, batch_size: 4}"}}),
            kInvalid,
            "optimizer.hessian_free.curvature_batch_size: 9 exceeds the "
            "gradient batch of 4"},
        BadSpecCase{"HessianFreeSettingsWithSgd",
                    Spec({{"optimizer", "{kind: sgd, hessian_free: {damping: 1}}"}}), kInvalid,
                    "optimizer.hessian_free: is set but optimizer.kind is not hessian_free"},
        BadSpecCase{
            "HessianFreeStructuralDamping",
            Spec({{"optimizer", "{kind: hessian_free, hessian_free: {structural_damping: 0.3}}"}}),
            kInvalid, "optimizer.hessian_free.structural_damping: applies to recurrent"},
        BadSpecCase{"NegativeEpochs", Spec({{"training", "{epochs: -2, batch_size: 4}"}}), kInvalid,
                    "training.epochs: must be > 0, got -2"},
        BadSpecCase{"MissingEpochs", Spec({{"training", "{batch_size: 4}"}}), kInvalid,
                    "training.epochs: must be > 0, got 0"},
        BadSpecCase{"NegativeThreads",
                    Spec({{"training", "{epochs: 1, batch_size: 4, threads: -1}"}}), kInvalid,
                    "training.threads: must be >= 0, got -1"},
        BadSpecCase{"ValidationFractionOne",
                    Spec({{"data", "{train: {builtin: xor}, validation_fraction: 1.0}"}}), kInvalid,
                    "data.validation_fraction: must be in [0, 1), got 1"},
        BadSpecCase{"EmptyModel", Spec({{"model", "{}"}}), kInvalid,
                    "model: set preset (perceptron, mlp, lenet"},
        BadSpecCase{"NoModel", Spec({{"model", ""}}), kInvalid, "model: set preset"},
        BadSpecCase{"PresetAndLayers",
                    Spec({{"model", "{preset: mlp, layers: [{dense: {units: 2}}]}"}}), kInvalid,
                    "model: set either preset or layers, not both"},
        BadSpecCase{"LayerWithoutKind", Layers("{}"), kInvalid,
                    "model.layers.0: sets no layer kind (one of dense, activation"},
        BadSpecCase{"ActivationWithoutKind", Layers("{dense: {units: 2}}, {activation: {}}"),
                    kInvalid, "model.layers.1.activation.kind: required (linear, sigmoid"},
        BadSpecCase{"DenseWithoutUnits", Layers("{dense: {}}"), kInvalid,
                    "model.layers.0.dense.units: must be > 0, got 0"},
        BadSpecCase{"HugeUnits", Layers("{dense: {units: 2000000}}"), kInvalid,
                    "model.layers.0.dense.units: must be <= 1048576, got 2000000"},
        BadSpecCase{"TooManyLayers", ManyLayers(kMaxLayers + 1), kInvalid,
                    "model.layers: must be <= 1000, got 1001"},
        BadSpecCase{"DropoutRateOne", Layers("{dense: {units: 2}}, {dropout: {rate: 1}}"), kInvalid,
                    "model.layers.1.dropout.rate: must be in [0, 1), got 1"},
        BadSpecCase{"ConvGroups", Layers("{conv2d: {filters: 6, kernel: 3, groups: 4}}"), kInvalid,
                    "model.layers.0.conv2d.filters: 6 is not divisible by groups 4"},
        BadSpecCase{"PoolPaddingOverHalfKernel",
                    Layers("{max_pool2d: {kernel: 2, padding: 2}}, {dense: {units: 2}}"), kInvalid,
                    "model.layers.0.max_pool2d.padding: must be <= 1, got 2"},
        BadSpecCase{"MissingTrainData", Spec({{"data", "{normalize: scale}"}}), kInvalid,
                    "data.train: required (builtin, idx or csv)"},
        BadSpecCase{"EmptyTrainSource", Spec({{"data", "{train: {}}"}}), kInvalid,
                    "data.train: set one of builtin, idx, csv"},
        BadSpecCase{"UnknownBuiltin", Spec({{"data", "{train: {builtin: mnist}}"}}), kInvalid,
                    "data.train.builtin: unknown data set \"mnist\" (known: fashion-mnist, and, "
                    "or, xor, adding)"},
        BadSpecCase{"IdxWithoutLabels", Spec({{"data", "{train: {idx: {images: a.gz}}}"}}),
                    kInvalid, "data.train.idx.labels: required"},
        BadSpecCase{"CsvWithoutPath", Spec({{"data", "{train: {csv: {header: true}}}"}}), kInvalid,
                    "data.train.csv.path: required (or data.train.csv.dataset: the id of an "
                    "uploaded data set)"},
        BadSpecCase{"CsvPathAndDataset",
                    Spec({{"data", "{train: {csv: {path: a.csv, dataset: " + std::string(32, 'a') +
                                       "}}}"}}),
                    kInvalid,
                    "data.train.csv.dataset: set either data.train.csv.path or "
                    "data.train.csv.dataset, not both"},
        BadSpecCase{"CsvDatasetNotAnId", Spec({{"data", "{train: {csv: {dataset: ../../etc}}}"}}),
                    kInvalid, "data.train.csv.dataset: must be a data set id: 32 lowercase hex"},
        BadSpecCase{"IdxLabelsDatasetNotAnId",
                    Spec({{"data",
                           "{train: {builtin: xor}, test: {idx: {images: a, "
                           "labels_dataset: ABC}}}"}}),
                    kInvalid, "data.test.idx.labels_dataset: must be a data set id"},
        BadSpecCase{"BadTestShape",
                    Spec({{"data", "{train: {builtin: xor}, test: {builtin: xor, shape: [0]}}"}}),
                    kInvalid, "data.test.shape.0: must be > 0, got 0"},
        BadSpecCase{"LabelKeyTooLong", Spec({{"labels", "{" + std::string(64, 'k') + ": v}"}}),
                    kInvalid, "labels: key \"" + std::string(64, 'k') + "\" must have 1 to 63"},
        BadSpecCase{"LabelValueTooLong", Spec({{"labels", "{team: " + std::string(64, 'v') + "}"}}),
                    kInvalid, "labels.team: value must have at most 63 characters"},
        BadSpecCase{"TooManyLabels", ManyLabels(65), kInvalid, "labels: at most 64 labels"}),
    [](const ::testing::TestParamInfo<BadSpecCase>& info) { return info.param.name; });

// The limits in the table are the edges: one less is accepted.
TEST(SpecTest, LimitsAreInclusive) {
  EXPECT_TRUE(ParseAndConvert(ManyLayers(kMaxLayers)).ok());
  EXPECT_TRUE(ParseAndConvert(Layers("{dense: {units: 1048576}}")).ok());
  EXPECT_TRUE(ParseAndConvert(ManyLabels(64)).ok());
  EXPECT_TRUE(ParseAndConvert(Spec({{"labels", "{" + std::string(63, 'k') + ": v}"}})).ok());
  EXPECT_TRUE(
      ParseAndConvert(Spec({{"data", "{train: {builtin: xor}, validation_fraction: 0.99}"}})).ok());
  EXPECT_TRUE(ParseAndConvert(Spec({{"training", "{epochs: 1, batch_size: 65536}"}})).ok());
}

TEST(SpecTest, SeedTakesTheWholeUint64Range) {
  const JobConfig c = MustConvert(Spec(), {"training.seed=18446744073709551615"});
  EXPECT_EQ(c.seed, 18446744073709551615u);
}

TEST(SpecTest, MissingSpecFileIsNotFound) {
  const std::string path = ::testing::TempDir() + "/no-such-spec.yaml";
  absl::StatusOr<v1::JobSpec> spec = LoadSpecFile(path);
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("--spec " + path + ": cannot open"));
}

TEST(SpecTest, FileErrorsArePrefixedWithThePath) {
  const std::string path = ::testing::TempDir() + "/bad-spec.yaml";
  {
    std::ofstream out(path);
    out << Spec({{"training", "{epochs: 1, batch_size: [4]}"}});
  }
  absl::StatusOr<v1::JobSpec> spec = LoadSpecFile(path, {"training.batch_size=8"});
  ASSERT_TRUE(spec.ok()) << spec.status();  // the override replaced the bad list
  EXPECT_EQ(spec->training().batch_size(), 8);
  spec = LoadSpecFile(path);
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()),
              HasSubstr(path + ": training.batch_size: expected an integer, got a list"));
}

// Data sets live on a server: a local run says so, naming the field.
TEST(SpecTest, LocalRunsRefuseUploadedDataSets) {
  absl::StatusOr<v1::JobSpec> spec =
      ParseSpec(Spec({{"data", "{train: {csv: {dataset: " + std::string(32, 'a') + "}}}"}}), {});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(ToJobConfig(*spec).ok());  // the server fills the path in
  const absl::Status s = RequireLocalData(*spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("data.train.csv.dataset: names a data set uploaded to a cajald server"));
  spec = ParseSpec(Spec(), {});
  ASSERT_TRUE(spec.ok());
  EXPECT_TRUE(RequireLocalData(*spec).ok());
}

}  // namespace
}  // namespace cajal
