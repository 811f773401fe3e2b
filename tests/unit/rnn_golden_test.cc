// rnn (tanh, relu), lstm and gru layers on the CPU backend against PyTorch 1.13's nn.RNN,
// nn.LSTM and nn.GRU in tests/data/goldens/rnn.txt (written by tools/make_rnn_goldens.py; see
// its header for the cases and the format).
//
// Every case is the network  linear -> recurrent  on the golden's input, with every parameter
// copied from PyTorch by name (cajal keeps PyTorch's names and layouts). The leading linear
// activation gives the recurrent layer an input gradient, so diff(1) is d/dx. Checked: the
// output (all steps, or step T−1), the input gradient and the gradient of every parameter,
// including both biases (which oneDNN folds into one per gate) and the gru's gate order, and
// the evaluation plan's output.
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/layers/layers.h"
#include "core/train/network.h"
#include "gtest/gtest.h"
#include "tests/unit/golden_file.h"

namespace cajal {
namespace {

// float32 against float32 summed in another order over a few steps; observed errors are
// ~1e-7, and a wrong gate, bias or direction is off by ~1e-1.
constexpr double kTolerance = 2e-5;

const GoldenFile& RnnGoldens() { return GoldenFile::Get("rnn.txt"); }

const std::vector<double>& Golden(const std::string& key) { return RnnGoldens().Values(key); }

void CopyGolden(const std::string& key, float* dst, int64_t count) {
  RnnGoldens().Copy(key, dst, count);
}

void ExpectMatches(const std::string& key, const float* actual, int64_t count) {
  RnnGoldens().ExpectNear(key, actual, count, kTolerance);
}

struct Case {
  std::string name;
  RecurrentCell cell;
  int features, units, steps, batch, layers;
  bool bidirectional, return_sequences;
  int channels;  // > 0: the input is an image (C, T, F / C)
  friend void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
};

class RnnGoldenTest : public ::testing::TestWithParam<Case> {};

TEST_P(RnnGoldenTest, ForwardAndBackwardMatchPytorch) {
  omp_set_num_threads(1);  // tiny primitives: OpenMP fork/join would dominate
  const Case& c = GetParam();
  const std::string& k = c.name;
  // The table here and the script's must describe the same case.
  const std::vector<double> config = {
      static_cast<double>(c.cell),          static_cast<double>(c.features),
      static_cast<double>(c.units),         static_cast<double>(c.steps),
      static_cast<double>(c.batch),         static_cast<double>(c.layers),
      static_cast<double>(c.bidirectional), static_cast<double>(c.return_sequences),
      static_cast<double>(c.channels)};
  ASSERT_EQ(Golden(k + ".config"), config);

  RecurrentSpec spec;
  spec.cell = c.cell;
  spec.units = c.units;
  spec.layers = c.layers;
  spec.bidirectional = c.bidirectional;
  spec.return_sequences = c.return_sequences;
  const Shape input = c.channels > 0 ? Shape{c.channels, c.steps, c.features / c.channels}
                                     : Shape{c.steps, c.features};
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create({ActivationSpec{Activation::kLinear}, spec}, input, CpuBackend());
  ASSERT_TRUE(net.ok()) << net.status();
  absl::StatusOr<Plan*> plan = (*net)->GetPlan(c.batch, Mode::kTrain);
  ASSERT_TRUE(plan.ok()) << plan.status();
  Plan& p = **plan;
  ParamStore& store = (*net)->params();
  const std::string prefix = "layers.1." + LayerKindName(spec) + ".";
  const int dirs = c.bidirectional ? 2 : 1;
  ASSERT_EQ(store.size(), 4 * dirs * c.layers);
  for (int i = 0; i < store.size(); ++i) {
    const std::string& name = store.decl(i).name;
    ASSERT_EQ(name.rfind(prefix, 0), 0u) << name;
    CopyGolden(k + "." + name.substr(prefix.size()), store.value(i), store.count(i));
  }
  const int64_t in = c.batch * NumElements(input);
  CopyGolden(k + ".x", p.input(), in);
  const int64_t out = c.batch * NumElements((*net)->output_shape());
  ASSERT_EQ(NumElements((*net)->output_shape()),
            static_cast<int64_t>(c.units) * dirs * (c.return_sequences ? c.steps : 1));

  EXPECT_TRUE(p.Forward(/*step=*/0).ok());
  ExpectMatches(k + ".y", p.output(), out);
  CopyGolden(k + ".dy", p.diff(2), out);
  // Two backward passes: the second must not accumulate onto the first (oneDNN's backward
  // adds into its weight gradients; the kernel zeroes them).
  EXPECT_TRUE(p.Backward(2).ok());
  EXPECT_TRUE(p.Forward(/*step=*/1).ok());
  EXPECT_TRUE(p.Backward(2).ok());
  ExpectMatches(k + ".dx", p.diff(1), in);
  for (int i = 0; i < store.size(); ++i) {
    const std::string& name = store.decl(i).name;
    ExpectMatches(k + ".grad." + name.substr(prefix.size()), store.grad(i), store.count(i));
  }

  // The evaluation plan (forward_inference, its own weight layout) computes the same output.
  absl::StatusOr<Plan*> eval = (*net)->GetPlan(c.batch, Mode::kEval);
  ASSERT_TRUE(eval.ok()) << eval.status();
  CopyGolden(k + ".x", (*eval)->input(), in);
  EXPECT_TRUE((*eval)->Forward(/*step=*/0).ok());
  ExpectMatches(k + ".y", (*eval)->output(), out);
}

INSTANTIATE_TEST_SUITE_P(
    Cells, RnnGoldenTest,
    ::testing::Values(
        Case{"rnn_tanh", RecurrentCell::kRnnTanh, 3, 4, 5, 2, 1, false, true, 0},
        Case{"rnn_relu", RecurrentCell::kRnnRelu, 3, 4, 5, 2, 1, false, true, 0},
        Case{"rnn_tanh_stacked_bidir_last", RecurrentCell::kRnnTanh, 3, 4, 5, 2, 2, true, false, 0},
        Case{"lstm", RecurrentCell::kLstm, 3, 4, 5, 2, 1, false, true, 0},
        Case{"lstm_last", RecurrentCell::kLstm, 3, 4, 6, 3, 1, false, false, 0},
        Case{"lstm_stacked", RecurrentCell::kLstm, 3, 4, 5, 2, 2, false, true, 0},
        Case{"lstm_bidir", RecurrentCell::kLstm, 3, 4, 5, 2, 1, true, true, 0},
        Case{"lstm_bidir_last", RecurrentCell::kLstm, 3, 4, 5, 2, 1, true, false, 0},
        Case{"lstm_stacked_bidir", RecurrentCell::kLstm, 3, 4, 4, 2, 2, true, true, 0},
        Case{"lstm_image", RecurrentCell::kLstm, 6, 4, 4, 2, 1, false, false, 2},
        Case{"gru", RecurrentCell::kGru, 3, 4, 5, 2, 1, false, true, 0},
        Case{"gru_last", RecurrentCell::kGru, 3, 4, 6, 3, 1, false, false, 0},
        Case{"gru_stacked_bidir", RecurrentCell::kGru, 3, 4, 4, 2, 2, true, true, 0}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// The goldens themselves: a missing or truncated file must fail, not pass vacuously.
TEST(RnnGoldenFileTest, HasEveryCase) {
  EXPECT_GE(RnnGoldens().size(), 250u);
  EXPECT_EQ(Golden("gru_stacked_bidir.grad.bias_hh_l1_reverse").size(), 12u);
  EXPECT_EQ(Golden("lstm_bidir_last.y").size(), 2u * 8u);
}

}  // namespace
}  // namespace cajal
