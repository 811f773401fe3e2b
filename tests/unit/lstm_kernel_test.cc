// The lstm kernel of lstm.cc against oneDNN's RNN primitives (rnn.cc), which the PyTorch goldens
// and the gradient checks also cover: on the same parameters and inputs both must give the same
// outputs, input gradient and parameter gradients, for every configuration lstm.cc runs (plain
// and peephole cells, stacked, all steps or the last, sequences and multi-channel images) and
// with 1, 2 and 3 threads (so the batch is cut into uneven blocks). Also: a kernel's result
// does not depend on how often it runs, Backward writes rather than accumulates, and a second
// Backward after one Forward gives the same gradients.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/backend/onednn/kernels.h"
#include "core/layers/layers.h"
#include "core/tensor/tensor.h"
#include "gtest/gtest.h"

namespace cajal::onednn {
namespace {

struct Case {
  std::string name;
  int units;
  int layers;
  bool return_sequences;
  bool peephole;
  Shape input;  // (T, F) or (C, H, W)
  int64_t batch;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// One kernel with its own buffers; every Bound made from the same case and seed holds the same
// values.
struct Bound {
  std::vector<std::vector<float>> buffers;
  KernelArgs args;
  std::unique_ptr<Kernel> kernel;

  float* Fill(int64_t count, std::mt19937* rng, float scale) {
    std::uniform_real_distribution<float> u(-scale, scale);
    buffers.emplace_back(static_cast<size_t>(count));
    for (float& v : buffers.back()) v = u(*rng);
    return buffers.back().data();
  }
  const std::vector<float>& Buffer(const float* p) const {
    for (const auto& b : buffers) {
      if (b.data() == p) return b;
    }
    static const std::vector<float> none;
    return none;
  }
};

RecurrentSpec SpecOf(const Case& c) {
  RecurrentSpec spec;
  spec.cell = RecurrentCell::kLstm;
  spec.units = c.units;
  spec.layers = c.layers;
  spec.return_sequences = c.return_sequences;
  spec.peephole = c.peephole;
  return spec;
}

std::unique_ptr<Bound> Make(const Case& c, bool own) {
  auto b = std::make_unique<Bound>();
  b->buffers.reserve(64);
  std::mt19937 rng(7);
  const RecurrentSpec spec = SpecOf(c);
  const absl::StatusOr<Shape> out = OutputShape(LayerSpec(spec), c.input);
  EXPECT_TRUE(out.ok()) << out.status();
  int64_t in_size = 1, out_size = 1;
  for (int64_t d : c.input) in_size *= d;
  for (int64_t d : *out) out_size *= d;
  b->args.batch = c.batch;
  b->args.input = c.input;
  b->args.output = *out;
  b->args.src = b->Fill(c.batch * in_size, &rng, 1.0f);
  b->args.dst = b->Fill(c.batch * out_size, &rng, 1.0f);
  b->args.diff_dst = b->Fill(c.batch * out_size, &rng, 1.0f);
  b->args.diff_src = b->Fill(c.batch * in_size, &rng, 1.0f);
  const int64_t h = c.units;
  const int64_t features = c.input.size() == 3 ? c.input[0] * c.input[2] : c.input[1];
  for (int l = 0; l < c.layers; ++l) {
    const int64_t in = l == 0 ? features : h;
    std::vector<std::pair<std::string, int64_t>> params = {{"weight_ih", 4 * h * in},
                                                           {"weight_hh", 4 * h * h},
                                                           {"bias_ih", 4 * h},
                                                           {"bias_hh", 4 * h}};
    if (c.peephole) params.push_back({"weight_peephole", 3 * h});
    for (const auto& [name, count] : params) {
      float* value = b->Fill(count, &rng, 0.5f);
      float* grad = b->Fill(count, &rng, 1.0f);  // garbage: Backward must overwrite
      b->args.params.push_back({absl::StrCat(name, "_l", l), value, grad});
    }
  }
  absl::StatusOr<std::unique_ptr<Kernel>> k =
      own ? MakeLstm(spec, b->args) : MakeRecurrentPrimitives(spec, b->args);
  EXPECT_TRUE(k.ok()) << k.status();
  if (k.ok()) b->kernel = *std::move(k);
  return b;
}

// Every output of a forward + backward: dst, diff_src, then each gradient.
std::vector<std::vector<float>> Outputs(const Bound& b) {
  std::vector<std::vector<float>> out = {b.Buffer(b.args.dst), b.Buffer(b.args.diff_src)};
  for (const ParamBinding& p : b.args.params) out.push_back(b.Buffer(p.grad));
  return out;
}

std::vector<std::vector<float>> Step(Bound& b) {
  EXPECT_TRUE(b.kernel->Forward(0).ok());
  EXPECT_TRUE(b.kernel->Backward().ok());
  return Outputs(b);
}

class LstmKernelTest : public ::testing::TestWithParam<Case> {};

TEST_P(LstmKernelTest, MatchesOneDnnPrimitives) {
  const Case& c = GetParam();
  ASSERT_TRUE(LstmRuns(SpecOf(c)));
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    omp_set_num_threads(threads);
    std::unique_ptr<Bound> own = Make(c, true), ref = Make(c, false);
    ASSERT_NE(own->kernel, nullptr);
    ASSERT_NE(ref->kernel, nullptr);
    const auto a = Step(*own), e = Step(*ref);
    ASSERT_EQ(a.size(), e.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].size(), e[i].size());
      double worst = 0, largest = 0;
      for (size_t j = 0; j < a[i].size(); ++j) {
        worst = std::max(
            worst, std::abs(double(a[i][j]) - e[i][j]) / (1e-5 + 1e-4 * std::abs(double(e[i][j]))));
        largest = std::max(largest, std::abs(double(e[i][j])));
      }
      EXPECT_LE(worst, 1.0) << "output " << i << " (0 dst, 1 diff_src, then the gradients)";
      EXPECT_GT(largest, 1e-3) << "output " << i << " is all but zero: the check would be empty";
    }
    // Running again gives the same bits: nothing accumulates across steps.
    EXPECT_EQ(Step(*own), a);
    // So does a second Backward after one Forward (the kernel's Backward consumes the forward
    // state in place and has to rebuild it).
    EXPECT_TRUE(own->kernel->Backward().ok());
    EXPECT_EQ(Outputs(*own), a);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, LstmKernelTest,
    ::testing::Values(Case{"last", 6, 1, false, false, {7, 3}, 5},
                      Case{"sequences", 6, 1, true, false, {7, 3}, 5},
                      Case{"peephole", 5, 1, true, true, {6, 4}, 4},
                      Case{"peephole_last", 5, 1, false, true, {6, 4}, 3},
                      Case{"stacked", 4, 3, true, false, {5, 3}, 5},
                      Case{"stacked_peephole_last", 4, 2, false, true, {5, 3}, 7},
                      Case{"image_two_channels", 6, 1, false, false, {2, 5, 3}, 4},
                      Case{"one_sample", 8, 1, false, false, {9, 2}, 1},
                      Case{"wide", 40, 1, false, false, {12, 28}, 9},
                      // Blocks of 37, 18/19 and 12/12/13 samples: every column path of the
                      // GEMM tiles (16, 8, one by one) and of the cells (chunks of 32, the rest).
                      Case{"batch_37", 7, 1, false, false, {4, 5}, 37},
                      Case{"batch_70_stacked_peephole", 9, 2, true, true, {3, 6}, 70},
                      // Up to 300 columns a step: the GEMM tile's blocks of 128 columns.
                      Case{"batch_300", 3, 1, true, false, {3, 2}, 300}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// Only unidirectional lstms run on lstm.cc; the rest keep oneDNN's primitives.
TEST(LstmKernelDispatch, BidirectionalAndOtherCellsUsePrimitives) {
  RecurrentSpec spec;
  spec.cell = RecurrentCell::kLstm;
  EXPECT_TRUE(LstmRuns(spec));
  spec.bidirectional = true;
  EXPECT_FALSE(LstmRuns(spec));
  spec.bidirectional = false;
  spec.cell = RecurrentCell::kGru;
  EXPECT_FALSE(LstmRuns(spec));
  spec.cell = RecurrentCell::kRnnTanh;
  EXPECT_FALSE(LstmRuns(spec));
}

}  // namespace
}  // namespace cajal::onednn
