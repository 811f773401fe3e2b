// Initializer statistics on a large dense weight, against the formulas in core/init/init.h.
//
// The weight is (500, 2000): fan_in 2000 and fan_out 500 differ by 4x, so using the wrong fan
// changes the variance by far more than the tolerance. With 10⁶ samples the sample variance
// has a relative standard error of √(2/n) ≈ 0.14% (normal) or less (uniform), so 2% is ~15σ;
// the mean is checked to 0.01·std (~10σ).
#include "core/init/init.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/tensor/tensor.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

constexpr int64_t kOut = 500;
constexpr int64_t kIn = 2000;
constexpr double kVarianceTolerance = 0.02;  // relative

// A dense layer's weight and bias, a prelu slope and a batch-norm scale and shift.
struct Store {
  ParamStore params;
  int weight, bias, slope, scale, shift;

  Store() {
    weight = params.Declare({"layers.0.dense.weight", {kOut, kIn}, kIn, kOut, ParamRole::kWeight});
    bias = params.Declare({"layers.0.dense.bias", {kOut}, kIn, kOut, ParamRole::kBias});
    slope = params.Declare({"layers.1.activation.slope", {7}, 1, 1, ParamRole::kPreluSlope});
    scale = params.Declare({"layers.2.batch_norm.scale", {3}, 1, 1, ParamRole::kScale});
    shift = params.Declare({"layers.2.batch_norm.shift", {3}, 1, 1, ParamRole::kShift});
    EXPECT_TRUE(params.Allocate(CpuBackend()).ok());
  }
  std::vector<float> Values(int i) const {
    return std::vector<float>(params.value(i), params.value(i) + params.count(i));
  }
};

struct Moments {
  double mean = 0;
  double variance = 0;
  double min = 0;
  double max = 0;
};

Moments MomentsOf(const std::vector<float>& v) {
  Moments m;
  double sum = 0, sq = 0;
  for (float x : v) sum += x;
  m.mean = sum / v.size();
  for (float x : v) sq += (x - m.mean) * (x - m.mean);
  m.variance = sq / v.size();
  m.min = *std::min_element(v.begin(), v.end());
  m.max = *std::max_element(v.begin(), v.end());
  return m;
}

// Mean ~0 and variance within kVarianceTolerance of `variance`.
void ExpectMoments(const Moments& m, double variance) {
  EXPECT_NEAR(m.mean, 0.0, 0.01 * std::sqrt(variance));
  EXPECT_NEAR(m.variance / variance, 1.0, kVarianceTolerance)
      << "variance " << m.variance << ", want " << variance;
}

// U(−bound, bound): variance bound²/3, every value inside, the extremes reached.
void ExpectUniform(const std::vector<float>& v, double bound) {
  const Moments m = MomentsOf(v);
  ExpectMoments(m, bound * bound / 3);
  EXPECT_GE(m.min, -bound * (1 + 1e-6));
  EXPECT_LE(m.max, bound * (1 + 1e-6));
  EXPECT_LT(m.min, -0.99 * bound);
  EXPECT_GT(m.max, 0.99 * bound);
}

// N(0, std²): variance std², and tails as a normal's (|x| > 4σ is rare, 3σ is not).
void ExpectNormal(const std::vector<float>& v, double std) {
  const Moments m = MomentsOf(v);
  ExpectMoments(m, std * std);
  EXPECT_GT(m.max, 3 * std);
  const int64_t beyond_3sigma =
      std::count_if(v.begin(), v.end(), [&](float x) { return std::abs(x) > 3 * std; });
  // P(|z| > 3) = 0.27%: 2700 expected of 10⁶.
  EXPECT_NEAR(static_cast<double>(beyond_3sigma) / v.size(), 0.0027, 0.0005);
}

// Every scheme but kDefault sets biases to `bias`; slopes, scales and shifts are fixed.
void ExpectFixedRoles(const Store& s, const InitConfig& c) {
  if (c.kind != InitKind::kDefault) {
    for (float b : s.Values(s.bias)) ASSERT_EQ(b, c.bias);
  }
  for (float a : s.Values(s.slope)) ASSERT_EQ(a, 0.25f);
  for (float g : s.Values(s.scale)) ASSERT_EQ(g, 1.0f);
  for (float b : s.Values(s.shift)) ASSERT_EQ(b, 0.0f);
}

InitConfig Config(InitKind kind) {
  InitConfig c;
  c.kind = kind;
  c.range = 0.3f;
  c.std = 0.2f;
  c.gain = 1.7f;
  c.bias = 0.125f;
  return c;
}

TEST(InitTest, RandomUniform) {
  Store s;
  const InitConfig c = Config(InitKind::kRandomUniform);
  EXPECT_TRUE(InitializeParams(c, /*seed=*/1, &s.params).ok());
  ExpectUniform(s.Values(s.weight), c.range);
  ExpectFixedRoles(s, c);
}

TEST(InitTest, RandomNormal) {
  Store s;
  const InitConfig c = Config(InitKind::kRandomNormal);
  EXPECT_TRUE(InitializeParams(c, /*seed=*/1, &s.params).ok());
  ExpectNormal(s.Values(s.weight), c.std);
  ExpectFixedRoles(s, c);
}

TEST(InitTest, XavierUniformAppliesGain) {
  Store s;
  const InitConfig c = Config(InitKind::kXavierUniform);
  EXPECT_TRUE(InitializeParams(c, /*seed=*/2, &s.params).ok());
  ExpectUniform(s.Values(s.weight), c.gain * std::sqrt(6.0 / (kIn + kOut)));
  ExpectFixedRoles(s, c);
}

TEST(InitTest, XavierNormalAppliesGain) {
  Store s;
  const InitConfig c = Config(InitKind::kXavierNormal);
  EXPECT_TRUE(InitializeParams(c, /*seed=*/2, &s.params).ok());
  ExpectNormal(s.Values(s.weight), c.gain * std::sqrt(2.0 / (kIn + kOut)));
  ExpectFixedRoles(s, c);
}

TEST(InitTest, HeUniformUsesFanIn) {
  Store s;
  const InitConfig c = Config(InitKind::kHeUniform);
  EXPECT_TRUE(InitializeParams(c, /*seed=*/3, &s.params).ok());
  ExpectUniform(s.Values(s.weight), std::sqrt(6.0 / kIn));
  ExpectFixedRoles(s, c);
}

TEST(InitTest, HeNormalUsesFanIn) {
  Store s;
  const InitConfig c = Config(InitKind::kHeNormal);
  EXPECT_TRUE(InitializeParams(c, /*seed=*/3, &s.params).ok());
  ExpectNormal(s.Values(s.weight), std::sqrt(2.0 / kIn));
  ExpectFixedRoles(s, c);
}

TEST(InitTest, Zeros) {
  Store s;
  // Start from garbage so zeros must be written, not inherited from the allocation.
  std::fill(s.params.values(), s.params.values() + s.params.total(), 7.0f);
  const InitConfig c = Config(InitKind::kZeros);
  EXPECT_TRUE(InitializeParams(c, /*seed=*/4, &s.params).ok());
  for (float w : s.Values(s.weight)) ASSERT_EQ(w, 0.0f);
  ExpectFixedRoles(s, c);
}

// PyTorch's nn.Linear default: weights and biases U(±1/√fan_in); `bias` is ignored.
TEST(InitTest, DefaultIsPytorchLinear) {
  Store s;
  const InitConfig c = Config(InitKind::kDefault);
  EXPECT_TRUE(InitializeParams(c, /*seed=*/5, &s.params).ok());
  const double bound = 1.0 / std::sqrt(static_cast<double>(kIn));
  ExpectUniform(s.Values(s.weight), bound);
  const Moments b = MomentsOf(s.Values(s.bias));
  EXPECT_GE(b.min, -bound);
  EXPECT_LE(b.max, bound);
  // 500 samples: the range is nearly covered and the variance is bound²/3 within ~20%.
  EXPECT_GT(b.max - b.min, 1.9 * bound);
  EXPECT_NEAR(b.variance / (bound * bound / 3), 1.0, 0.2);
  ExpectFixedRoles(s, c);
}

TEST(InitTest, SameSeedSameValuesOtherSeedOtherValues) {
  for (InitKind kind : {InitKind::kDefault, InitKind::kRandomUniform, InitKind::kRandomNormal,
                        InitKind::kXavierUniform, InitKind::kXavierNormal, InitKind::kHeUniform,
                        InitKind::kHeNormal}) {
    Store a, b, other;
    EXPECT_TRUE(InitializeParams(Config(kind), /*seed=*/42, &a.params).ok());
    EXPECT_TRUE(InitializeParams(Config(kind), /*seed=*/42, &b.params).ok());
    EXPECT_TRUE(InitializeParams(Config(kind), /*seed=*/43, &other.params).ok());
    const size_t bytes = static_cast<size_t>(a.params.total()) * sizeof(float);
    EXPECT_EQ(std::memcmp(a.params.values(), b.params.values(), bytes), 0)
        << "kind " << static_cast<int>(kind);
    const std::vector<float> wa = a.Values(a.weight);
    const std::vector<float> wo = other.Values(other.weight);
    int64_t same = 0;
    for (size_t i = 0; i < wa.size(); ++i) same += wa[i] == wo[i];
    EXPECT_LT(same, 100) << "kind " << static_cast<int>(kind);
  }
}

}  // namespace
}  // namespace cajal
