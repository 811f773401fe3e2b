// The memory estimate (core/train/memory.h): its parts against what a built network really
// allocates, the budget's message, sizes in flags.
#include "core/train/memory.h"

#include "core/train/network.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

JobConfig XorMlp(int units) {
  JobConfig c;
  c.layers = {DenseSpec{units}, ActivationSpec{Activation::kTanh}, DenseSpec{2}};
  c.train.kind = DataSourceConfig::Kind::kBuiltin;
  c.train.builtin = "xor";
  c.optimizer.kind = OptimizerKind::kAdam;
  c.batch_size = 4;
  return c;
}

int64_t Sum(const MemoryEstimate& e, const std::string& what) {
  int64_t n = 0;
  for (const MemoryItem& i : e.items) {
    if (i.what == what) n += i.bytes;
  }
  return n;
}

TEST(MemoryEstimateTest, ParametersGradientsAndAdamStateMatchTheStore) {
  const JobConfig c = XorMlp(100);
  absl::StatusOr<MemoryEstimate> e = EstimateMemory(c);
  ASSERT_TRUE(e.ok()) << e.status();
  absl::StatusOr<std::unique_ptr<Network>> net = Network::Create(c.layers, {2}, CpuBackend());
  ASSERT_TRUE(net.ok());
  // 2·100 + 100 + 100·2 + 2 values; the store pads each tensor to 16 floats.
  EXPECT_EQ(e->parameters, 2 * 100 + 100 + 100 * 2 + 2);
  const int64_t store_bytes = (*net)->params().total() * 4;
  EXPECT_EQ(Sum(*e, "parameters"), store_bytes);
  EXPECT_EQ(Sum(*e, "gradients"), store_bytes);
  EXPECT_EQ(Sum(*e, "optimizer state"), 2 * store_bytes);  // adam: two moments
  EXPECT_EQ(e->device_bytes, 0);                           // the CPU's memory is host memory
  EXPECT_GT(e->host_bytes, kRuntimeBaselineBytes);
}

TEST(MemoryEstimateTest, ActivationsGrowWithTheBatch) {
  // xor's 4 examples: one training plan of the batch, no evaluation plans.
  JobConfig c = XorMlp(1000);
  c.batch_size = 1;
  absl::StatusOr<MemoryEstimate> small = EstimateMemory(c);
  c.batch_size = 4;
  absl::StatusOr<MemoryEstimate> large = EstimateMemory(c);
  ASSERT_TRUE(small.ok() && large.ok());
  // Outputs 1000 + 1000 + 2 per example, each with its gradient, 4 bytes a value.
  EXPECT_EQ(Sum(*small, "activations and their gradients"), 2 * (1000 + 1000 + 2) * 4);
  EXPECT_EQ(Sum(*large, "activations and their gradients"),
            4 * Sum(*small, "activations and their gradients"));
  EXPECT_EQ(Sum(*large, "parameters"), Sum(*small, "parameters"));
}

TEST(MemoryEstimateTest, ErrorsNameTheFieldLikePrepare) {
  JobConfig c = XorMlp(4);
  c.train.builtin = "imagenet";
  EXPECT_THAT(EstimateMemory(c).status().message(), HasSubstr("data.train: "));
  c = XorMlp(4);
  c.layers = {Conv2dSpec{8, 3}};
  absl::StatusOr<MemoryEstimate> e = EstimateMemory(c);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(e.status().message(), HasSubstr("model.layers.0 (conv2d)"));
}

TEST(MemoryBudgetTest, OverBudgetNamesEstimateBudgetAndTheBiggestPart) {
  MemoryEstimate e;
  e.host_bytes = 9'000'000'000;
  e.items = {{"data.train", "examples", 47'000'000},
             {"model file", "a copy while it is saved or read", 5'000'000'000, false, true},
             {"model.layers.0.dense", "parameters", 4'000'000'000}};
  const absl::Status s = CheckBudget(e, FlagBudget(3'000'000'000, "--max_memory"));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("needs an estimated 9.0 GB"));
  EXPECT_THAT(s.message(), HasSubstr("memory budget is 3.0 GB (--max_memory)"));
  // The whole-model copy is larger but not a part one could shrink by name.
  EXPECT_THAT(s.message(), HasSubstr("model.layers.0.dense: 4.0 GB of parameters"));
  EXPECT_TRUE(CheckBudget(e, FlagBudget(9'000'000'000, "--max_memory")).ok());
}

TEST(MemoryBudgetTest, TheProcessBudgetIsPositiveAndSaysWhereItComesFrom) {
  const MemoryBudget b = ProcessMemoryBudget();
  EXPECT_GT(b.bytes, 0);
  EXPECT_THAT(b.source, ::testing::AnyOf(HasSubstr("memory.max"), HasSubstr("available memory")));
}

TEST(BytesTest, ParseAndFormat) {
  EXPECT_EQ(*ParseBytes("4GB"), 4'000'000'000);
  EXPECT_EQ(*ParseBytes("4GiB"), int64_t{4} << 30);
  EXPECT_EQ(*ParseBytes("512M"), 512'000'000);
  EXPECT_EQ(*ParseBytes("1.5 kb"), 1500);
  EXPECT_EQ(*ParseBytes("1000000"), 1'000'000);
  EXPECT_THAT(ParseBytes("lots").status().message(), HasSubstr("is not a size"));
  EXPECT_THAT(ParseBytes("4 parsecs").status().message(), HasSubstr("unknown unit"));
  EXPECT_FALSE(ParseBytes("99999999999TB").ok());
  EXPECT_EQ(FormatBytes(4'000'000'000), "4.0 GB");
  EXPECT_EQ(FormatBytes(512'300'000), "512.3 MB");
  EXPECT_EQ(FormatBytes(12'345), "12 KB");
  EXPECT_EQ(FormatBytes(7), "7 B");
}

}  // namespace
}  // namespace cajal
