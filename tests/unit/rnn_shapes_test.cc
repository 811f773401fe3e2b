// Shapes, parameter declarations, validation messages and presets of the recurrent layers, and
// a short end-to-end run of an lstm on the adding problem through TrainingJob.
#include <memory>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/layers/layers.h"
#include "core/train/job.h"
#include "core/train/network.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Recurrent layers are written RecurrentSpec{cell, units, layers, bidirectional,
// return_sequences, peephole}, trailing fields defaulted.

Shape ShapeOut(const LayerSpec& layer, const Shape& input) {
  absl::StatusOr<std::vector<Shape>> shapes = InferShapes({layer}, input);
  EXPECT_TRUE(shapes.ok()) << shapes.status();
  return shapes.ok() ? shapes->back() : Shape{};
}

TEST(RnnShapesTest, ImagesAreReadRowByRow) {
  // (1, 28, 28): 28 steps of 28 features; (3, 8, 5): 8 steps of 15.
  EXPECT_EQ(ShapeOut(RecurrentSpec{RecurrentCell::kLstm, 128}, {1, 28, 28}), (Shape{128}));
  EXPECT_EQ(ShapeOut(RecurrentSpec{RecurrentCell::kLstm, 128, 1, false, true}, {1, 28, 28}),
            (Shape{28, 128}));
  EXPECT_EQ(ShapeOut(RecurrentSpec{RecurrentCell::kGru, 7, 1, false, true}, {3, 8, 5}),
            (Shape{8, 7}));
}

TEST(RnnShapesTest, SequencesAndDirections) {
  EXPECT_EQ(ShapeOut(RecurrentSpec{RecurrentCell::kRnnTanh, 16}, {50, 2}), (Shape{16}));
  EXPECT_EQ(ShapeOut(RecurrentSpec{RecurrentCell::kLstm, 16, 3, true}, {50, 2}), (Shape{32}));
  EXPECT_EQ(ShapeOut(RecurrentSpec{RecurrentCell::kGru, 16, 2, true, true}, {50, 2}),
            (Shape{50, 32}));
}

TEST(RnnShapesTest, ParametersFollowPytorch) {
  // Two bidirectional peephole lstm layers of 4 units over (T, F) = (6, 3).
  std::vector<ParamDecl> decls;
  const RecurrentSpec spec{RecurrentCell::kLstm, 4, 2, true, false, true};
  DeclareParams(spec, 2, {6, 3}, {8}, &decls);
  std::vector<std::string> names;
  for (const ParamDecl& d : decls) names.push_back(d.name);
  ASSERT_EQ(decls.size(), 20u);
  EXPECT_THAT(
      std::vector<std::string>(names.begin(), names.begin() + 6),
      ElementsAre("layers.2.lstm.weight_ih_l0", "layers.2.lstm.weight_hh_l0",
                  "layers.2.lstm.bias_ih_l0", "layers.2.lstm.bias_hh_l0",
                  "layers.2.lstm.weight_peephole_l0", "layers.2.lstm.weight_ih_l0_reverse"));
  EXPECT_EQ(decls[0].shape, (Shape{16, 3}));  // (4·H, F)
  EXPECT_EQ(decls[1].shape, (Shape{16, 4}));  // (4·H, H)
  EXPECT_EQ(decls[2].shape, (Shape{16}));
  EXPECT_EQ(decls[4].shape, (Shape{3, 4}));  // peepholes i, f, o
  EXPECT_EQ(decls[10].name, "layers.2.lstm.weight_ih_l1");
  EXPECT_EQ(decls[10].shape, (Shape{16, 8}));  // layer 1 reads both directions: H·D = 8
  EXPECT_EQ(decls[19].name, "layers.2.lstm.weight_peephole_l1_reverse");
  // PyTorch's default init U(±1/√H) comes from fan_in = H.
  EXPECT_EQ(decls[0].fan_in, 4);
  EXPECT_EQ(decls[2].role, ParamRole::kBias);

  decls.clear();
  DeclareParams(RecurrentSpec{RecurrentCell::kGru, 5}, 0, {1, 28, 28}, {5}, &decls);
  ASSERT_EQ(decls.size(), 4u);
  EXPECT_EQ(decls[0].name, "layers.0.gru.weight_ih_l0");
  EXPECT_EQ(decls[0].shape, (Shape{15, 28}));
  decls.clear();
  DeclareParams(RecurrentSpec{RecurrentCell::kRnnRelu, 5}, 0, {2, 4, 3}, {5}, &decls);
  ASSERT_EQ(decls.size(), 4u);
  EXPECT_EQ(decls[0].name, "layers.0.rnn.weight_ih_l0");
  EXPECT_EQ(decls[0].shape, (Shape{5, 6}));  // C·W = 6 features per row
}

struct BadCase {
  std::string name;
  std::vector<LayerSpec> layers;
  Shape input;
  std::string message;
  friend void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }
};

class RnnValidationTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(RnnValidationTest, NamesLayerAndShape) {
  const BadCase& c = GetParam();
  absl::StatusOr<std::vector<Shape>> shapes = InferShapes(c.layers, c.input);
  ASSERT_FALSE(shapes.ok());
  EXPECT_EQ(shapes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(shapes.status().message()), c.message);
  // Network::Create reports the same error.
  absl::StatusOr<std::unique_ptr<Network>> net = Network::Create(c.layers, c.input, CpuBackend());
  ASSERT_FALSE(net.ok());
  EXPECT_EQ(std::string(net.status().message()), c.message);
}

INSTANTIATE_TEST_SUITE_P(
    Errors, RnnValidationTest,
    ::testing::Values(
        BadCase{"flat_input",
                {RecurrentSpec{RecurrentCell::kLstm, 8}},
                {784},
                "model.layers.0 (lstm): needs a sequence (T, F) or an image (C, H, W) read row "
                "by row, got flat features (input shape (784,))"},
        BadCase{"after_dense",
                {DenseSpec{10}, RecurrentSpec{RecurrentCell::kGru, 8}},
                {28, 28},
                "model.layers.1 (gru): needs a sequence (T, F) or an image (C, H, W) read row by "
                "row, got flat features (input shape (10,))"},
        BadCase{"last_step_into_rnn",
                {RecurrentSpec{RecurrentCell::kLstm, 8}, RecurrentSpec{RecurrentCell::kLstm, 8}},
                {5, 3},
                "model.layers.1 (lstm): needs a sequence (T, F) or an image (C, H, W) read row by "
                "row, got flat features (input shape (8,))"},
        BadCase{"peephole_gru",
                {RecurrentSpec{RecurrentCell::kGru, 8, 1, false, false, true}},
                {5, 3},
                "model.layers.0 (gru): peephole connections exist only in lstm layers (input "
                "shape (5, 3))"},
        BadCase{"zero_units",
                {RecurrentSpec{RecurrentCell::kRnnTanh, 0}},
                {5, 3},
                "model.layers.0 (rnn): units must be > 0, got 0 (input shape (5, 3))"},
        BadCase{"zero_layers",
                {RecurrentSpec{RecurrentCell::kLstm, 4, 0}},
                {5, 3},
                "model.layers.0 (lstm): layers must be > 0, got 0 (input shape (5, 3))"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

// return_sequences feeds a second recurrent layer, whose last step feeds a dense layer.
TEST(RnnShapesTest, StackedLayersCompile) {
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create({RecurrentSpec{RecurrentCell::kLstm, 6, 1, true, true},
                       RecurrentSpec{RecurrentCell::kGru, 5}, DenseSpec{3}},
                      {1, 7, 4}, CpuBackend());
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_THAT((*net)->shapes(), ElementsAre(Shape{1, 7, 4}, Shape{7, 12}, Shape{5}, Shape{3}));
  EXPECT_TRUE((*net)->GetPlan(4, Mode::kTrain).ok());
  EXPECT_TRUE((*net)->GetPlan(3, Mode::kEval).ok());
}

TEST(RnnPresetTest, OneLayerOf128ThenClasses) {
  for (Preset preset : {Preset::kRnn, Preset::kLstm, Preset::kGru}) {
    absl::StatusOr<std::vector<LayerSpec>> layers = PresetLayers(preset, {1, 28, 28}, 10);
    ASSERT_TRUE(layers.ok()) << layers.status();
    ASSERT_EQ(layers->size(), 2u);
    const auto* r = std::get_if<RecurrentSpec>(&(*layers)[0]);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->units, 128);
    EXPECT_EQ(r->cell, preset == Preset::kRnn    ? RecurrentCell::kRnnTanh
                       : preset == Preset::kLstm ? RecurrentCell::kLstm
                                                 : RecurrentCell::kGru);
    EXPECT_FALSE(r->return_sequences);
    EXPECT_EQ(std::get<DenseSpec>((*layers)[1]).units, 10);
    absl::StatusOr<std::unique_ptr<Network>> net =
        Network::Create(*layers, {1, 28, 28}, CpuBackend());
    ASSERT_TRUE(net.ok()) << net.status();
    EXPECT_EQ((*net)->output_shape(), (Shape{10}));
  }
  // On flat features the preset's layer reports the shape problem.
  absl::StatusOr<std::vector<LayerSpec>> layers = PresetLayers(Preset::kLstm, {784}, 10);
  ASSERT_TRUE(layers.ok());
  absl::StatusOr<std::unique_ptr<Network>> net = Network::Create(*layers, {784}, CpuBackend());
  EXPECT_THAT(std::string(net.status().message()),
              HasSubstr("model.layers.0 (lstm): needs a sequence"));
}

// The adding problem end to end: (T, 2) sequences, one regression target, mse. A short run must
// learn: the last epoch's loss is below the first's, and the test mse is far below predicting
// the mean (the target's variance is 1/6 ≈ 0.167; this run reaches ~6e-4 in 6 epochs).
TEST(RnnJobTest, LstmTrainsOnTheAddingProblem) {
  JobConfig c;
  c.layers = {RecurrentSpec{RecurrentCell::kLstm, 16}, DenseSpec{1}};
  c.train.kind = DataSourceConfig::Kind::kBuiltin;
  c.train.builtin = "adding";
  c.train.builtin_options.sequence_length = 10;
  c.train.builtin_options.examples = 4000;
  c.loss = LossKind::kMse;
  c.optimizer.kind = OptimizerKind::kAdam;
  c.optimizer.learning_rate = 0.01f;
  c.epochs = 6;
  c.batch_size = 32;
  c.seed = 3;
  c.threads = 1;
  absl::StatusOr<std::unique_ptr<TrainingJob>> job = TrainingJob::Prepare(c, CpuBackend());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ((*job)->network().input_shape(), (Shape{10, 2}));
  absl::StatusOr<TrainResult> result = (*job)->Run(nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->epochs.size(), 6u);
  EXPECT_LT(result->epochs[5].loss, result->epochs[0].loss);
  ASSERT_TRUE(result->has_test);
  EXPECT_LT(result->test.loss, 0.01);
}

}  // namespace
}  // namespace cajal
