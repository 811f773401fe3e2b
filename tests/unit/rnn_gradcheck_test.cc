// Finite-difference gradient checks for the recurrent layers: every cell (rnn tanh and relu,
// lstm, peephole lstm, gru), stacked, bidirectional, all steps or the last, sequence and image
// inputs. The peephole lstm has no PyTorch counterpart, so this is its only independent check.
//
// The harness is gradcheck.h's: each case is the network  linear -> recurrent  (the linear
// activation gives the recurrent layer an input gradient) with the objective L = Σ output · r.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "core/layers/layers.h"
#include "core/train/network.h"
#include "gtest/gtest.h"
#include "tests/unit/gradcheck.h"

namespace cajal {
namespace {

// The data these checks were written against: inputs uniform(−1, 1), parameters
// 0.8·uniform(−1, 1). Other data could put an rnn_relu pre-activation within ε of the kink.
GradCheckOptions RnnOptions() {
  GradCheckOptions options;
  options.uniform_input = true;
  options.param_scale = 0.8;
  return options;
}

struct Case {
  std::string name;
  RecurrentSpec spec;
  Shape input;
  int params;             // expected parameter tensors
  std::string zero_grad;  // a parameter with exactly zero gradient, if any
  friend void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
};

class RnnGradTest : public ::testing::TestWithParam<Case> {};

TEST_P(RnnGradTest, MatchesFiniteDifferences) {
  const Case& c = GetParam();
  GradCheck g({c.spec}, c.input, /*batch=*/2, RnnOptions());
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g.net().params().size(), c.params);
  g.set_zero_grad(c.zero_grad);
  g.CheckAll();
}

// RecurrentSpec{cell, units, layers, bidirectional, return_sequences, peephole}.
INSTANTIATE_TEST_SUITE_P(
    Cells, RnnGradTest,
    ::testing::Values(
        Case{"rnn_tanh", RecurrentSpec{RecurrentCell::kRnnTanh, 3, 1, false, true}, {4, 3}, 4, ""},
        Case{"rnn_relu", RecurrentSpec{RecurrentCell::kRnnRelu, 3, 1, false, true}, {4, 3}, 4, ""},
        // output[:, -1] of the reverse direction has read x_{T−1} only, from the zero state:
        // its hidden-to-hidden weights get no gradient (as in PyTorch).
        Case{"rnn_tanh_bidir_last",
             RecurrentSpec{RecurrentCell::kRnnTanh, 3, 1, true, false},
             {4, 3},
             8,
             "layers.1.rnn.weight_hh_l0_reverse"},
        Case{"lstm", RecurrentSpec{RecurrentCell::kLstm, 3, 1, false, true}, {4, 3}, 4, ""},
        Case{"lstm_last", RecurrentSpec{RecurrentCell::kLstm, 3, 1, false, false}, {5, 2}, 4, ""},
        Case{"lstm_stacked", RecurrentSpec{RecurrentCell::kLstm, 3, 2, false, true}, {4, 3}, 8, ""},
        Case{"lstm_peephole",
             RecurrentSpec{RecurrentCell::kLstm, 3, 1, false, true, true},
             {4, 3},
             5,
             ""},
        Case{"lstm_peephole_last",
             RecurrentSpec{RecurrentCell::kLstm, 3, 1, false, false, true},
             {5, 2},
             5,
             ""},
        Case{"lstm_peephole_stacked_bidir",
             RecurrentSpec{RecurrentCell::kLstm, 2, 2, true, true, true},
             {3, 2},
             20,
             ""},
        Case{"lstm_image",
             RecurrentSpec{RecurrentCell::kLstm, 3, 1, false, false},
             {2, 4, 2},
             4,
             ""},
        Case{"gru", RecurrentSpec{RecurrentCell::kGru, 3, 1, false, true}, {4, 3}, 4, ""},
        Case{"gru_last", RecurrentSpec{RecurrentCell::kGru, 3, 1, false, false}, {5, 2}, 4, ""},
        Case{"gru_stacked_bidir",
             RecurrentSpec{RecurrentCell::kGru, 2, 2, true, true},
             {3, 2},
             16,
             ""}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// The peephole weights matter: a peephole lstm with non-zero peepholes computes something other
// than the same lstm with them zeroed (so the check above cannot pass with peepholes ignored).
TEST(RnnGradCheckTest, PeepholesChangeTheOutput) {
  GradCheck g({RecurrentSpec{RecurrentCell::kLstm, 3, 1, false, true, /*peephole=*/true}}, {4, 3},
              /*batch=*/2, RnnOptions());
  ASSERT_TRUE(g.ok());
  const double with = g.Objective();
  ParamStore& p = g.net().params();
  const int peep = p.Find("layers.1.lstm.weight_peephole_l0");
  ASSERT_GE(peep, 0);
  std::fill(p.value(peep), p.value(peep) + p.count(peep), 0.0f);
  EXPECT_GT(std::abs(with - g.Objective()), 1e-3);
}

// The harness can fail: a gradient scaled by 1.05 is reported.
TEST(RnnGradCheckTest, DetectsAWrongGradient) {
  GradCheck g({RecurrentSpec{RecurrentCell::kLstm, 3, 1, false, true}}, {4, 3}, /*batch=*/2,
              RnnOptions());
  ASSERT_TRUE(g.ok());
  g.CheckAll();
  EXPECT_GT(g.ScaledGradientError("layers.1.lstm.weight_hh_l0", 1.05), 1.0);
}

}  // namespace
}  // namespace cajal
