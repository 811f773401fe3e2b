// CNN shapes and the rest of the CNN layers' contract: every shape error is caught when the
// network is built, with the layer index and the shapes; the lenet and alexnet presets'
// structure and parameter counts; dropout's mask rate, scaling and evaluation identity; batch
// norm's running statistics as non-trainable buffers that the optimizer skips and model files
// carry.
#include <stdlib.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/io/model_file.h"
#include "core/layers/layers.h"
#include "core/optim/optimizer.h"
#include "core/train/job.h"
#include "core/train/network.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

using ::testing::ElementsAre;

const ActivationSpec kRelu{Activation::kRelu};

std::string BuildError(const std::vector<LayerSpec>& layers, const Shape& input) {
  absl::StatusOr<std::unique_ptr<Network>> net = Network::Create(layers, input, CpuBackend());
  EXPECT_FALSE(net.ok());
  if (net.ok()) return "";
  EXPECT_EQ(net.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(net.status().message());
}

TEST(CnnValidationTest, KernelLargerThanTheInput) {
  EXPECT_EQ(BuildError({Conv2dSpec{4, /*kernel=*/7}}, {1, 5, 5}),
            "model.layers.0 (conv2d): kernel 7 (dilation 1, padding 0) is larger than the "
            "input (input shape (1, 5, 5))");
  // The pool's input is the conv's (4, 3, 3) output.
  EXPECT_EQ(BuildError({Conv2dSpec{4, 3}, kRelu, Pool2dSpec{true, 4}}, {1, 5, 5}),
            "model.layers.2 (max_pool2d): kernel 4 (dilation 1, padding 0) is larger than the "
            "input (input shape (4, 3, 3))");
  // Dilation widens the kernel to 2·(3−1)+1 = 5.
  EXPECT_EQ(BuildError({Conv2dSpec{2, 3, 1, 0, /*dilation=*/2}}, {1, 4, 4}),
            "model.layers.0 (conv2d): kernel 3 (dilation 2, padding 0) is larger than the "
            "input (input shape (1, 4, 4))");
}

TEST(CnnValidationTest, ChannelsNotDivisibleByGroups) {
  EXPECT_EQ(BuildError({Conv2dSpec{4, 3, 1, 1, 1, /*groups=*/2}}, {3, 8, 8}),
            "model.layers.0 (conv2d): input channels 3 are not divisible by groups 2 (input "
            "shape (3, 8, 8))");
  EXPECT_EQ(BuildError({Conv2dSpec{5, 3, 1, 1, 1, /*groups=*/2}}, {4, 8, 8}),
            "model.layers.0 (conv2d): filters 5 are not divisible by groups 2 (input shape "
            "(4, 8, 8))");
}

TEST(CnnValidationTest, DenseAfterConvOrPoolNeedsFlatten) {
  EXPECT_EQ(BuildError({Conv2dSpec{4, 3}, kRelu, DenseSpec{10}}, {1, 8, 8}),
            "model.layers.2 (dense): its input (4, 6, 6) is feature maps from model.layers.0 "
            "(conv2d); add a flatten layer before the dense layer");
  EXPECT_EQ(BuildError({Pool2dSpec{false, 2}, DenseSpec{10}}, {1, 8, 8}),
            "model.layers.1 (dense): its input (1, 4, 4) is feature maps from model.layers.0 "
            "(avg_pool2d); add a flatten layer before the dense layer");
}

TEST(CnnValidationTest, DenseFlattensTheNetworksOwnImage) {
  // Fashion-MNIST's (1, 28, 28) straight into the mlp preset's first dense layer.
  absl::StatusOr<std::vector<Shape>> shapes =
      InferShapes({BatchNormSpec{}, DenseSpec{10}}, {1, 28, 28});
  ASSERT_TRUE(shapes.ok()) << shapes.status();
  EXPECT_EQ(shapes->back(), (Shape{10}));
  // With flatten after a conv, dense is fine too.
  shapes = InferShapes({Conv2dSpec{4, 3}, FlattenSpec{}, DenseSpec{10}}, {1, 8, 8});
  ASSERT_TRUE(shapes.ok()) << shapes.status();
  EXPECT_THAT(*shapes, ElementsAre(Shape{1, 8, 8}, Shape{4, 6, 6}, Shape{144}, Shape{10}));
}

TEST(CnnValidationTest, ImageLayersNeedAnImage) {
  EXPECT_EQ(BuildError({Conv2dSpec{4, 3}}, {784}),
            "model.layers.0 (conv2d): needs an image input (C, H, W); add a data shape or "
            "remove the layer (input shape (784,))");
  EXPECT_EQ(BuildError({LrnSpec{}}, {10}),
            "model.layers.0 (lrn): needs an image input (C, H, W) (input shape (10,))");
  EXPECT_EQ(BuildError({BatchNormSpec{}}, {28, 28}),
            "model.layers.0 (batch_norm): needs flat features (F) or an image (C, H, W) (input "
            "shape (28, 28))");
}

TEST(CnnValidationTest, BadWindowSettings) {
  EXPECT_EQ(BuildError({Conv2dSpec{4, 3, /*stride=*/0}}, {1, 8, 8}),
            "model.layers.0 (conv2d): filters 4, kernel 3, stride 0, dilation 1 and groups 1 "
            "must be >= 1 and padding 0 >= 0 (input shape (1, 8, 8))");
  EXPECT_EQ(BuildError({Pool2dSpec{true, 2, 2, /*padding=*/2}}, {1, 8, 8}),
            "model.layers.0 (max_pool2d): kernel 2 must be >= 1, stride 2 >= 1 (0: the kernel) "
            "and padding 2 at most half the kernel (input shape (1, 8, 8))");
}

// Output shapes of conv and pooling follow PyTorch's floor formulas.
TEST(CnnShapesTest, ConvAndPoolOutputSizes) {
  absl::StatusOr<std::vector<Shape>> shapes =
      InferShapes({Conv2dSpec{8, 3, /*stride=*/2, /*padding=*/1}, Pool2dSpec{true, 3, 2},
                   Conv2dSpec{6, 3, 1, /*padding=*/2, /*dilation=*/2, /*groups=*/2},
                   Pool2dSpec{false, 2, 0, 1}},
                  {3, 15, 15});
  ASSERT_TRUE(shapes.ok()) << shapes.status();
  // 15 → (15+2−3)/2+1 = 8 → (8−3)/2+1 = 3 → 3+4−5+1 = 3 → (3+2−2)/2+1 = 2
  EXPECT_THAT(*shapes, ElementsAre(Shape{3, 15, 15}, Shape{8, 8, 8}, Shape{8, 3, 3}, Shape{6, 3, 3},
                                   Shape{6, 2, 2}));
}

std::vector<Shape> PresetShapes(Preset preset, const Shape& input, int classes) {
  absl::StatusOr<std::vector<LayerSpec>> layers = PresetLayers(preset, input, classes);
  EXPECT_TRUE(layers.ok()) << layers.status();
  if (!layers.ok()) return {};
  absl::StatusOr<std::vector<Shape>> shapes = InferShapes(*layers, input);
  EXPECT_TRUE(shapes.ok()) << shapes.status();
  return shapes.ok() ? *shapes : std::vector<Shape>{};
}

int64_t TrainableCount(Preset preset, const Shape& input, int classes) {
  absl::StatusOr<std::vector<LayerSpec>> layers = PresetLayers(preset, input, classes);
  EXPECT_TRUE(layers.ok()) << layers.status();
  if (!layers.ok()) return 0;
  absl::StatusOr<std::unique_ptr<Network>> net = Network::Create(*layers, input, CpuBackend());
  EXPECT_TRUE(net.ok()) << net.status();
  if (!net.ok()) return 0;
  int64_t n = 0;
  for (int i = 0; i < (*net)->params().size(); ++i) n += (*net)->params().count(i);
  return n;
}

TEST(PresetTest, LenetOnFashionMnistIsLeNet5) {
  EXPECT_THAT(PresetShapes(Preset::kLenet, {1, 28, 28}, 10),
              ElementsAre(Shape{1, 28, 28}, Shape{6, 28, 28}, Shape{6, 28, 28}, Shape{6, 14, 14},
                          Shape{16, 10, 10}, Shape{16, 10, 10}, Shape{16, 5, 5}, Shape{400},
                          Shape{120}, Shape{120}, Shape{84}, Shape{84}, Shape{10}));
  // LeNet-5's 61,706 parameters.
  EXPECT_EQ(TrainableCount(Preset::kLenet, {1, 28, 28}, 10), 61706);
}

TEST(PresetTest, LenetAdaptsToTheInput) {
  // 32×32: no padding, as LeCun's.
  EXPECT_EQ(PresetShapes(Preset::kLenet, {3, 32, 32}, 10)[1], (Shape{6, 28, 28}));
  // 8×8: the second conv pads to keep 4×4, both pools stay: 16·2·2 features.
  EXPECT_EQ(PresetShapes(Preset::kLenet, {1, 8, 8}, 10)[7], (Shape{64}));
  // 1×1: no pools.
  EXPECT_EQ(PresetShapes(Preset::kLenet, {1, 1, 1}, 2).size(), 11u);
  absl::StatusOr<std::vector<LayerSpec>> flat = PresetLayers(Preset::kLenet, {784}, 10);
  ASSERT_FALSE(flat.ok());
  EXPECT_EQ(flat.status().message(),
            "model.preset: lenet needs image examples (C, H, W), but the data has shape "
            "(784,); give the data source a shape (data.train.shape: [C, H, W])");
}

TEST(PresetTest, AlexnetAt227IsThePaperNetwork) {
  const std::vector<Shape> shapes = PresetShapes(Preset::kAlexnet, {3, 227, 227}, 1000);
  ASSERT_EQ(shapes.size(), 24u);
  EXPECT_EQ(shapes[1], (Shape{96, 55, 55}));    // conv1
  EXPECT_EQ(shapes[4], (Shape{96, 27, 27}));    // pool1
  EXPECT_EQ(shapes[5], (Shape{256, 27, 27}));   // conv2
  EXPECT_EQ(shapes[8], (Shape{256, 13, 13}));   // pool2
  EXPECT_EQ(shapes[13], (Shape{256, 13, 13}));  // conv5
  EXPECT_EQ(shapes[15], (Shape{256, 6, 6}));    // pool3
  EXPECT_EQ(shapes[16], (Shape{9216}));
  EXPECT_EQ(shapes.back(), (Shape{1000}));
  // The paper's 60,965,224 parameters (two towers: conv2, conv4 and conv5 have groups 2).
  EXPECT_EQ(TrainableCount(Preset::kAlexnet, {3, 227, 227}, 1000), 60965224);
}

TEST(PresetTest, AlexnetScalesDownForFashionMnist) {
  const std::vector<Shape> shapes = PresetShapes(Preset::kAlexnet, {1, 28, 28}, 10);
  ASSERT_EQ(shapes.size(), 24u);
  EXPECT_EQ(shapes[1], (Shape{24, 28, 28}));
  EXPECT_EQ(shapes[4], (Shape{24, 13, 13}));
  EXPECT_EQ(shapes[8], (Shape{64, 6, 6}));
  EXPECT_EQ(shapes[15], (Shape{64, 2, 2}));
  EXPECT_EQ(shapes[17], (Shape{1024}));
  EXPECT_EQ(shapes.back(), (Shape{10}));
}

// The scaled-down AlexNet runs a training step end to end (LRN, groups, dropout included).
TEST(PresetTest, SmallAlexnetTrainsAStep) {
  absl::StatusOr<std::vector<LayerSpec>> layers = PresetLayers(Preset::kAlexnet, {1, 28, 28}, 10);
  ASSERT_TRUE(layers.ok());
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create(*layers, {1, 28, 28}, CpuBackend());
  ASSERT_TRUE(net.ok()) << net.status();
  absl::StatusOr<Plan*> plan = (*net)->GetPlan(4, Mode::kTrain);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (int64_t i = 0; i < 4 * 784; ++i) (*plan)->input()[i] = static_cast<float>(i % 29) / 29;
  ParamStore& p = (*net)->params();
  for (int64_t i = 0; i < p.total(); ++i) p.values()[i] = 0.01f * static_cast<float>(i % 7 - 3);
  EXPECT_TRUE((*plan)->Forward(/*step=*/1).ok());
  const int top = static_cast<int>(layers->size());
  for (int64_t i = 0; i < 40; ++i) {
    ASSERT_TRUE(std::isfinite((*plan)->output()[i])) << i;
    (*plan)->diff(top)[i] = i % 10 == 0 ? 1.0f : 0.0f;
  }
  EXPECT_TRUE((*plan)->Backward(top).ok());
  const int w = p.Find("layers.0.conv2d.weight");
  ASSERT_GE(w, 0);
  double norm = 0;
  for (int64_t i = 0; i < p.count(w); ++i) norm += std::abs(p.grad(w)[i]);
  EXPECT_GT(norm, 0.0);
  EXPECT_TRUE(std::isfinite(norm));
}

// Dropout: inverted scaling in training with about `rate` of the elements dropped, a mask that
// is a function of the step, and the identity in evaluation.
TEST(DropoutTest, MaskRateScalingAndEvaluationIdentity) {
  constexpr int64_t kBatch = 100, kFeatures = 1000;
  constexpr float kRate = 0.3f;
  absl::StatusOr<std::unique_ptr<Network>> net = Network::Create(
      {ActivationSpec{Activation::kLinear}, DropoutSpec{kRate}}, {kFeatures}, CpuBackend(), {5});
  ASSERT_TRUE(net.ok()) << net.status();
  absl::StatusOr<Plan*> train = (*net)->GetPlan(kBatch, Mode::kTrain);
  ASSERT_TRUE(train.ok());
  Plan& t = **train;
  const int64_t n = kBatch * kFeatures;
  for (int64_t i = 0; i < n; ++i) t.input()[i] = 0.5f + static_cast<float>(i % 97);
  EXPECT_TRUE(t.Forward(/*step=*/3).ok());
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float y = t.activation(2)[i];
    if (y == 0.0f) {
      ++dropped;
    } else {
      ASSERT_FLOAT_EQ(y, t.input()[i] / (1 - kRate)) << i;
    }
  }
  // Binomial(1e5, 0.3): standard deviation 0.00145; ±0.01 is 7 of them.
  EXPECT_NEAR(static_cast<double>(dropped) / n, kRate, 0.01);
  // Backward multiplies by the same scaled mask.
  for (int64_t i = 0; i < n; ++i) t.diff(2)[i] = 1.0f;
  EXPECT_TRUE(t.Backward(2).ok());
  for (int64_t i = 0; i < n; i += 7) {
    ASSERT_FLOAT_EQ(t.diff(1)[i], t.activation(2)[i] == 0.0f ? 0.0f : 1 / (1 - kRate)) << i;
  }
  // The same step draws the same mask; another step another.
  const std::vector<float> first(t.activation(2), t.activation(2) + n);
  EXPECT_TRUE(t.Forward(/*step=*/3).ok());
  EXPECT_TRUE(std::equal(first.begin(), first.end(), t.activation(2)));
  EXPECT_TRUE(t.Forward(/*step=*/4).ok());
  EXPECT_FALSE(std::equal(first.begin(), first.end(), t.activation(2)));

  absl::StatusOr<Plan*> eval = (*net)->GetPlan(kBatch, Mode::kEval);
  ASSERT_TRUE(eval.ok());
  for (int64_t i = 0; i < n; ++i) (*eval)->input()[i] = t.input()[i];
  EXPECT_TRUE((*eval)->Forward(/*step=*/3).ok());
  EXPECT_TRUE(std::equal(t.input(), t.input() + n, (*eval)->output()));
}

TEST(BatchNormBuffersTest, RunningStatisticsAreBuffersTheOptimizerSkips) {
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create({DenseSpec{3}, BatchNormSpec{}, DenseSpec{2}}, {4}, CpuBackend());
  ASSERT_TRUE(net.ok()) << net.status();
  ParamStore& p = (*net)->params();
  const int mean = p.Find("layers.1.batch_norm.running_mean");
  const int var = p.Find("layers.1.batch_norm.running_var");
  const int scale = p.Find("layers.1.batch_norm.scale");
  ASSERT_GE(mean, 0);
  ASSERT_GE(var, 0);
  EXPECT_EQ(p.decl(mean).role, ParamRole::kRunningMean);
  EXPECT_EQ(p.decl(var).role, ParamRole::kRunningVar);
  // Buffers after every trainable parameter.
  EXPECT_GE(p.offset(mean), p.trainable_total());
  EXPECT_GE(p.offset(var), p.trainable_total());
  EXPECT_LT(p.offset(p.Find("layers.2.dense.bias")), p.trainable_total());
  EXPECT_TRUE(InitializeParams(InitConfig{}, /*seed=*/1, &p).ok());
  EXPECT_EQ(p.value(mean)[0], 0.0f);
  EXPECT_EQ(p.value(var)[2], 1.0f);
  OptimizerConfig sgd;
  sgd.kind = OptimizerKind::kSgd;
  sgd.learning_rate = 1.0f;
  sgd.weight_decay = 0.5f;
  absl::StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(sgd, &p);
  ASSERT_TRUE(opt.ok());
  for (int64_t i = 0; i < p.total(); ++i) p.grads()[i] = 1.0f;
  EXPECT_TRUE((*opt)->Step().ok());
  EXPECT_EQ(p.value(mean)[0], 0.0f);
  EXPECT_EQ(p.value(var)[2], 1.0f);
  EXPECT_EQ(p.value(scale)[0], 1.0f - 1.0f * (1.0f + 0.5f * 1.0f));  // trainable: updated
}

// Training moves the running statistics; a model file carries them, so a restored network
// evaluates exactly like the trained one.
TEST(BatchNormBuffersTest, ModelFileCarriesTheRunningStatistics) {
  JobConfig c;
  c.layers = {DenseSpec{6}, BatchNormSpec{0.5f}, ActivationSpec{Activation::kTanh}, DenseSpec{2}};
  c.train.kind = DataSourceConfig::Kind::kBuiltin;
  c.train.builtin = "xor";
  c.optimizer.kind = OptimizerKind::kAdam;
  c.optimizer.learning_rate = 0.05f;
  c.epochs = 5;
  c.batch_size = 4;
  c.seed = 3;
  c.threads = 1;
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(c, CpuBackend());
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE((*job)->Run(nullptr).ok());
  std::vector<int64_t> all = {0, 1, 2, 3};
  absl::StatusOr<EvalResult> trained = (*job)->Evaluate((*job)->train_data(), all);
  ASSERT_TRUE(trained.ok());

  std::string dir = ::testing::TempDir() + "/cajal_bn_XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/model.cajal";
  absl::StatusOr<ModelFile> snapshot = SnapshotJob(**job, "{}");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_TRUE(WriteModelFile(path, *snapshot).ok());
  absl::StatusOr<ModelFile> file = ReadModelFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  bool saved = false;
  for (const NamedTensor& t : file->params) {
    if (t.name == "layers.1.batch_norm.running_var") {
      saved = true;
      EXPECT_NE(t.data[0], 1.0f);  // moved away from its initial value
    }
  }
  EXPECT_TRUE(saved);

  absl::StatusOr<std::unique_ptr<TrainingJob>> fresh = TrainingJob::Prepare(c, CpuBackend());
  ASSERT_TRUE(fresh.ok());
  absl::StatusOr<EvalResult> before = (*fresh)->Evaluate((*fresh)->train_data(), all);
  ASSERT_TRUE(before.ok());
  EXPECT_NE(before->loss, trained->loss);
  ASSERT_TRUE(RestoreJob(*file, /*with_state=*/false, fresh->get()).ok());
  absl::StatusOr<EvalResult> after = (*fresh)->Evaluate((*fresh)->train_data(), all);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->loss, trained->loss);
  EXPECT_EQ(after->accuracy, trained->accuracy);
}

}  // namespace
}  // namespace cajal
