// The element-wise math written once for the CPU and the CUDA kernels (CAJAL_HD), checked on
// the CPU: the activations against oneDNN's eltwise, prelu and softmax primitives (the CPU
// backend's kernels) over a wide range of inputs, the losses and the threshold unit against
// the CPU backend's own loops, which now call the same functions.
#include <omp.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "core/backend/activation_math.h"
#include "core/backend/backend.h"
#include "core/loss/loss.h"
#include "core/loss/loss_math.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

// Inputs over the range where every activation changes, its extremes (saturation, overflow of
// e^x) and the values around 0.
std::vector<float> WideInputs() {
  std::vector<float> x = {0.0f,   -0.0f,   1e-30f, -1e-30f, 1e-7f, -1e-7f, 88.0f, -88.0f,
                          100.0f, -100.0f, 1e6f,   -1e6f,   20.0f, -20.0f, 9.0f,  -9.0f};
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-12.0f, 12.0f);
  for (int i = 0; i < 240; ++i) x.push_back(u(rng));
  return x;
}

struct Kernelled {
  std::vector<float> y, dx;
};

// The CPU backend's kernel for `spec` on (n, features...) = x, backward from dy.
Kernelled RunCpu(const LayerSpec& spec, const Shape& shape, const std::vector<float>& x,
                 const std::vector<float>& dy, std::vector<float>* slope = nullptr,
                 std::vector<float>* slope_grad = nullptr) {
  Kernelled out;
  out.y.resize(x.size());
  out.dx.resize(x.size());
  KernelArgs args;
  args.input = args.output = shape;
  args.batch = static_cast<int64_t>(x.size()) / NumElements(shape);
  args.src = x.data();
  args.dst = out.y.data();
  args.diff_dst = dy.data();
  args.diff_src = out.dx.data();
  if (slope != nullptr) args.params = {{"slope", slope->data(), slope_grad->data()}};
  absl::StatusOr<std::unique_ptr<Kernel>> k = CpuBackend()->MakeKernel(spec, args);
  EXPECT_TRUE(k.ok()) << k.status();
  if (!k.ok()) return out;
  EXPECT_TRUE((*k)->Forward(1).ok());
  EXPECT_TRUE((*k)->Backward().ok());
  return out;
}

// |a − b| <= relative 5e-7 of the larger (a few ulp), or `floor`: a backward pass's
// 1 − y² is exact only to an ulp of 1 (oneDNN fuses it into one FMA, the shared function
// rounds y² first), so its gradients compare to 2^−22·|dy| absolutely.
void ExpectClose(float a, float b, const char* what, float x, float floor = 1e-30f) {
  if (std::isnan(b)) {
    EXPECT_TRUE(std::isnan(a)) << what << " at x=" << x;
    return;
  }
  const float tol = std::max(5e-7f * std::max(std::abs(a), std::abs(b)), floor);
  EXPECT_NEAR(a, b, tol) << what << " at x=" << x;
}

TEST(ActivationMathTest, EltwiseMatchesOneDnn) {
  omp_set_num_threads(1);
  const std::vector<float> x = WideInputs();
  std::vector<float> dy(x.size());
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : dy) v = u(rng);
  struct Case {
    Activation spec;
    EltwiseKind kind;
    float slope;
  };
  for (const Case& c : {Case{Activation::kLinear, EltwiseKind::kLinear, 0.0f},
                        Case{Activation::kSigmoid, EltwiseKind::kSigmoid, 0.0f},
                        Case{Activation::kTanh, EltwiseKind::kTanh, 0.0f},
                        Case{Activation::kRelu, EltwiseKind::kRelu, 0.0f},
                        Case{Activation::kLeakyRelu, EltwiseKind::kLeakyRelu, 0.01f},
                        Case{Activation::kLeakyRelu, EltwiseKind::kLeakyRelu, -0.3f}}) {
    SCOPED_TRACE(static_cast<int>(c.kind));
    const Kernelled cpu =
        RunCpu(ActivationSpec{c.spec, c.slope}, {static_cast<int64_t>(x.size())}, x, dy);
    for (size_t i = 0; i < x.size(); ++i) {
      const float y = EltwiseForward(c.kind, x[i], c.slope);
      ExpectClose(y, cpu.y[i], "forward", x[i]);
      // From oneDNN's own output: near saturation, 1 − y of two outputs an ulp apart differ
      // by far more than an ulp, whichever is right.
      const float saved = EltwiseBackwardUsesOutput(c.kind, c.slope) ? cpu.y[i] : x[i];
      ExpectClose(EltwiseBackward(c.kind, saved, dy[i], c.slope), cpu.dx[i], "backward", x[i],
                  std::ldexp(std::abs(dy[i]), -22));
    }
  }
}

TEST(ActivationMathTest, PreluMatchesOneDnn) {
  omp_set_num_threads(1);
  const std::vector<float> x = WideInputs();  // 256 = 4 examples of 64 features
  std::vector<float> dy(x.size());
  std::vector<float> slope(64), slope_grad(64);
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : dy) v = u(rng);
  for (float& v : slope) v = u(rng);
  const Kernelled cpu =
      RunCpu(ActivationSpec{Activation::kPrelu}, {64}, x, dy, &slope, &slope_grad);
  std::vector<double> grad(64, 0.0);
  for (size_t i = 0; i < x.size(); ++i) {
    const float w = slope[i % 64];
    ExpectClose(PreluForward(x[i], w), cpu.y[i], "forward", x[i]);
    ExpectClose(PreluBackwardData(x[i], w, dy[i]), cpu.dx[i], "backward", x[i]);
    grad[i % 64] += PreluSlopeTerm(x[i], dy[i]);
  }
  for (int c = 0; c < 64; ++c) {
    EXPECT_NEAR(grad[c], slope_grad[c], 1e-5 * std::max(1.0, std::abs(grad[c]))) << c;
  }
}

TEST(ActivationMathTest, SoftmaxMatchesOneDnn) {
  omp_set_num_threads(1);
  const std::vector<float> x = WideInputs();  // 16 rows of 16
  std::vector<float> dy(x.size());
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : dy) v = u(rng);
  const Kernelled cpu = RunCpu(ActivationSpec{Activation::kSoftmax}, {16}, x, dy);
  std::vector<float> y(x.size()), dx(x.size());
  for (size_t r = 0; r < x.size() / 16; ++r) {
    SoftmaxForwardRow(x.data() + r * 16, y.data() + r * 16, 16);
    SoftmaxBackwardRow(y.data() + r * 16, dy.data() + r * 16, dx.data() + r * 16, 16);
  }
  for (size_t i = 0; i < x.size(); ++i) {
    // Values that underflow to 0 in one and to a denormal in the other compare absolutely.
    EXPECT_NEAR(y[i], cpu.y[i], 2e-6f * std::abs(cpu.y[i]) + 1e-37f) << i;
    EXPECT_NEAR(dx[i], cpu.dx[i], 1e-6f) << i;
  }
}

TEST(ActivationMathTest, ThresholdIsTheCpuBackends) {
  const std::vector<float> x = WideInputs();
  std::vector<float> dy(x.size(), 0.5f);
  const Kernelled cpu = RunCpu(ThresholdSpec{0.25f}, {static_cast<int64_t>(x.size())}, x, dy);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(ThresholdForward(x[i], 0.25f), cpu.y[i]) << x[i];
    EXPECT_EQ(cpu.y[i], x[i] > 0.25f ? 1.0f : 0.0f);
    EXPECT_EQ(cpu.dx[i], 0.5f);
  }
}

// The functions the CUDA loss kernel calls per example, summed here in example order, give
// ComputeLoss's results bit for bit; and the values are the definitions' (hand-computed).
TEST(LossMathTest, PerExampleFunctionsAreComputeLoss) {
  LossConfig ce;  // cross-entropy on logits, argmax accuracy
  const float x[] = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f, 0.0f};
  const int32_t labels[] = {1, 0};
  LossTargets t;
  t.labels = labels;
  float g1[6], g2[6];
  const LossOutput out = ComputeLoss(ce, x, 2, 3, t, g1, 0.5);
  double sum = 0;
  int64_t correct = 0;
  for (int64_t i = 0; i < 2; ++i) {
    correct += IsCorrectExample(ce, x + 3 * i, 3, t, i) ? 1 : 0;
    sum += ExampleLoss(ce, x + 3 * i, 3, t, i, 0.5, g2 + 3 * i);
  }
  EXPECT_EQ(sum, out.sum);
  EXPECT_EQ(correct, out.correct);
  for (int j = 0; j < 6; ++j) EXPECT_EQ(g1[j], g2[j]);
  // Row 0: log(e + e² + e^0.5) − 2; row 1: log(e^−1 + e³ + 1) + 1.
  const double want = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(0.5)) - 2.0 +
                      std::log(std::exp(-1.0) + std::exp(3.0) + 1.0) + 1.0;
  EXPECT_NEAR(out.sum, want, 1e-12);
  EXPECT_EQ(out.correct, 1);  // row 0's argmax is 1 (its label); row 1's is 1, not 0

  LossConfig bce;
  bce.kind = LossKind::kBinaryCrossEntropy;
  bce.accuracy = AccuracyRule::kThreshold;
  const float z[] = {0.3f, -2.0f};
  const int32_t y[] = {1, 0};
  LossTargets tb;
  tb.labels = y;
  const LossOutput b = ComputeLoss(bce, z, 2, 1, tb, nullptr);
  const double want_b = std::log1p(std::exp(-0.3)) + std::log1p(std::exp(-2.0));
  EXPECT_NEAR(b.sum, want_b, 1e-7);  // z is a float: 0.3f
  EXPECT_EQ(b.correct, 2);
}

}  // namespace
}  // namespace cajal
